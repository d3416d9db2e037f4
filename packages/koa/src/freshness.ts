import { type Clock, InvalidOptionError } from '@latchkey/core';
import type { Middleware } from 'koa';
import { UNAUTHENTICATED } from './bearer.js';
import { checkOptionsObject, clockOption } from './internal/options.js';

/** Options of {@link requireFreshAuth}. */
export interface RequireFreshAuthOptions {
  /** How long after the credential check a request still counts as fresh, in ms (≥ 1). */
  readonly maxAgeMs: number;
  /**
   * The clock to measure the age with; pass the store's clock.
   * @default systemClock
   */
  readonly clock?: Clock;
}

/** What the guard reads: whatever authenticated the request, with its server-side `authenticatedAt`. */
export interface FreshnessState {
  /** The cookie session (set by the session middleware). */
  session?: { readonly authenticatedAt: number } | null | undefined;
  /** The bearer authentication (set by the bearer middleware), which wins when `Authorization` was sent. */
  auth?: { readonly authenticatedAt: number } | null | undefined;
}

/** The JSON body of a refusal. */
export const REAUTHENTICATION_REQUIRED = Object.freeze({
  error: 'reauthentication_required',
  message: 'this action needs a recent login; please authenticate again',
});

/**
 * Guards sensitive routes (change email, delete account, show recovery codes): passes only when the
 * request's credential was checked less than `maxAgeMs` ago, measured from the session's server-side
 * `authenticatedAt` (never a token's `iat`). Otherwise 401 `reauthentication_required` with
 * `WWW-Authenticate: Bearer error="insufficient_user_authentication", max_age=<s>` (RFC 9470), so the
 * client asks the user to log in again. Without any authentication it answers 401 `unauthenticated`.
 *
 * When the request carries an `Authorization` header only `ctx.state.auth` counts (no fallback to the
 * cookie); otherwise `ctx.state.session`. Mount it after the middleware that authenticates.
 *
 * Any authentication counts, not only a password: a login completed with a second factor, or with a
 * passkey, creates its session with the `authenticatedAt` of that step, so such a session is fresh
 * for `maxAgeMs` from the second factor's check (pass that instant to `SessionStore.create`).
 *
 * @throws {InvalidOptionError} when `maxAgeMs` is not a whole number ≥ 1 or `clock` has no `now()`
 * @example
 * router.post('/account/delete', requireFreshAuth({ maxAgeMs: 5 * 60_000 }), deleteAccount);
 */
export function requireFreshAuth<State extends FreshnessState = FreshnessState>(
  options: RequireFreshAuthOptions,
): Middleware<State> {
  checkOptionsObject(options);
  const { maxAgeMs } = options;
  if (!Number.isSafeInteger(maxAgeMs) || maxAgeMs < 1) {
    throw new InvalidOptionError(`maxAgeMs must be a whole number of ms ≥ 1, got ${String(maxAgeMs)}`);
  }
  const clock = clockOption(options.clock);
  // Exactly RFC 9470's challenge with max_age (HTTP-API.md pins it; no error_description to parse).
  const challenge = `Bearer error="insufficient_user_authentication", max_age=${Math.floor(maxAgeMs / 1000)}`;

  return async (ctx, next) => {
    const state = ctx.state as FreshnessState;
    const credential = ctx.req.headers.authorization !== undefined ? state.auth : state.session;
    const authenticatedAt = credential?.authenticatedAt;
    if (typeof authenticatedAt !== 'number') {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer');
      ctx.body = { ...UNAUTHENTICATED };
      return;
    }
    if (!(clock.now() < authenticatedAt + maxAgeMs)) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', challenge);
      ctx.body = { ...REAUTHENTICATION_REQUIRED };
      return;
    }
    await next();
  };
}
