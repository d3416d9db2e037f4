import { type Claims, PublicProtocol } from 'paseto';
import { type PublicKey, SignFactory } from 'paseto/v4/public';
import { InvalidInputError, InvalidOptionError, KeyError, StoreFailedError } from './errors.js';
import { randomId } from './internal/crypto.js';
import { openV4Public } from './internal/ed25519-verify.js';
import { LruMap } from './internal/lru.js';
import {
  positiveInt,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { registeredClaimsFailure } from './internal/paseto-claims.js';
import { toArray, toInt } from './internal/script.js';
import { type KeyRing, keyRingState } from './key-ring.js';
import { userTag } from './keys.js';
import { accessVerify } from './lua/generated/access-verify.js';
import { isValidJti, RevocationList, resolveRevocationOptions } from './revocation-list.js';
import { AMR_VALUE, checkAmr, checkUserId, isUserId } from './sessions.js';

/** paseto signs; verification is latchkey's own one-pass check (see `openV4Public`). */
const v4 = new PublicProtocol(SignFactory);

/**
 * Bound into every signature without being stored in the token (PASETO's implicit assertion), so a
 * latchkey access token never verifies as anything else signed with the same key, and nothing else
 * signed with it verifies as an access token.
 */
const IMPLICIT_ASSERTION = new TextEncoder().encode('latchkey/access-token/v1');
/** The only token shape accepted: v4.public with a footer, all base64url, checked before any parsing. */
const TOKEN = /^v4\.public\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
/** Footer bytes read before verification (to pick the key): `{"kid":"<64 chars>"}` fits in 128. */
const MAX_FOOTER_CHARS = Math.ceil((128 * 4) / 3);
/**
 * The one footer latchkey writes, byte for byte (`JSON.stringify({ kid })` of a valid key id). Read
 * before the signature is checked, so nothing looser than this exact shape is parsed.
 */
const FOOTER = /^\{"kid":"([A-Za-z0-9._-]{1,64})"\}$/;
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_TTL_MS = 24 * 3600_000;
const MAX_CLAIM_TEXT = 256;
/** Claims latchkey writes or checks itself; custom claims may not set them. */
const RESERVED_CLAIMS = new Set(['sub', 'sid', 'jti', 'iat', 'exp', 'nbf', 'iss', 'aud', 'amr']);

/** A JSON value inside a token's claims. */
export type ClaimValue =
  | null
  | boolean
  | number
  | string
  | readonly ClaimValue[]
  | { readonly [key: string]: ClaimValue };

/** The claims of a verified latchkey access token (dates are RFC 3339 strings, as PASETO writes them). */
export interface AccessTokenClaims {
  /** The user id. */
  readonly sub: string;
  /** The public id of the session the token belongs to. */
  readonly sid: string;
  /** The token id (what the revocation list records). */
  readonly jti: string;
  /** Issued at, RFC 3339, whole seconds. */
  readonly iat: string;
  /** Expires at, RFC 3339, whole seconds. */
  readonly exp: string;
  readonly iss?: string;
  readonly aud?: string;
  readonly nbf?: string;
  /** RFC 8176 authentication methods of the session, when {@link AccessTokens.issue} was given `amr`. */
  readonly amr?: readonly string[] | undefined;
  /** Custom claims given to {@link AccessTokens.issue}. */
  readonly [claim: string]: ClaimValue | undefined;
}

/** Why a token was not accepted. Only `revoked` and `session_revoked` needed Redis to decide. */
export type AccessTokenFailure =
  | 'malformed'
  | 'invalid_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'unknown_key'
  | 'claims'
  | 'revoked'
  | 'session_revoked';

/** The outcome of {@link AccessTokens.verify}. */
export type AccessTokenVerification =
  | {
      readonly ok: true;
      /** The verified claims (frozen). */
      readonly claims: AccessTokenClaims;
      /** `claims.sub` */
      readonly userId: string;
      /** `claims.sid` */
      readonly sessionId: string;
      /** `claims.jti` */
      readonly jti: string;
      /** `claims.exp` in epoch ms. */
      readonly expiresAt: number;
      /**
       * When the session's credential check began (its server-side `authenticatedAt`, epoch ms):
       * what freshness checks use, never the token's `iat`.
       */
      readonly authenticatedAt: number;
      /** `claims.amr` (how the session was made, RFC 8176), or empty when the token carries none. */
      readonly amr: readonly string[];
    }
  | { readonly ok: false; readonly reason: AccessTokenFailure };

/** What {@link AccessTokens.issue} signs. */
export interface IssueAccessTokenInput {
  /** The user id (`sub`). Any non-empty string up to 1024 characters. */
  readonly userId: string;
  /** The public id of the user's live session (`sid`); the token dies with that session. */
  readonly sessionId: string;
  /** Extra claims. They cannot set `sub`, `sid`, `jti`, `iat`, `exp`, `nbf`, `iss`, `aud` or `amr`. */
  readonly claims?: Readonly<Record<string, ClaimValue>>;
  /**
   * The session's RFC 8176 authentication methods (pass `session.amr`), signed as the `amr` claim so
   * that a bearer check sees the assurance without another round trip. Rules as `SessionStore.create`.
   * @default no `amr` claim
   */
  readonly amr?: readonly string[] | undefined;
  /**
   * This token's lifetime in ms (at least 1000, at most 24 h).
   * @default the store's `ttlMs`
   */
  readonly ttlMs?: number;
}

/** A freshly signed access token. */
export interface IssuedAccessToken {
  /** The `v4.public.…` token. */
  readonly token: string;
  readonly jti: string;
  /** When it was issued (`iat`), epoch ms, whole seconds. */
  readonly issuedAt: number;
  /** When it expires (`exp`), epoch ms, whole seconds. */
  readonly expiresAt: number;
}

/** A token id to revoke without the token at hand. */
export interface AccessTokenId {
  readonly jti: string;
  readonly userId: string;
  /** The token's `exp`, epoch ms. */
  readonly expiresAt: number;
}

/** Options of the cache of verified tokens. */
export interface AccessTokenCacheOptions {
  /**
   * How many verified tokens to remember (least recently used go first).
   * @default 10000
   */
  readonly maxEntries?: number;
  /**
   * Longer tokens are verified every time and never cached, in characters.
   * @default 2048
   */
  readonly maxTokenLength?: number;
}

/** See {@link AccessTokens.cacheStats}. */
export interface AccessTokenCacheStats {
  readonly entries: number;
  readonly hits: number;
  readonly misses: number;
}

/** Options of {@link AccessTokens}. */
export interface AccessTokensOptions extends StoreOptions {
  /** The signing and verification keys. Changes to the ring take effect at once (and empty the cache). */
  readonly keyRing: KeyRing;
  /**
   * Lifetime of issued tokens, in ms (at least 1000, at most 24 h).
   * @default 900000 (15 min)
   */
  readonly ttlMs?: number;
  /** Written as `iss` when issuing and required when verifying. */
  readonly issuer?: string;
  /** Written as `aud` when issuing and required when verifying. */
  readonly audience?: string;
  /**
   * Tolerance for clock differences when checking `exp`, `nbf` and `iat`, in ms (at most 1 h).
   * @default 5000
   */
  readonly clockToleranceMs?: number;
  /**
   * Extra lifetime of revoked-jti records for other servers' clocks, in ms (at most 1 h).
   * @default 60000
   */
  readonly skewMarginMs?: number;
  /**
   * Tokens longer than this are refused before any parsing, in characters (issuing refuses to
   * produce one). At least 256.
   * @default 8192
   */
  readonly maxTokenLength?: number;
  /**
   * A bounded LRU cache of tokens whose signature and claims checked out, so that a repeated token
   * skips the signature check. Revocation and the session are still checked in Redis on every
   * verification. `false` turns it off.
   * @default { maxEntries: 10000, maxTokenLength: 2048 }
   */
  readonly cache?: AccessTokenCacheOptions | false;
}

interface ResolvedOptions {
  readonly ttlMs: number;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly clockToleranceMs: number;
  readonly maxTokenLength: number;
  readonly cache: { readonly maxEntries: number; readonly maxTokenLength: number } | null;
}

/** A token whose signature and claims checked out (what the cache holds). */
interface Verified {
  readonly claims: AccessTokenClaims;
  readonly userId: string;
  readonly sessionId: string;
  readonly jti: string;
  readonly expiresAt: number;
  readonly amr: readonly string[];
  /** The earliest instant (tolerance applied) at which the token is acceptable. */
  readonly notBefore: number;
  /** [session, revoke-before mark, revoked jti] — all under the user's tag. */
  readonly keys: readonly [string, string, string];
}

/**
 * PASETO v4.public access tokens bound to a server-side session. Issuing is local; verifying checks
 * everything local first (size, format, version and purpose, key id, signature, implicit assertion,
 * `exp` / `nbf` / `iat` with a small tolerance, issuer, audience) and then makes exactly one Redis
 * round trip, read-only, that answers together: is the `jti` revoked, is the session `sid` alive, and
 * was it authenticated before the user's "revoke everything" mark. A token dies when it expires, when
 * it is revoked, when its session ends, and when its user is logged out everywhere.
 *
 * @example
 * const keyRing = await KeyRing.fromPaserk({ signing: process.env.PASETO_SECRET_KEY!, kid: 'k1' });
 * const accessTokens = new AccessTokens({ redis, keyRing });
 * const { token } = await accessTokens.issue({ userId: session.userId, sessionId: session.id });
 * const result = await accessTokens.verify(token);
 * if (result.ok) console.log(result.userId, result.sessionId);
 */
export class AccessTokens {
  readonly #ctx: StoreContext;
  readonly #options: ResolvedOptions;
  readonly #ring: KeyRing;
  readonly #revocations: RevocationList;
  readonly #cache: LruMap<string, Verified> | null;
  readonly #cacheMaxTokenLength: number;
  #cacheRingVersion = -1;
  #cacheHits = 0;
  #cacheMisses = 0;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: AccessTokensOptions) {
    this.#ctx = resolveStoreOptions(options);
    this.#ring = options.keyRing;
    keyRingState(this.#ring); // throws InvalidOptionError unless it is a KeyRing
    const { clockToleranceMs } = resolveRevocationOptions(options);
    this.#options = resolveOptions(options, clockToleranceMs);
    this.#revocations = new RevocationList(options);
    this.#cache = this.#options.cache === null ? null : new LruMap(this.#options.cache.maxEntries);
    this.#cacheMaxTokenLength = this.#options.cache?.maxTokenLength ?? 0;
  }

  /**
   * Signs a new access token for a session. Local only (no Redis): call it right after the session
   * was created or its refresh token rotated.
   *
   * @throws {KeyError} when the key ring has no signing key.
   * @throws {InvalidInputError} for a bad user id, session id, claim or lifetime, or when the claims
   *   make the token longer than `maxTokenLength`.
   */
  async issue(input: IssueAccessTokenInput): Promise<IssuedAccessToken> {
    if (input === null || typeof input !== 'object') {
      throw new InvalidInputError('issue() takes { userId, sessionId, claims? }');
    }
    const { userId, sessionId } = input;
    checkUserId(userId);
    if (typeof sessionId !== 'string' || !SESSION_ID.test(sessionId)) {
      throw new InvalidInputError('sessionId must be a session public id (1 to 64 base64url characters)');
    }
    const ttlMs = input.ttlMs ?? this.#options.ttlMs;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000 || ttlMs > MAX_TTL_MS) {
      throw new InvalidInputError('ttlMs must be a whole number of ms between 1000 and 86400000');
    }
    const custom = input.claims ?? {};
    if (custom === null || typeof custom !== 'object' || Array.isArray(custom)) {
      throw new InvalidInputError('claims must be a plain object');
    }
    for (const name of Object.keys(custom)) {
      if (RESERVED_CLAIMS.has(name))
        throw new InvalidInputError(`claims cannot set the registered claim "${name}"`);
    }
    const amr = input.amr === undefined ? undefined : checkAmr(input.amr);
    const signing = keyRingState(this.#ring).signing;
    if (signing === null) throw new KeyError('the key ring has no signing key');

    const now = this.#ctx.clock.now();
    const issuedAt = wholeSeconds(now);
    const expiresAt = wholeSeconds(now + ttlMs);
    const jti = randomId();
    const claims: Claims = {
      ...(custom as Claims),
      sub: userId,
      sid: sessionId,
      jti,
      iat: rfc3339(issuedAt),
      exp: rfc3339(expiresAt),
      ...(amr === undefined ? {} : { amr }),
      ...(this.#options.issuer === undefined ? {} : { iss: this.#options.issuer }),
      ...(this.#options.audience === undefined ? {} : { aud: this.#options.audience }),
    };
    let token: string;
    try {
      token = await v4.Sign(signing.key, claims, {
        footer: new TextEncoder().encode(JSON.stringify({ kid: signing.kid })),
        implicitAssertion: IMPLICIT_ASSERTION,
        addIssuedAt: false,
      });
    } catch (cause) {
      if (cause instanceof TypeError) throw new InvalidInputError('claims must be JSON values');
      throw cause;
    }
    if (token.length > this.#options.maxTokenLength) {
      throw new InvalidInputError(
        `the claims make the token longer than maxTokenLength (${this.#options.maxTokenLength})`,
      );
    }
    return Object.freeze({ token, jti, issuedAt, expiresAt });
  }

  /**
   * Verifies a token: every local check, then one read-only Redis round trip (revoked jti, session
   * alive, user-wide revocation mark). Never writes to Redis.
   *
   * @returns the claims, or the reason the token is not accepted. Any input, however malformed,
   *   yields a result rather than an exception.
   * @throws {StoreUnavailableError} when Redis cannot be reached — a token is never "valid" then.
   */
  async verify(token: string): Promise<AccessTokenVerification> {
    const now = this.#ctx.clock.now();
    const verified = this.#verifyLocally(token, now);
    if (typeof verified === 'string') return { ok: false, reason: verified };
    const reply = toArray(await this.#ctx.runner.run(accessVerify, verified.keys, [String(now)]));
    switch (toInt(reply[0])) {
      case 0:
        return {
          ok: true,
          claims: verified.claims,
          userId: verified.userId,
          sessionId: verified.sessionId,
          jti: verified.jti,
          expiresAt: verified.expiresAt,
          authenticatedAt: toInstant(reply[1]),
          amr: verified.amr,
        };
      case 1:
        return { ok: false, reason: 'revoked' };
      case 2:
      case 3:
        return { ok: false, reason: 'session_revoked' };
      default:
        throw new StoreFailedError('unexpected reply from Redis (access-verify)');
    }
  }

  /**
   * Revokes one access token until it expires (its session lives on; end the session to kill all of
   * its tokens). Give the token itself — it must verify locally — or its id, user and expiry.
   * One round trip.
   *
   * @returns `true` when the token is now revoked; `false` when it had already expired (nothing is
   *   stored then).
   * @throws {InvalidInputError} when the token does not verify (bad format, signature, key or claims)
   *   or the id is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached.
   */
  async revoke(target: string | AccessTokenId): Promise<boolean> {
    if (typeof target === 'string') {
      const now = this.#ctx.clock.now();
      const verified = this.#verifyLocally(target, now);
      if (verified === 'expired') return false;
      if (typeof verified === 'string') throw new InvalidInputError('the token is not a valid access token');
      return this.#revocations.revoke(verified.jti, {
        userId: verified.userId,
        expiresAt: verified.expiresAt,
      });
    }
    if (target === null || typeof target !== 'object') {
      throw new InvalidInputError('revoke() takes a token or { jti, userId, expiresAt }');
    }
    checkUserId(target.userId);
    return this.#revocations.revoke(target.jti, { userId: target.userId, expiresAt: target.expiresAt });
  }

  /** Forgets every cached verification (the cache also empties itself when the key ring changes). */
  clearCache(): void {
    this.#cache?.clear();
  }

  /**
   * How the cache of verified tokens is doing, for metrics: entries held, and lookups that skipped
   * (hits) or needed (misses) a signature check since construction. All zero when the cache is off.
   */
  cacheStats(): AccessTokenCacheStats {
    return Object.freeze({
      entries: this.#cache?.size ?? 0,
      hits: this.#cacheHits,
      misses: this.#cacheMisses,
    });
  }

  /** Local checks, all synchronous. Returns the failure reason or the verified token. */
  #verifyLocally(token: unknown, now: number): Verified | AccessTokenFailure {
    if (typeof token !== 'string' || token.length > this.#options.maxTokenLength) return 'malformed';
    const ring = keyRingState(this.#ring);
    const cache = this.#cache;
    if (cache !== null) {
      // A token too long to be cached is never looked up either (hashing it as a key costs for nothing).
      if (token.length <= this.#cacheMaxTokenLength) {
        if (this.#cacheRingVersion !== ring.version) {
          cache.clear();
          this.#cacheRingVersion = ring.version;
        }
        const hit = cache.get(token);
        if (hit !== undefined) {
          if (now <= hit.expiresAt && now >= hit.notBefore) {
            this.#cacheHits++;
            return hit;
          }
          cache.delete(token);
        }
      }
      this.#cacheMisses++;
    }
    const match = TOKEN.exec(token);
    if (match === null) return 'malformed';
    const footerText = match[2] as string;
    if (footerText.length > MAX_FOOTER_CHARS) return 'malformed';
    const footer = Buffer.from(footerText, 'base64url');
    const kid = kidOf(footer);
    if (kid === null) return 'malformed';
    const key = ring.verification.get(kid);
    if (key === undefined) return 'unknown_key';
    return this.#verifySignature(token, match[1] as string, footerText, footer, key, now, ring.version);
  }

  #verifySignature(
    token: string,
    body: string,
    footerText: string,
    footer: Buffer,
    key: PublicKey,
    now: number,
    ringVersion: number,
  ): Verified | AccessTokenFailure {
    const claims = openV4Public(key, body, footerText, footer, IMPLICIT_ASSERTION);
    if (typeof claims === 'string') return claims;
    const failure = registeredClaimsFailure(claims, {
      now,
      clockToleranceMs: this.#options.clockToleranceMs,
      issuer: this.#options.issuer,
      audience: this.#options.audience,
    });
    if (failure !== null) return failure;
    const verified = this.#checkClaims(claims);
    if (typeof verified === 'string') return verified;
    const cache = this.#cache;
    if (
      cache !== null &&
      token.length <= this.#cacheMaxTokenLength &&
      this.#cacheRingVersion === ringVersion
    ) {
      cache.set(token, verified);
    }
    return verified;
  }

  /** The claims latchkey relies on, beyond the registered-claim checks (types, shapes, presence). */
  #checkClaims(claims: Record<string, unknown>): Verified | AccessTokenFailure {
    const { sub, sid, jti, iat, exp, nbf, amr } = claims;
    if (!isUserId(sub) || typeof sid !== 'string' || !SESSION_ID.test(sid) || !isValidJti(jti)) {
      return 'claims';
    }
    if (typeof iat !== 'string' || typeof exp !== 'string') return 'claims';
    let methods: readonly string[] = [];
    if (amr !== undefined) {
      if (
        !Array.isArray(amr) ||
        amr.length > 8 ||
        !amr.every((v) => typeof v === 'string' && AMR_VALUE.test(v))
      ) {
        return 'claims';
      }
      methods = amr as readonly string[];
    }
    const expiresAt = Date.parse(exp);
    const issuedAt = Date.parse(iat);
    const notBeforeClaim = typeof nbf === 'string' ? Date.parse(nbf) : issuedAt;
    if (!Number.isFinite(expiresAt) || !Number.isFinite(issuedAt) || !Number.isFinite(notBeforeClaim)) {
      return 'claims';
    }
    // issue() never signs a longer life: a token that claims one was not minted by this code path
    // (a leaked key, a foreign signer), and must not sit in the cache until a far-off exp.
    if (expiresAt - issuedAt > MAX_TTL_MS) return 'claims';
    const tag = userTag(sub);
    const { keys } = this.#ctx;
    return Object.freeze({
      claims: deepFreeze(claims) as AccessTokenClaims,
      userId: sub,
      sessionId: sid,
      jti,
      expiresAt,
      amr: methods,
      notBefore: Math.max(issuedAt, notBeforeClaim) - this.#options.clockToleranceMs,
      keys: Object.freeze([
        keys.session(tag, sid),
        keys.revokeBefore(tag),
        keys.revokedJti(tag, jti),
      ] as const),
    });
  }
}

/** An epoch-ms instant stored by a script as a decimal string (Redis) or number (the fake). */
function toInstant(value: unknown): number {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^\d{1,16}$/.test(text)) {
    throw new StoreFailedError('unexpected reply from Redis (access-verify)');
  }
  return Number(text);
}

