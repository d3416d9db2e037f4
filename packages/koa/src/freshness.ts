import { type Clock, InvalidOptionError } from '@latchkey/core';
import type { Middleware } from 'koa';
import { bearerChallenge, stateKeyOption, UNAUTHENTICATED } from './bearer.js';
import { checkOptionsObject, clockOption } from './internal/options.js';
import { type RefusalMode, refusalOption, refuseRequest } from './refusal.js';

/** Options of {@link requireFreshAuth}. */
export interface RequireFreshAuthOptions {
  /** How long after the credential check a request still counts as fresh, in ms (≥ 1). */
  readonly maxAgeMs: number;
  /**
   * The clock to measure the age with; pass the store's clock.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * The `ctx.state` property the authenticating middleware put its result on (their `key`).
   * @default 'auth'
   */
  readonly key?: string;
  /**
   * The `realm` of the `WWW-Authenticate` challenge (as in {@link bearer}).
   * @default no realm
   */
  readonly realm?: string;
  /**
   * How a refusal (401) is answered: `'json'` writes the body; `'throw'` throws a
   * {@link RequestRefusedError} (code `reauthentication_required` or `unauthenticated`, with the
   * `WWW-Authenticate` challenge in `headers`).
   * @default 'json'
   */
  readonly refusal?: RefusalMode;
}

/** What the guard reads: whatever authenticated the request, with its server-side `authenticatedAt`. */
export interface FreshnessState {
  /** The cookie session (set by the session middleware). */
  session?: { readonly authenticatedAt: number } | null | undefined;
  /**
   * The authentication `bearer()` / `requireAuth()` set (under their `key`, default `auth`), which
   * wins whenever it is set.
   */
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
 * The credential is `ctx.state.auth` (or `ctx.state[key]`) when an authenticating middleware set it;
 * otherwise, when the request carries no `Authorization` header, the cookie session
 * `ctx.state.session` (an `Authorization` header nobody verified never falls back to the cookie).
 * Mount it after the middleware that authenticates.
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
  const key = stateKeyOption(options.key);
  const refusal = refusalOption(options.refusal);
  const unauthenticated = bearerChallenge(options.realm);
  // Exactly RFC 9470's challenge with max_age (HTTP-API.md pins it; no error_description to parse).
  const challenge = bearerChallenge(
    options.realm,
    `error="insufficient_user_authentication", max_age=${Math.floor(maxAgeMs / 1000)}`,
  );

  return async (ctx, next) => {
    const state = ctx.state as unknown as Record<
      string,
      { readonly authenticatedAt?: unknown } | null | undefined
    >;
    const auth = state[key];
    const credential =
      auth !== null && auth !== undefined
        ? auth
        : ctx.req.headers.authorization === undefined
          ? state['session']
          : undefined;
    const authenticatedAt = credential?.authenticatedAt;
    if (typeof authenticatedAt !== 'number') {
      refuseRequest(ctx, refusal, 401, UNAUTHENTICATED, { 'WWW-Authenticate': unauthenticated });
      return;
    }
    if (!(clock.now() < authenticatedAt + maxAgeMs)) {
      refuseRequest(ctx, refusal, 401, REAUTHENTICATION_REQUIRED, { 'WWW-Authenticate': challenge });
      return;
    }
    await next();
  };
}
