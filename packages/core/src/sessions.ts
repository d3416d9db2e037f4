import {
  InvalidInputError,
  InvalidOptionError,
  SessionDataTooLargeError,
  StaleAuthenticationError,
  StoreFailedError,
} from './errors.js';
import { emitSafely, type SessionEndReason } from './events.js';
import { randomId, randomSecret, sha256 } from './internal/crypto.js';
import {
  positiveInt,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toArray, toInt } from './internal/script.js';
import { type KeySpace, userTag } from './keys.js';
import { sessionCreate } from './lua/generated/session-create.js';
import { sessionDestroy } from './lua/generated/session-destroy.js';
import { sessionGet } from './lua/generated/session-get.js';
import { sessionList } from './lua/generated/session-list.js';
import { sessionRegenerate } from './lua/generated/session-regenerate.js';
import { sessionRevoke } from './lua/generated/session-revoke.js';
import { sessionRevokeAll } from './lua/generated/session-revoke-all.js';
import { sessionUpdate } from './lua/generated/session-update.js';

/**
 * The secret a session cookie carries: `v1.<user tag>.<session id>.<secret>`. Whoever holds it is
 * logged in. Never log it; it reaches Redis only as a SHA-256 digest.
 */
export type SessionToken = string & { readonly __brand: 'SessionToken' };

/** One login of one user, as the store returns it. Instants are epoch ms. */
export interface Session<Data> {
  /** The public session id: safe to list and show, useless without the token. */
  id: string;
  userId: string;
  /** The application's data (a separate namespace: it can never overwrite the fields below). */
  data: Data;
  createdAt: number;
  /** When the credential check that led to this session began. */
  authenticatedAt: number;
  /** The last activity seen, written at most once per `lastSeenResolutionMs`. */
  lastSeenAt: number;
  /** When the session ends unless used again: `min(idleExpiresAt, absoluteExpiresAt)`. */
  expiresAt: number;
  /** The idle deadline: last renewal plus the idle timeout, never past the absolute deadline. */
  idleExpiresAt: number;
  /** The absolute deadline: `createdAt` plus the absolute lifetime. No activity extends it. */
  absoluteExpiresAt: number;
  /** The client address at login, if given. */
  ip?: string;
  /** The client's user agent at login, if given (at most 252 bytes of UTF-8; see `create`). */
  userAgent?: string;
  /**
   * How the session was made: RFC 8176 authentication method references (`pwd`, `otp`, `mfa`,
   * `hwk`, `swk`, …) as given to `create`; absent when none were given.
   */
  amr?: string[];
}

/** A partial update of session data: a field set to `undefined` is deleted. */
export type SessionPatch<Data> = { [K in keyof Data]?: Data[K] | undefined };

/** Options of {@link SessionStore.create}. */
export interface CreateSessionOptions {
  /**
   * When the credential check began (read the clock before checking the password). The session is
   * refused with {@link StaleAuthenticationError} when the user's revoke-everything mark is later.
   * May not lie in the future.
   * @default now
   */
  readonly authenticatedAt?: number;
  /** Idle timeout of this session in ms (e.g. longer for a mobile login). @default the store's */
  readonly idleTimeoutMs?: number;
  /** Absolute lifetime of this session in ms, from now. @default the store's */
  readonly absoluteTimeoutMs?: number;
  /**
   * The client address, for a "where am I logged in" list (at most 63 bytes of UTF-8 kept: an IPv6
   * address has at most 45 characters).
   */
  readonly ip?: string;
  /**
   * The client's user agent: a prefix of at most 252 bytes of UTF-8 is kept (stored as four pieces
   * of at most 63 bytes, each cut at a character boundary, so at least 240 bytes of it) — enough for
   * the browser, its version and the platform.
   */
  readonly userAgent?: string;
  /**
   * How the user authenticated: RFC 8176 method values such as `pwd`, `otp`, `mfa`, `hwk`, `swk`.
   * Each value is 1–16 characters of `a-z`, `0-9`, `_` or `-`, at most 8 distinct values, at most 63
   * bytes together (stored as one compact field); returned by `get` and `listForUser`.
   * @default []
   */
  readonly amr?: readonly string[];
}

