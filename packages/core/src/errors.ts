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

/** Base class of every error latchkey throws. Test with `instanceof` or compare `code`. */
export class LatchkeyError extends Error {
  /** A stable, machine-readable code. */
  readonly code: LatchkeyErrorCode;

  constructor(code: LatchkeyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
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
