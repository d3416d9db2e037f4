import {
  InvalidInputError,
  InvalidOptionError,
  RefreshTokenReusedError,
  StoreFailedError,
} from './errors.js';
import { emitSafely } from './events.js';
import { hmac, randomId, randomSecret } from './internal/crypto.js';
import {
  positiveInt,
  requireSecret,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toInt } from './internal/script.js';
import { userTag } from './keys.js';
import { refreshIssue } from './lua/generated/refresh-issue.js';
import { refreshRevoke } from './lua/generated/refresh-revoke.js';
import { refreshRotate } from './lua/generated/refresh-rotate.js';
import type { ServerSecret } from './secret.js';
import {
  checkUserId,
  emitSessionEnded,
  endedUserId,
  isSessionId,
  parseTaggedToken,
  readSession,
  revokeSessionById,
  type Session,
  secretDigest,
  sessionKeys,
} from './sessions.js';

/**
 * The secret a client holds to renew its access: `r1.<user tag>.<session id>.<secret>`. Belongs to one
 * session and never outlives it. Never log it; it reaches Redis only as a SHA-256 digest.
 */
export type RefreshToken = string & { readonly __brand: 'RefreshToken' };

/** What {@link RefreshTokens.rotate} returns: the one live successor and the renewed session. */
export interface RotatedRefreshToken {
  /** The new refresh token; the presented one is rotated away. */
  readonly token: RefreshToken;
  /** The session after rotation (its idle deadline renewed, never its absolute one). */
  readonly session: Session<Record<string, unknown>>;
}

/** Options of {@link RefreshTokens}. */
export interface RefreshTokensOptions extends StoreOptions {
  /** The server secret; successors are derived under `secret.derive('refresh-successor')`. */
  readonly secret: ServerSecret;
  /**
   * How long after a rotation, in ms, the immediately previous token may be presented again and get
   * the same successor back (for a client whose refresh answer was lost). 0 turns it off: then a lost
   * answer plus a retry counts as reuse and revokes the session. Older tokens are reuse even inside
   * the window. At most 300 000 (5 min).
   * @default 0
   */
  readonly graceMs?: number;
  /**
   * How many rotated-away digests a session keeps for reuse detection (1 to 1000). A token older than
   * that is merely invalid when presented.
   * @default 100
   */
  readonly maxRetired?: number;
}

interface ResolvedRefreshOptions {
  readonly graceMs: number;
  readonly maxRetired: number;
}

const TOKEN = /^r1\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;
const MAX_GRACE_MS = 300_000;
const MAX_RETIRED = 1000;

/**
 * Refresh tokens bound to sessions of a {@link SessionStore} (sharing its Redis, prefix and record),
 * rotated in one atomic round trip with reuse detection (RFC 9700 §4.14): presenting a token that was
 * already rotated away revokes the whole session — its refresh tokens, its cookie and, through the
 * session check, its access tokens. A token whose digest was never issued is only invalid, so knowing
 * a public session id is not enough to revoke it.
 *
 * Successors are derived, not drawn: `HMAC(secret.derive('refresh-successor'), presented token)`. A
 * retry inside the grace window therefore gets the very same successor back — there is never a second
 * live token — and nothing but digests is stored.
 *
 * @example
 * const refresh = new RefreshTokens({ redis, secret: ServerSecret.fromBase64url(env.LATCHKEY_SECRET) });
 * const { session } = await sessions.create(user.id, {}, { authenticatedAt });
 * const refreshToken = await refresh.issue(session);
 * // later, at POST /auth/refresh:
 * const rotated = await refresh.rotate(body.refreshToken); // null → 401 invalid_refresh_token
 */
export class RefreshTokens {
  readonly #ctx: StoreContext;
  readonly #options: ResolvedRefreshOptions;
  readonly #successorKey: Buffer;

  /** @throws {InvalidOptionError} when an option breaks its rule (the message names it). */
  constructor(options: RefreshTokensOptions) {
    this.#ctx = resolveStoreOptions(options);
    const secret = requireSecret(options.secret);
    const graceMs = positiveInt('graceMs', options.graceMs, 0, 0);
    if (graceMs > MAX_GRACE_MS) throw new InvalidOptionError(`graceMs must be at most ${MAX_GRACE_MS}`);
    const maxRetired = positiveInt('maxRetired', options.maxRetired, 100);
    if (maxRetired > MAX_RETIRED) throw new InvalidOptionError(`maxRetired must be at most ${MAX_RETIRED}`);
    this.#options = Object.freeze({ graceMs, maxRetired });
    this.#successorKey = secret.derive('refresh-successor');
  }

  /** The resolved options (frozen). */
  get options(): Readonly<ResolvedRefreshOptions> {
    return this.#options;
  }

  /**
   * Checks the shape of a refresh token without touching Redis: `r1.<43>.<22>.<43>`, base64url.
   *
   * @example
   * if (RefreshTokens.parseToken(body.refreshToken) === null) throw badRequest();
   */
  static parseToken(token: unknown): { tag: string; sessionId: string } | null {
    const parsed = parseTaggedToken(token, TOKEN);
    return parsed === null ? null : { tag: parsed.tag, sessionId: parsed.sessionId };
  }