/** Options of {@link SessionStore.revokeAllForUser}. */
export interface RevokeAllOptions {
  /**
   * The id of a session to keep (the caller's own: "log out my other devices", a password change).
   * Every other session is revoked.
   */
  readonly except?: string;
  /**
   * Whether to set the user's revoke-before mark (now): a login whose credential check began earlier
   * can then no longer create a session. With `except`, the kept session's `authenticatedAt` is
   * raised to the mark so that it survives — pass `true` only when the caller has just re-verified the
   * user's credential in this request (a password change that checked the current password).
   * @default true without `except`, false with it
   */
  readonly setMark?: boolean;
}

/** Options of {@link SessionStore}. */
export interface SessionStoreOptions extends StoreOptions {
  /**
   * Idle timeout in ms: a session not used for this long ends. Renewed on use, at most once per
   * `lastSeenResolutionMs`, never past the absolute deadline.
   * @default 3_600_000 (1 h)
   */
  readonly idleTimeoutMs?: number;
  /**
   * Absolute lifetime in ms from creation; no activity extends it.
   * @default 86_400_000 (24 h)
   */
  readonly absoluteTimeoutMs?: number;
  /**
   * Most live sessions per user; creating one more evicts the oldest (by `createdAt`). At most 500.
   * @default 100
   */
  readonly maxSessionsPerUser?: number;
  /**
   * Most bytes of session data: the UTF-8 length of every field name plus its JSON text.
   * @default 4096
   */
  readonly maxDataBytes?: number;
  /**
   * How often, at most, a read writes `lastSeenAt` and slides the idle deadline, in ms. A session
   * therefore idles out between `idleTimeoutMs - lastSeenResolutionMs` and `idleTimeoutMs` after its
   * last use. At most half of every idle timeout.
   * @default 60_000 (1 min)
   */
  readonly lastSeenResolutionMs?: number;
  /**
   * Margin in ms added to the lifetime of the revoke-before mark, for app servers whose clocks
   * disagree.
   * @default 60_000 (1 min)
   */
  readonly clockSkewMs?: number;
}

/** @internal The resolved, frozen options of a {@link SessionStore}. */
interface ResolvedSessionOptions {
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  readonly maxSessionsPerUser: number;
  readonly maxDataBytes: number;
  readonly lastSeenResolutionMs: number;
  readonly clockSkewMs: number;
}

/** The largest per-user cap: listing returns ten values per session and Redis unpacks at most ~8000. */
const MAX_SESSIONS_CAP = 500;
/** @internal */
export const MAX_USER_ID_LENGTH = 1024;
// Byte caps that keep the session hash a compact listpack: Redis turns a hash into a hashtable (about
// three times the memory) once one value exceeds hash-max-listpack-value (64 bytes by default). The ip
// is one field; the user agent is stored in up to four pieces of at most 63 bytes (session-create).
const MAX_VALUE_BYTES = 63;
const USER_AGENT_PIECES = 4;
const MAX_DATA_BYTES_CAP = 1024 * 1024;
const TOKEN_LENGTH = 113;
const TOKEN = /^v1\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;
const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATES = /\p{Cs}/gu;

/**
 * Server-side sessions in Redis: one hash per session under the user's hash tag, so every operation —
 * including "revoke everything of this user" — is one atomic script on one slot, on a single node and
 * on Redis Cluster alike. Tokens carry 256 random bits and are stored only as SHA-256 digests.
 *
 * @example
 * const sessions = new SessionStore<{ theme: string }>({ redis });
 * const authenticatedAt = Date.now(); // before checking the password
 * // … check the password …
 * const { token } = await sessions.create(user.id, { theme: 'dark' }, { authenticatedAt });
 * const session = await sessions.get(token); // null once idle, expired or revoked
 */
export class SessionStore<Data extends Record<string, unknown> = Record<string, unknown>> {
  readonly #ctx: StoreContext;
  readonly #options: ResolvedSessionOptions;
  /** `lastSeenResolutionMs` as the script argument, built once (get is the hot path). */
  readonly #resolutionArg: string;

  /** @throws {InvalidOptionError} when an option breaks its rule (the message names it). */
  constructor(options: SessionStoreOptions) {
    this.#ctx = resolveStoreOptions(options);
    this.#options = resolveSessionOptions(options);
    this.#resolutionArg = String(this.#options.lastSeenResolutionMs);
  }

  /** The resolved options (frozen). */
  get options(): Readonly<ResolvedSessionOptions> {
    return this.#options;
  }