/**
 * Reads the key id from a footer (its decoded bytes) before verification: exactly `{"kid":"…"}` (no
 * other member, no whitespace, no duplicate key) — never a general JSON parse of unauthenticated bytes.
 */
function kidOf(footer: Buffer): string | null {
  const match = FOOTER.exec(footer.toString('latin1'));
  return match === null ? null : (match[1] as string);
}

function resolveOptions(options: AccessTokensOptions, clockToleranceMs: number): ResolvedOptions {
  const ttlMs = positiveInt('ttlMs', options.ttlMs, 15 * 60_000, 1000);
  if (ttlMs > MAX_TTL_MS) throw new InvalidOptionError('ttlMs must be at most 86400000 (24 h)');
  const maxTokenLength = positiveInt('maxTokenLength', options.maxTokenLength, 8192, 256);
  let cache: ResolvedOptions['cache'] = null;
  if (options.cache !== false) {
    const given = options.cache ?? {};
    if (given === null || typeof given !== 'object') {
      throw new InvalidOptionError('cache must be an object { maxEntries?, maxTokenLength? } or false');
    }
    cache = Object.freeze({
      maxEntries: positiveInt('cache.maxEntries', given.maxEntries, 10_000),
      maxTokenLength: positiveInt('cache.maxTokenLength', given.maxTokenLength, 2048),
    });
  }
  return Object.freeze({
    ttlMs,
    issuer: claimText('issuer', options.issuer),
    audience: claimText('audience', options.audience),
    clockToleranceMs,
    maxTokenLength,
    cache,
  });
}

function claimText(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CLAIM_TEXT) {
    throw new InvalidOptionError(
      `${name} must be a non-empty string of at most ${MAX_CLAIM_TEXT} characters`,
    );
  }
  return value;
}

function wholeSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