  /**
   * Issues the refresh token of a live session (one round trip). A token issued earlier for the same
   * session is rotated away: presenting it afterwards is reuse.
   *
   * @returns the token, or `null` when the session is unknown, expired or revoked.
   * @throws {InvalidInputError} for a malformed user or session id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * const refreshToken = await refresh.issue({ userId: session.userId, id: session.id });
   */
  async issue(session: { readonly userId: string; readonly id: string }): Promise<RefreshToken | null> {
    if (session === null || typeof session !== 'object') {
      throw new InvalidInputError('session must be { userId, id }');
    }
    const { userId, id } = session;
    checkUserId(userId);
    if (!isSessionId(id)) throw new InvalidInputError('session.id must be a session id');
    const tag = userTag(userId);
    const secret = randomSecret();
    const keys = this.#ctx.keys;
    const reply = await this.#ctx.runner.run(
      refreshIssue,
      [keys.session(tag, id), keys.retiredRefresh(tag, id), keys.revokeBefore(tag)],
      [String(this.#ctx.clock.now()), secretDigest(secret), String(this.#options.maxRetired)],
    );
    return toInt(reply) === 1 ? (`r1.${tag}.${id}.${secret}` as RefreshToken) : null;
  }

  /**
   * Rotates a refresh token in one atomic round trip and renews its session's idle deadline (never the
   * absolute one). Garbage never reaches Redis.
   *
   * @returns the successor and the session, or `null` when the token is malformed, was never issued,
   *   is too old to be remembered, or its session is gone, expired or revoked.
   * @throws {RefreshTokenReusedError} when the token had already been rotated away (outside the grace
   *   window, or older than the previous one): the session has been revoked. Answer 401 and treat it as
   *   a security event (`refresh.reuse-detected` is emitted).
   * @throws {StoreUnavailableError} when Redis cannot be reached in time; nothing was half-rotated.
   *   A call that ioredis queued meanwhile may still run when Redis is back (see the README on
   *   `enableOfflineQueue`); a call it re-sends after a lost reply gets the same successor, not reuse.
   *
   * @example
   * try {
   *   const rotated = await refresh.rotate(body.refreshToken);
   *   if (rotated === null) return unauthorized('invalid_refresh_token');
   * } catch (error) {
   *   if (isLatchkeyError(error, 'ERR_REFRESH_REUSED')) return unauthorized('refresh_token_reused');
   *   throw error;
   * }
   */
  async rotate(token: string): Promise<RotatedRefreshToken | null> {
    const parsed = parseTaggedToken(token, TOKEN);
    if (parsed === null) return null;
    const { tag, sessionId } = parsed;
    const successorSecret = hmac(this.#successorKey, token);
    const now = this.#ctx.clock.now();
    const reply = await this.#ctx.runner.run(
      refreshRotate,
      sessionKeys(this.#ctx.keys, tag, sessionId),
      [
        sessionId,
        String(now),
        secretDigest(parsed.secret),
        secretDigest(successorSecret),
        String(this.#options.graceMs),
        String(this.#options.maxRetired),
        // Tells a replay of this very call (ioredis re-sends it after a reconnect that lost the reply)
        // from a second presentation of the token, which is reuse.
        randomId(),
      ],
      REVOKING,
    );
    if (!Array.isArray(reply)) {
      if (toInt(reply) === 0) return null;
      throw new StoreFailedError('unexpected reply from refresh-rotate');
    }
    const status = toInt(reply[0]);
    if (status === -1) {
      const userId = String(reply[1]);
      emitSafely(this.#ctx.onEvent, { type: 'refresh.reuse-detected', at: now, userId, sessionId });
      emitSessionEnded(this.#ctx, userId, sessionId, 'refresh-reuse', now);
      throw new RefreshTokenReusedError(sessionId);
    }
    if (status !== 1 && status !== 3) throw new StoreFailedError('unexpected reply from refresh-rotate');
    return {
      token: `r1.${tag}.${sessionId}.${successorSecret}` as RefreshToken,
      session: readSession(reply, 1, sessionId) as Session<Record<string, unknown>>,
    };
  }

  /**
   * Ends the session a refresh token belongs to (logout with a refresh token, RFC 7009 style): its
   * refresh tokens, its cookie and its access tokens. One round trip. A token that was never issued
   * changes nothing.
   *
   * @returns `true` when a live session was ended.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * await refresh.revoke(body.refreshToken);
   */
  async revoke(token: string): Promise<boolean> {
    const parsed = parseTaggedToken(token, TOKEN);
    if (parsed === null) return false;
    const { tag, sessionId } = parsed;
    const now = this.#ctx.clock.now();
    const reply = await this.#ctx.runner.run(
      refreshRevoke,
      sessionKeys(this.#ctx.keys, tag, sessionId),
      [sessionId, secretDigest(parsed.secret), String(now)],
      REVOKING,
    );
    const userId = endedUserId(reply);
    if (userId === null) return false;
    emitSessionEnded(this.#ctx, userId, sessionId, 'logout', now);
    return true;
  }

  /**
   * Ends a session by id with all its refresh state (the same as `SessionStore.revoke`). One round trip.
   *
   * @returns `true` when a live session was ended.
   * @throws {InvalidInputError} for a malformed user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   *
   * @example
   * await refresh.revokeSession(userId, sessionId);
   */
  async revokeSession(userId: string, sessionId: string): Promise<boolean> {
    return revokeSessionById(this.#ctx, userId, sessionId);
  }
}