  /**
   * Checks the shape of a session token without touching Redis: `v1.<43>.<22>.<43>`, base64url.
   * Anything else (wrong type, length, prefix or alphabet) gives `null`.
   *
   * @example
   * if (SessionStore.parseToken(cookie) === null) return; // no Redis call for garbage
   */
  static parseToken(token: unknown): { tag: string; sessionId: string } | null {
    const parsed = parseSessionToken(token);
    return parsed === null ? null : { tag: parsed.tag, sessionId: parsed.sessionId };
  }

  /**
   * Creates a session in one round trip: refuses a stale authentication, prunes the user's index,
   * evicts the oldest sessions beyond `maxSessionsPerUser`, and stores the token's digest only.
   *
   * @returns the token (give it to the client, e.g. as a cookie) and the session.
   * @throws {StaleAuthenticationError} when the user's revoke-everything mark is later than
   *   `authenticatedAt` (a login that raced a password reset or logout-all).
   * @throws {SessionDataTooLargeError} when the data exceeds `maxDataBytes`.
   * @throws {InvalidInputError} for an empty or malformed user id, data that is not JSON, a future
   *   `authenticatedAt` or bad per-session timeouts.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * const { token, session } = await sessions.create('user-1', { theme: 'dark' }, {
   *   authenticatedAt, ip: ctx.ip, userAgent: ctx.get('user-agent'),
   * });
   */
  async create(
    userId: string,
    data: Data,
    createOptions: CreateSessionOptions = {},
  ): Promise<{ token: SessionToken; session: Session<Data> }> {
    checkUserId(userId);
    // A JavaScript caller's null means "no options", as undefined does, never a TypeError.
    const options: CreateSessionOptions = createOptions ?? {};
    const o = this.#options;
    const now = this.#ctx.clock.now();
    const authenticatedAt = options.authenticatedAt ?? now;
    // One millisecond ahead is accepted: the revoke-before mark is written as the revocation's instant
    // + 1, and a login that re-checked the current password after a refusal in that same millisecond
    // passes the mark itself (StaleAuthenticationError.revokedBefore) as its authenticatedAt.
    if (!Number.isSafeInteger(authenticatedAt) || authenticatedAt < 0 || authenticatedAt > now + 1) {
      throw new InvalidInputError('authenticatedAt must be an instant in epoch ms, not in the future');
    }
    const idleTimeoutMs = sessionDuration('idleTimeoutMs', options.idleTimeoutMs, o.idleTimeoutMs);
    const absoluteTimeoutMs = sessionDuration(
      'absoluteTimeoutMs',
      options.absoluteTimeoutMs,
      o.absoluteTimeoutMs,
    );
    if (idleTimeoutMs < 2 * o.lastSeenResolutionMs) {
      throw new InvalidInputError('idleTimeoutMs must be at least twice the lastSeenResolutionMs');
    }
    const ip = metadata('ip', options.ip, 1);
    const userAgent = metadata('userAgent', options.userAgent, USER_AGENT_PIECES);
    const amr = checkAmr(options.amr);
    const { args: dataArgs, bytes } = encodeData(data, false);
    if (bytes > o.maxDataBytes) throw new SessionDataTooLargeError(o.maxDataBytes);

    const dataText = encodedToText(dataArgs);
    const tag = userTag(userId);
    const sessionId = randomId();
    const secret = randomSecret();
    const absoluteExpiresAt = now + absoluteTimeoutMs;
    const idleExpiresAt = Math.min(now + idleTimeoutMs, absoluteExpiresAt);
    const reply = toArray(
      await this.#ctx.runner.run(sessionCreate, userSessionKeys(this.#ctx.keys, tag), [
        sessionId,
        userId,
        secretDigest(secret),
        String(now),
        String(authenticatedAt),
        String(idleTimeoutMs),
        String(idleExpiresAt),
        String(absoluteExpiresAt),
        String(idleExpiresAt - now),
        String(o.maxSessionsPerUser),
        ip?.[0] ?? '',
        dataText,
        userAgent?.[0] ?? '',
        userAgent?.[1] ?? '',
        userAgent?.[2] ?? '',
        userAgent?.[3] ?? '',
        amr.join(' '),
      ]),
    );
    const status = toInt(reply[0]);
    if (status === -1) {
      emitSafely(this.#ctx.onEvent, { type: 'session.stale-auth-refused', at: now, userId });
      const mark = Number(reply[1]);
      throw new StaleAuthenticationError(Number.isSafeInteger(mark) ? mark : authenticatedAt + 1);
    }
    if (status !== 1) throw new StoreFailedError('unexpected reply from session-create');
    for (let i = 1; i < reply.length; i++) {
      emitSessionEnded(this.#ctx, userId, String(reply[i]), 'evicted', now);
    }
    emitSafely(this.#ctx.onEvent, { type: 'session.created', at: now, userId, sessionId });

    const session: Session<Data> = {
      id: sessionId,
      userId,
      data: decodeData(dataText) as Data,
      createdAt: now,
      authenticatedAt,
      lastSeenAt: now,
      expiresAt: idleExpiresAt,
      idleExpiresAt,
      absoluteExpiresAt,
    };
    if (amr.length > 0) session.amr = amr;
    if (ip !== undefined) session.ip = ip.join('');
    if (userAgent !== undefined) session.userAgent = userAgent.join('');
    return { token: `v1.${tag}.${sessionId}.${secret}` as SessionToken, session };
  }

  /**
   * Loads a live session by its token in one round trip and slides its idle deadline (at most once
   * per `lastSeenResolutionMs`, never past the absolute deadline). Garbage never reaches Redis.
   *
   * @returns the session, or `null` when the token is malformed, unknown, revoked or expired.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * const session = await sessions.get(ctx.cookies.get('sid'));
   */
  async get(token: string): Promise<Session<Data> | null> {
    const parsed = parseSessionToken(token);
    if (parsed === null) return null;
    const { tag, sessionId } = parsed;
    const now = this.#ctx.clock.now();
    const reply = await this.#ctx.runner.run(sessionGet, sessionKeys(this.#ctx.keys, tag, sessionId), [
      secretDigest(parsed.secret),
      String(now),
      this.#resolutionArg,
      sessionId,
    ]);
    return this.#found(reply, sessionId, now);
  }

  /**
   * Merges `patch` into the data of a live session atomically, field by field: concurrent updates of
   * different fields all survive; a field set to `undefined` is deleted. Never writes to a session
   * that was destroyed, revoked or expired meanwhile. Counts as activity, like {@link get}.
   *
   * @returns the session with the merged data, or `null` when it is not alive.
   * @throws {SessionDataTooLargeError} when the merged data would exceed `maxDataBytes` (nothing is
   *   written).
   * @throws {InvalidInputError} when a value is not JSON-serializable.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * await sessions.update(token, { cart: ['sku-1'], coupon: undefined });
   */
  async update(token: string, patch: SessionPatch<Data>): Promise<Session<Data> | null> {
    const parsed = parseSessionToken(token);
    if (parsed === null) return null;
    const { args, bytes } = encodeData(patch, true);
    const max = this.#options.maxDataBytes;
    if (bytes > max) throw new SessionDataTooLargeError(max);
    const { tag, sessionId } = parsed;
    const now = this.#ctx.clock.now();
    const reply = await this.#ctx.runner.run(sessionUpdate, sessionKeys(this.#ctx.keys, tag, sessionId), [
      secretDigest(parsed.secret),
      String(now),
      this.#resolutionArg,
      sessionId,
      String(max),
      ...args,
    ]);
    if (Array.isArray(reply) && reply[0] === -2) throw new SessionDataTooLargeError(max);
    return this.#found(reply, sessionId, now);
  }

  /**
   * Moves a live session to a new id and token (session-fixation protection, e.g. on privilege
   * change), in one round trip. The old token is dead at once, and so is everything bound to the old
   * id (its refresh tokens, access tokens naming it). Data and metadata carry over.
   *
   * @returns the new token and the session under its new id, or `null` when it is not alive.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * const next = await sessions.regenerate(token);
   */
  async regenerate(token: string): Promise<{ token: SessionToken; session: Session<Data> } | null> {
    const parsed = parseSessionToken(token);
    if (parsed === null) return null;
    const { tag, sessionId } = parsed;
    const now = this.#ctx.clock.now();
    const newId = randomId();
    const secret = randomSecret();
    const reply = await this.#ctx.runner.run(sessionRegenerate, userSessionKeys(this.#ctx.keys, tag), [
      sessionId,
      secretDigest(parsed.secret),
      String(now),
      newId,
      secretDigest(secret),
    ]);
    const session = this.#found(reply, newId, now, sessionId);
    if (session === null) return null;
    emitSafely(this.#ctx.onEvent, {
      type: 'session.regenerated',
      at: now,
      userId: session.userId,
      sessionId: newId,
      previousSessionId: sessionId,
    });
    return { token: `v1.${tag}.${newId}.${secret}` as SessionToken, session };
  }

  /**
   * Ends the session a token names (logout), with its refresh tokens; its access tokens fail their
   * session check from now on. One round trip.
   *
   * @returns `true` when a live session was ended; `false` for a malformed, unknown or dead one.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * await sessions.destroy(token);
   */
  async destroy(token: string): Promise<boolean> {
    const parsed = parseSessionToken(token);
    if (parsed === null) return false;
    const { tag, sessionId } = parsed;
    const now = this.#ctx.clock.now();
    const reply = await this.#ctx.runner.run(
      sessionDestroy,
      sessionKeys(this.#ctx.keys, tag, sessionId),
      [secretDigest(parsed.secret), String(now), sessionId],
      REVOKING,
    );
    const userId = endedUserId(reply);
    if (userId === null) return false;
    emitSessionEnded(this.#ctx, userId, sessionId, 'logout', now);
    return true;
  }

  /**
   * Ends one session of a user by its public id (e.g. from {@link listForUser}), with its refresh
   * tokens. One round trip.
   *
   * @returns `true` when a live session of this user was ended.
   * @throws {InvalidInputError} for an empty or malformed user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * await sessions.revoke(userId, ctx.params.id);
   */
  async revoke(userId: string, sessionId: string): Promise<boolean> {
    return revokeSessionById(this.#ctx, userId, sessionId);
  }

  /**
   * The user's live sessions, newest first (by `createdAt`); dead ones are pruned from the index as a
   * side effect. One round trip. Does not count as activity.
   *
   * @throws {InvalidInputError} for an empty or malformed user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * const list = await sessions.listForUser(userId);
   */
  async listForUser(userId: string): Promise<Session<Data>[]> {
    checkUserId(userId);
    const tag = userTag(userId);
    const now = this.#ctx.clock.now();
    const reply = toArray(
      await this.#ctx.runner.run(sessionList, userSessionKeys(this.#ctx.keys, tag), [
        String(now),
        String(MAX_SESSIONS_CAP),
      ]),
    );
    const out: Session<Data>[] = [];
    for (let i = 0; i + 11 <= reply.length; i += 11) {
      out.push(readSession(reply, i + 1, String(reply[i])) as Session<Data>);
    }
    out.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1));
    return out;
  }

  /**
   * Ends every session of a user in one round trip — their refresh tokens included, and their access
   * tokens through the session check — and, unless a session is kept, sets the user's revoke-before
   * mark to now, so that a login whose credential check began earlier cannot create a session
   * afterwards (see {@link RevokeAllOptions.setMark} for how the mark combines with `except`).
   *
   * @returns how many sessions were ended.
   * @throws {InvalidInputError} for an empty or malformed user id or `except`.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * await sessions.revokeAllForUser(userId);                                      // logout-all, reset
   * await sessions.revokeAllForUser(userId, { except: current.id });             // logout-others
   * await sessions.revokeAllForUser(userId, { except: current.id, setMark: true }); // password change
   */
  async revokeAllForUser(userId: string, revokeOptions: RevokeAllOptions = {}): Promise<number> {
    checkUserId(userId);
    const options: RevokeAllOptions = revokeOptions ?? {};
    const except = options.except;
    if (except !== undefined && (typeof except !== 'string' || !SESSION_ID.test(except))) {
      throw new InvalidInputError('except must be a session id');
    }
    const setMark = options.setMark ?? except === undefined;
    if (typeof setMark !== 'boolean') throw new InvalidInputError('setMark must be a boolean');
    const o = this.#options;
    const tag = userTag(userId);
    const now = this.#ctx.clock.now();
    const reply = toArray(
      await this.#ctx.runner.run(
        sessionRevokeAll,
        userSessionKeys(this.#ctx.keys, tag),
        [
          String(now),
          except ?? '',
          setMark ? '1' : '0',
          String(Math.max(o.absoluteTimeoutMs, o.idleTimeoutMs) + o.clockSkewMs),
          String(o.clockSkewMs),
          // The mark is exclusive of the present millisecond's authentications: a login whose
          // credential check began in the same ms as a password reset must not survive it.
          String(now + 1),
        ],
        REVOKING,
      ),
    );
    const count = toInt(reply[0]);
    emitSafely(this.#ctx.onEvent, {
      type: 'session.revoked-all',
      at: now,
      userId,
      count,
      ...(except !== undefined ? { exceptSessionId: except } : {}),
    });
    return count;
  }

  #found(reply: unknown, sessionId: string, now: number, previousId?: string): Session<Data> | null {
    if (!Array.isArray(reply)) return null;
    const status = reply[0];
    if (status === 1) return readSession(reply, 1, sessionId) as Session<Data>;
    if (status === 2) {
      emitSafely(this.#ctx.onEvent, {
        type: 'session.expired',
        at: now,
        userId: String(reply[1]),
        sessionId: previousId ?? sessionId,
      });
      return null;
    }
    throw new StoreFailedError('unexpected reply from a session script');
  }
}

