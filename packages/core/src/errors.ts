/**
 * Every error latchkey throws is a {@link LatchkeyError} with a stable `code`. Messages may change
 * between versions; codes may not. Security-relevant messages stay generic on purpose.
 */

/** The stable error codes, one per failure a caller may want to tell apart. */
export type LatchkeyErrorCode =
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_INPUT'
  | 'ERR_STORE_UNAVAILABLE'
  | 'ERR_STORE_FAILED'
  | 'ERR_CROSS_SLOT'
  | 'ERR_EVICTION_POLICY'
  | 'ERR_SESSION_STALE_AUTH'
  | 'ERR_SESSION_DATA_TOO_LARGE'
  | 'ERR_REFRESH_REUSED'
  | 'ERR_KEY_INVALID';

/**
 * The HTTP status each code answers with, as `@latchkey/koa`'s `HTTP_ERRORS` table does (a koa test
 * pins that the two agree): infrastructure failures are 503, misconfiguration 500, never "authenticated".
 */
const HTTP_STATUS: Readonly<Record<LatchkeyErrorCode, number>> = Object.freeze({
  ERR_INVALID_OPTION: 500,
  ERR_INVALID_INPUT: 400,
  ERR_STORE_UNAVAILABLE: 503,
  ERR_STORE_FAILED: 503,
  ERR_CROSS_SLOT: 503,
  ERR_EVICTION_POLICY: 503,
  ERR_SESSION_STALE_AUTH: 401,
  ERR_SESSION_DATA_TOO_LARGE: 413,
  ERR_REFRESH_REUSED: 401,
  ERR_KEY_INVALID: 500,
});

/** Seconds a client should wait after a 503 before retrying (the `Retry-After` of unavailable errors). */
const RETRY_AFTER_SECONDS = '1';

/**
 * Base class of every error latchkey throws. Test with `instanceof` or compare `code`.
 *
 * Shaped like an `http-errors` error, so a framework's default error handler (Koa's included) answers
 * it sensibly without any latchkey middleware: `status`/`statusCode` (a store outage is 503, never
 * 500), `expose` (true below 500 only: a 5xx message may name internals and is never shown) and
 * `headers` (`Retry-After` on a 503).
 */
export class LatchkeyError extends Error {
  /** A stable, machine-readable code. */
  readonly code: LatchkeyErrorCode;
  /** The HTTP status this error answers with (4xx for the request, 5xx for the server or the store). */
  readonly status: number;
  /** The same as `status`, for handlers that read Node's name for it. */
  readonly statusCode: number;
  /** Whether the message may be shown to the client: true for 4xx only, as in `http-errors`. */
  readonly expose: boolean;
  /** Response headers the answer should carry (`Retry-After` on 503), or undefined. */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: LatchkeyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
    const status = HTTP_STATUS[code] ?? 500;
    this.status = status;
    this.statusCode = status;
    this.expose = status < 500;
    this.headers = status === 503 ? Object.freeze({ 'Retry-After': RETRY_AFTER_SECONDS }) : undefined;
  }
}

/** An option given to a constructor or factory breaks a rule; the message names the option. */
export class InvalidOptionError extends LatchkeyError {
  constructor(message: string) {
    super('ERR_INVALID_OPTION', message);
  }
}

/** An argument to a method is not acceptable (wrong type, empty, too long). Nothing was changed. */
export class InvalidInputError extends LatchkeyError {
  constructor(message: string) {
    super('ERR_INVALID_INPUT', message);
  }
}

/**
 * Redis could not be reached, did not answer within the command timeout, or answered that it cannot
 * serve now (cluster down, loading, read-only replica, out of memory). Nothing can be assumed about
 * the operation; callers fail closed (the Koa layer answers 503 with `Retry-After`).
 */
export class StoreUnavailableError extends LatchkeyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORE_UNAVAILABLE', message, options);
  }
}

/** Redis answered a script with an unexpected error or reply: a defect or a foreign value in a key. */
export class StoreFailedError extends LatchkeyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORE_FAILED', message, options);
  }
}

/** A script's keys would span more than one hash tag; stopped before reaching Redis. */
export class CrossSlotError extends LatchkeyError {
  constructor(message: string) {
    super('ERR_CROSS_SLOT', message);
  }
}

/** Redis's `maxmemory-policy` may evict latchkey's keys and the check was told to refuse. */
export class EvictionPolicyError extends LatchkeyError {
  constructor(message: string) {
    super('ERR_EVICTION_POLICY', message);
  }
}

/**
 * A session was to be created for an authentication that began before the user's
 * "revoke everything before T" mark (a login that raced a password reset or logout-all).
 *
 * The mark excludes the revocation's own millisecond, so a login that began right *after* a reset,
 * in the same millisecond, is refused too. Do not report this as a wrong password: re-read the
 * credential and, if the presented password matches the CURRENT one (checked after this refusal),
 * retry the creation once with `authenticatedAt: Math.max(clock.now(), error.revokedBefore)`.
 *
 * @example
 * try {
 *   return await sessions.create(userId, data, { authenticatedAt });
 * } catch (error) {
 *   if (!(error instanceof StaleAuthenticationError)) throw error;
 *   const current = await users.passwordHash(userId);             // read after the mark was set
 *   if (!(await argon2.verify(current, password))) throw wrongPassword(); // the old password
 *   const retryAt = Math.max(clock.now(), error.revokedBefore);    // at most now + 1 is accepted
 *   return sessions.create(userId, data, { authenticatedAt: retryAt });
 * }
 */
export class StaleAuthenticationError extends LatchkeyError {
  /** The user's revoke-before mark, epoch ms: authentications before it are refused. */
  readonly revokedBefore: number;

  constructor(revokedBefore: number) {
    super('ERR_SESSION_STALE_AUTH', 'the authentication predates a revocation of all sessions of the user');
    this.revokedBefore = revokedBefore;
  }
}

/** Session data would exceed the configured size cap. Nothing was written. */
export class SessionDataTooLargeError extends LatchkeyError {
  constructor(limit: number) {
    super('ERR_SESSION_DATA_TOO_LARGE', `session data exceeds the limit of ${limit} bytes`);
  }
}

/**
 * A refresh token that had already been rotated away was presented again. The session it belonged
 * to has been revoked. Treat as a security event; the client must log in again.
 */
export class RefreshTokenReusedError extends LatchkeyError {
  /** The public id of the session that was revoked. */
  readonly sessionId: string;

  constructor(sessionId: string) {
    super('ERR_REFRESH_REUSED', 'refresh token reuse detected; the session has been revoked');
    this.sessionId = sessionId;
  }
}

/** A key (PASERK, secret) could not be loaded or has the wrong type. */
export class KeyError extends LatchkeyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_KEY_INVALID', message, options);
  }
}

/** True when `error` is a latchkey error with the given code. */
export function isLatchkeyError(error: unknown, code?: LatchkeyErrorCode): error is LatchkeyError {
  return error instanceof LatchkeyError && (code === undefined || error.code === code);
}