function resolveSessionOptions(options: SessionStoreOptions): ResolvedSessionOptions {
  const idleTimeoutMs = positiveInt('idleTimeoutMs', options.idleTimeoutMs, 3_600_000);
  const absoluteTimeoutMs = positiveInt('absoluteTimeoutMs', options.absoluteTimeoutMs, 86_400_000);
  const maxSessionsPerUser = positiveInt('maxSessionsPerUser', options.maxSessionsPerUser, 100);
  if (maxSessionsPerUser > MAX_SESSIONS_CAP) {
    throw new InvalidOptionError(`maxSessionsPerUser must be at most ${MAX_SESSIONS_CAP}`);
  }
  const maxDataBytes = positiveInt('maxDataBytes', options.maxDataBytes, 4096);
  if (maxDataBytes > MAX_DATA_BYTES_CAP) {
    throw new InvalidOptionError(`maxDataBytes must be at most ${MAX_DATA_BYTES_CAP}`);
  }
  const lastSeenResolutionMs = positiveInt('lastSeenResolutionMs', options.lastSeenResolutionMs, 60_000, 0);
  if (idleTimeoutMs < 2 * lastSeenResolutionMs) {
    throw new InvalidOptionError('lastSeenResolutionMs must be at most half of idleTimeoutMs');
  }
  const clockSkewMs = positiveInt('clockSkewMs', options.clockSkewMs, 60_000, 0);
  return Object.freeze({
    idleTimeoutMs,
    absoluteTimeoutMs,
    maxSessionsPerUser,
    maxDataBytes,
    lastSeenResolutionMs,
    clockSkewMs,
  });
}

/**
 * @internal The digest of a token's secret part, as stored (`t`, `rc`, `rp`, retired digests): the
 * first 22 base64url characters (132 bits) of its SHA-256. The secret is 256 random bits, so finding
 * a secret for a stored digest (a preimage) takes ~2^132 work and a collision among even 2^40 stored
 * digests has probability ~2^-53: truncation weakens nothing that matters, and saves 21 bytes per
 * digest in every session hash and retired-digest set.
 */
export function secretDigest(secret: string): string {
  return sha256(secret).slice(0, 22);
}

/** @internal The parts of a session token; the secret never leaves this module and refresh-tokens. */
export interface ParsedToken {
  readonly tag: string;
  readonly sessionId: string;
  readonly secret: string;
}

function parseSessionToken(token: unknown): ParsedToken | null {
  return parseTaggedToken(token, TOKEN);
}

/** @internal True when `id` has the shape of a public session id. */
export function isSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID.test(id);
}

/** @internal Throws unless `userId` is a non-empty, well-formed string of at most 1024 characters. */
export function checkUserId(userId: unknown): asserts userId is string {
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
    throw new InvalidInputError(`userId must be a string of 1 to ${MAX_USER_ID_LENGTH} characters`);
  }
  // A lone surrogate becomes U+FFFD on its way to UTF-8: two ids would share one user.
  if (LONE_SURROGATE.test(userId)) throw new InvalidInputError('userId must be well-formed Unicode');
}

/** @internal The predicate form of {@link checkUserId} (a verified token's `sub`). */
export function isUserId(userId: unknown): userId is string {
  return (
    typeof userId === 'string' &&
    userId.length > 0 &&
    userId.length <= MAX_USER_ID_LENGTH &&
    !LONE_SURROGATE.test(userId)
  );
}

/**
 * @internal The KEYS of a script on one session (session-get, -update, -destroy, -revoke,
 * refresh-rotate, -revoke): the session, its retired refresh digests, the user's index and mark.
 */
export function sessionKeys(keys: KeySpace, tag: string, sessionId: string): string[] {
  return [
    keys.session(tag, sessionId),
    keys.retiredRefresh(tag, sessionId),
    keys.sessionIndex(tag),
    keys.revokeBefore(tag),
  ];
}

/**
 * The KEYS of a script that derives session keys from ids it is given or finds in the index
 * (session-create, -regenerate, -list, -revoke-all): the bases of those keys, the index and the mark.
 */
function userSessionKeys(keys: KeySpace, tag: string): string[] {
  return [
    keys.sessionBase(tag),
    keys.retiredRefreshBase(tag),
    keys.sessionIndex(tag),
    keys.revokeBefore(tag),
  ];
}

/**
 * @internal The user id of a `{1, user id}` reply (session-destroy, refresh-revoke: a live session was
 * deleted); null for any other reply.
 */
export function endedUserId(reply: unknown): string | null {
  return Array.isArray(reply) && toInt(reply[0]) === 1 ? String(reply[1]) : null;
}

/** @internal Emits `session.revoked`; shared with RefreshTokens. */
export function emitSessionEnded(
  ctx: StoreContext,
  userId: string,
  sessionId: string,
  reason: SessionEndReason,
  at: number,
): void {
  emitSafely(ctx.onEvent, { type: 'session.revoked', at, userId, sessionId, reason });
}

/**
 * @internal Ends one session of a user by its public id with {@link sessionRevoke} and emits
 * `session.revoked` (reason `revoked`); shared with RefreshTokens.
 * @returns true when a live session was deleted.
 * @throws {InvalidInputError} for an empty or malformed user id.
 */
export async function revokeSessionById(
  ctx: StoreContext,
  userId: string,
  sessionId: string,
): Promise<boolean> {
  checkUserId(userId);
  const now = ctx.clock.now();
  if (!isSessionId(sessionId)) return false;
  const tag = userTag(userId);
  const reply = await ctx.runner.run(
    sessionRevoke,
    sessionKeys(ctx.keys, tag, sessionId),
    [String(now), sessionId],
    REVOKING,
  );
  if (toInt(reply) !== 1) return false;
  emitSessionEnded(ctx, userId, sessionId, 'revoked', now);
  return true;
}

function sessionDuration(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < 1) {
    throw new InvalidInputError(`${name} must be a whole number of ms ≥ 1`);
  }
  return resolved;
}

const utf8 = new TextEncoder();

const pieceBuffer = new Uint8Array(MAX_VALUE_BYTES);

/**
 * Client metadata as stored: at most `pieces` pieces of at most 63 bytes of UTF-8 each, every piece
 * cut at a character boundary (the fake Redis decodes each value as UTF-8, so a piece may not end
 * inside a character). Metadata comes from the client (a long user agent): a bounded prefix is kept
 * rather than the login refused. Returns the pieces, or undefined when nothing was given.
 */
function metadata(name: string, value: unknown, pieces: number): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new InvalidInputError(`${name} must be a string`);
  // A UTF-16 unit is at least one UTF-8 byte, so this first cut keeps everything that can fit.
  const max = pieces * MAX_VALUE_BYTES;
  let rest = value.length > max ? value.slice(0, max) : value;
  // A lone surrogate (sent as such, or half a pair cut above) reaches Redis as U+FFFD: return what
  // get() will return.
  if (LONE_SURROGATE.test(rest)) rest = rest.replace(LONE_SURROGATES, '\uFFFD');
  const out: string[] = [];
  while (rest !== '' && out.length < pieces) {
    // encodeInto writes whole characters only: `read` units make the longest prefix that fits.
    const { read } = utf8.encodeInto(rest, pieceBuffer);
    out.push(rest.slice(0, read));
    rest = rest.slice(read);
  }
  return out;
}

/**
 * Encodes data fields as script arguments: name, JSON text, … With `deletions`, an `undefined` value
 * becomes '' (delete the field); otherwise it is left out. `bytes` counts names plus JSON texts.
 */
function encodeData(data: unknown, deletions: boolean): { args: string[]; bytes: number } {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidInputError('session data must be a plain object');
  }
  const args: string[] = [];
  let bytes = 0;
  for (const name of Object.keys(data)) {
    if (name.includes('\u0000') || LONE_SURROGATE.test(name)) {
      throw new InvalidInputError('session data field names must be well-formed text without NUL');
    }
    const value = (data as Record<string, unknown>)[name];
    let json: string | undefined;
    try {
      json = value === undefined ? undefined : JSON.stringify(value);
    } catch {
      // BigInt, cycles, a throwing toJSON: the caller's bug, reported without echoing the value.
      throw new InvalidInputError(`session data field "${name}" is not JSON-serializable`);
    }
    if (json === undefined) {
      if (value !== undefined) {
        throw new InvalidInputError(`session data field "${name}" is not JSON-serializable`);
      }
      if (deletions) args.push(name, '');
      continue;
    }
    args.push(name, json);
    bytes += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(json, 'utf8');
  }
  return { args, bytes };
}

function encodedToText(args: readonly string[]): string {
  return args.join('\u0000');
}

/** Decodes `name NUL json NUL name NUL json …` (JSON text never holds a raw NUL; names may not). */
function decodeData(text: string): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  if (text === '') return data;
  const parts = text.split('\u0000');
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const name = parts[i] as string;
    const value: unknown = JSON.parse(parts[i + 1] as string);
    // Assignment is the fast path (get is hot); a field named "__proto__" must stay a field, never
    // become the prototype, so that one name goes through defineProperty.
    if (name === '__proto__') {
      Object.defineProperty(data, name, { value, enumerable: true, writable: true, configurable: true });
    } else {
      data[name] = value;
    }
  }
  return data;
}

function instant(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) throw new StoreFailedError('unexpected reply from Redis');
  return n;
}

/** @internal One RFC 8176 `amr` value as latchkey accepts it. */
export const AMR_VALUE = /^[a-z0-9_-]{1,16}$/;

/** @internal Validates `amr` values: a fresh, de-duplicated array (stored space-separated). */
export function checkAmr(amr: readonly string[] | undefined): string[] {
  if (amr === undefined || amr === null) return [];
  if (!Array.isArray(amr)) throw new InvalidInputError('amr must be an array of strings');
  const out: string[] = [];
  for (const value of amr) {
    if (typeof value !== 'string' || !AMR_VALUE.test(value)) {
      throw new InvalidInputError('amr values must be 1-16 characters of a-z, 0-9, _ or -');
    }
    if (!out.includes(value)) out.push(value);
  }
  if (out.length > 8 || out.join(' ').length > 63) {
    throw new InvalidInputError('amr holds at most 8 values and 63 bytes');
  }
  return out;
}

/**
 * @internal Reads the ten session values a script returns from `reply[at]` on: user id, createdAt,
 * authenticatedAt, lastSeenAt, idle deadline, absolute deadline, ip, user agent, data, amr.
 */
export function readSession(reply: readonly unknown[], at: number, sessionId: string): Session<unknown> {
  const idleExpiresAt = instant(reply[at + 4]);
  const absoluteExpiresAt = instant(reply[at + 5]);
  let data: Record<string, unknown>;
  try {
    data = decodeData(String(reply[at + 8] ?? ''));
  } catch (error) {
    throw new StoreFailedError('session data in Redis is not valid JSON', { cause: error });
  }
  const session: Session<unknown> = {
    id: sessionId,
    userId: String(reply[at]),
    data,
    createdAt: instant(reply[at + 1]),
    authenticatedAt: instant(reply[at + 2]),
    lastSeenAt: instant(reply[at + 3]),
    expiresAt: Math.min(idleExpiresAt, absoluteExpiresAt),
    idleExpiresAt,
    absoluteExpiresAt,
  };
  const ip = reply[at + 6];
  const userAgent = reply[at + 7];
  if (typeof ip === 'string' && ip !== '') session.ip = ip;
  const amr = reply[at + 9];
  if (typeof amr === 'string' && amr !== '') session.amr = amr.split(' ');
  if (typeof userAgent === 'string' && userAgent !== '') session.userAgent = userAgent;
  return session;
}

/** @internal Parses a token of the given version prefix (`v1` sessions, `r1` refresh tokens). */
export function parseTaggedToken(token: unknown, pattern: RegExp): ParsedToken | null {
  if (typeof token !== 'string' || token.length !== TOKEN_LENGTH) return null;
  const match = pattern.exec(token);
  if (match === null) return null;
  return { tag: match[1] as string, sessionId: match[2] as string, secret: match[3] as string };
}
