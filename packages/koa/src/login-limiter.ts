import {
  InvalidInputError,
  InvalidOptionError,
  type LoginCheckResult,
  type LoginLimiter,
  type LoginOutcome,
  type LoginPolicyState,
  type Throttle,
  type ThrottleResult,
} from '@latchkey/core';
import type { DefaultState, Middleware, ParameterizedContext } from 'koa';
import { httpStatusOf, isLatchkeyErrorLike } from './http-errors.js';
import { booleanOption, checkOptionsObject, optionalFunction, requiredFunction } from './internal/options.js';
import { type RefusalMode, refusalOption, refuseRequest } from './refusal.js';

/**
 * A core {@link LoginLimiter} by shape: its public members without the class's `#private` ones, so a
 * limiter from another copy of `@latchkey/core` in the app (another version) type-checks and works.
 */
export type LoginLimiterLike = Pick<LoginLimiter, keyof LoginLimiter>;

/** The JSON body of a refused attempt (429). */
export const TOO_MANY_ATTEMPTS = Object.freeze({
  error: 'too_many_attempts',
  message: 'too many attempts; please try again later',
});

/** The JSON body when the login identifier is missing or unusable (400). */
export const INVALID_LOGIN_IDENTIFIER = Object.freeze({
  error: 'invalid_request',
  message: 'the login identifier is missing or invalid',
});

/**
 * Answers that refuse a request before any credential check (validation, size, media type): only
 * these give the attempt back. Any other answer keeps it as a failure, so a route whose wrong-password
 * answer is not a 401 (a redirect back to the form, a 404, an error) still counts every guess.
 */
const RELEASE_STATUSES: ReadonlySet<number> = new Set([400, 413, 415, 422]);
/** The check options without a known-device token, shared by every request. */
const NO_CHECK_OPTIONS = Object.freeze({});

/** What {@link loginLimiter} puts on `ctx.state` for the route. */
export interface LoginLimitState {
  /** The check of this request (allowed, remaining, policies), also when it was refused. */
  loginLimit?: LoginCheckResult;
}

type Ctx<State> = ParameterizedContext<State>;

/** Options of {@link loginLimiter}. */
export interface LoginLimiterMiddlewareOptions<State = DefaultState> {
  /** The core limiter (its policies and fail-open choice apply). */
  readonly limiter: LoginLimiterLike;
  /**
   * The identifier the client submitted (e.g. `ctx.request.body.email`), read before the route runs
   * (mount a body parser first). Anything that is not a usable identifier — missing, not a string,
   * empty, over 1024 characters — is answered 400 `invalid_request` without counting.
   */
  readonly identifier: (ctx: Ctx<State>) => unknown;
  /**
   * The client address.
   * @default ctx.ip (configure Koa's `proxy` and `maxIpsCount` behind a proxy)
   */
  readonly ip?: (ctx: Ctx<State>) => string | undefined;
  /**
   * The known-device token the client presented (e.g. `ctx.cookies.get('kd')`); exempts it from the
   * per-account policy when valid.
   * @default none
   */
  readonly knownDevice?: (ctx: Ctx<State>) => string | undefined;
  /**
   * Whether the route's answer means "wrong credentials" (checked first). Answers that are neither a
   * failure nor a success count as failures too, unless their status is 400, 413, 415 or 422 (the
   * request was refused before any credential check), which gives the attempt back.
   * @default status 401 or 403
   */
  readonly isFailure?: (ctx: Ctx<State>) => boolean;
  /**
   * Whether the route's answer means "logged in". Decide it by status only when the route answers
   * success and failure with different statuses (form logins that redirect either way must say).
   * @default status 200–299
   */
  readonly isSuccess?: (ctx: Ctx<State>) => boolean;
  /**
   * Send the draft IETF `RateLimit-Policy` and `RateLimit` fields.
   * @default true
   */
  readonly rateLimitHeaders?: boolean;
  /**
   * Receives an error from settling after the route (Redis lost meanwhile). The response is left as
   * the route made it; the unsettled attempt keeps counting as a failure.
   * @default ignore
   */
  readonly onSettleError?: (error: unknown) => void;
  /**
   * How a refusal is answered: `'json'` writes the 429 `too_many_attempts` (or 400
   * `invalid_request`) body; `'throw'` throws a {@link RequestRefusedError} with the same status and
   * code, and `Retry-After` and the `RateLimit` fields in its `headers`.
   * @default 'json'
   */
  readonly refusal?: RefusalMode;
}

/**
 * Throttles a login route with a core {@link LoginLimiter}: reserves the attempt before the route
 * runs (one Redis round trip), answers 429 `too_many_attempts` with `Retry-After` (whole seconds,
 * rounded up, ≥ 1) when a policy refuses, and settles after the route by its answer — a success
 * (default: 2xx) releases the attempt and clears the account's failures; a 400, 413, 415 or 422 (the
 * request was refused before any credential check) gives it back; anything else — a 401 or 403, a
 * redirect, a 404, a 5xx, an exception — keeps it as a failure (the password may have been checked,
 * and an attacker must not earn a free guess by provoking an unusual answer). A missing or unusable
 * identifier is 400
 * `invalid_request`. When Redis is unreachable the check throws `StoreUnavailableError` (mount
 * `latchkeyErrors()` first: 503 with `Retry-After`), unless the limiter fails open.
 *
 * @throws {InvalidOptionError} when an option is missing or of the wrong type.
 * @example
 * router.post('/auth/login', loginLimiter({ limiter, identifier: (ctx) => ctx.request.body?.email }), login);
 */
export function loginLimiter<State extends LoginLimitState = LoginLimitState>(
  options: LoginLimiterMiddlewareOptions<State>,
): Middleware<State> {
  const limiter = limiterOption(options);
  const identifier = requiredFunction('identifier', options.identifier);
  const ipOf = optionalFunction('ip', options.ip) ?? clientIp;
  const knownDevice = optionalFunction('knownDevice', options.knownDevice);
  const isFailure =
    optionalFunction('isFailure', options.isFailure) ??
    ((ctx: Ctx<State>) => ctx.status === 401 || ctx.status === 403);
  const isSuccess =
    optionalFunction('isSuccess', options.isSuccess) ??
    ((ctx: Ctx<State>) => ctx.status >= 200 && ctx.status < 300);
  const onSettleError = optionalFunction('onSettleError', options.onSettleError) ?? (() => {});
  const headers = booleanOption('rateLimitHeaders', options.rateLimitHeaders, true);
  const refusal = refusalOption(options.refusal);
  const policyHeader = limiter.policies
    .map((p) => `"${p.policy}";q=${p.limit};w=${seconds(p.windowMs)}`)
    .join(', ');

  return async (ctx, next) => {
    let result: LoginCheckResult;
    try {
      result = await limiter.check(
        identifier(ctx),
        ipOf(ctx),
        knownDevice === undefined ? NO_CHECK_OPTIONS : { knownDevice: knownDevice(ctx) },
      );
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error;
      refuseRequest(ctx, refusal, 400, INVALID_LOGIN_IDENTIFIER);
      return;
    }
    const fields: Record<string, string> = headers
      ? { 'RateLimit-Policy': policyHeader, RateLimit: rateLimitField(result.policies) }
      : {};
    ctx.state.loginLimit = result;
    if (!result.allowed || result.reservation === null) {
      refuse(ctx, refusal, result.retryAfterMs, fields);
      return;
    }
    for (const [name, value] of Object.entries(fields)) ctx.set(name, value);
    const reservation = result.reservation;
    let outcome: LoginOutcome;
    try {
      await next();
      outcome = isFailure(ctx)
        ? 'failure'
        : isSuccess(ctx)
          ? 'success'
          : RELEASE_STATUSES.has(ctx.status)
            ? 'release'
            : 'failure';
    } catch (error) {
      // A latchkey error carries a status too (a 413 for session data the route built from the
      // request), but it was thrown after the credential check may have run: never a free guess.
      const status = isLatchkeyErrorLike(error) ? undefined : httpStatusOf(error);
      await settleQuietly(
        limiter,
        reservation,
        status !== undefined && RELEASE_STATUSES.has(status) ? 'release' : 'failure',
        onSettleError,
      );
      throw error;
    }
    await settleQuietly(limiter, reservation, outcome, onSettleError);
  };
}

/** Options of {@link rateLimit}. */
export interface RateLimitOptions<State = DefaultState> {
  /** The core limiter whose Redis (and fail-open choice) the throttle uses. */
  readonly limiter: LoginLimiterLike;
  /** The name of the throttled action, part of the key: `a-z 0-9 - _`, at most 32 characters. */
  readonly action: string;
  /**
   * Requests allowed per window and IP.
   * @default the limiter's per-IP `maxFailures`
   */
  readonly limit?: number;
  /**
   * The sliding window, ms.
   * @default the limiter's per-IP `windowMs`
   */
  readonly windowMs?: number;
  /**
   * The client address.
   * @default ctx.ip
   */
  readonly ip?: (ctx: Ctx<State>) => string | undefined;
  /**
   * Send the draft IETF `RateLimit-Policy` and `RateLimit` fields.
   * @default true
   */
  readonly rateLimitHeaders?: boolean;
  /**
   * How a refusal is answered: `'json'` writes the 429 `too_many_attempts` body; `'throw'` throws a
   * {@link RequestRefusedError} with `Retry-After` and the `RateLimit` fields in its `headers`.
   * @default 'json'
   */
  readonly refusal?: RefusalMode;
}

/**
 * Throttles an abuse-prone route per IP (registration, password-reset requests): every request counts,
 * one atomic Redis round trip, 429 `too_many_attempts` with `Retry-After` beyond the limit.
 *
 * @throws {InvalidOptionError} when the action, limit or window breaks its rule.
 * @example
 * router.post('/auth/password-reset/request', rateLimit({ limiter, action: 'password-reset', limit: 10 }), requestReset);
 */
export function rateLimit<State = DefaultState>(options: RateLimitOptions<State>): Middleware<State> {
  const limiter = limiterOption(options);
  const policy: { limit?: number; windowMs?: number } = {};
  if (options.limit !== undefined) policy.limit = options.limit;
  if (options.windowMs !== undefined) policy.windowMs = options.windowMs;
  const throttle: Throttle = limiter.throttle(options.action, policy);
  const ipOf = optionalFunction('ip', options.ip) ?? clientIp;
  const headers = booleanOption('rateLimitHeaders', options.rateLimitHeaders, true);
  const refusal = refusalOption(options.refusal);
  const policyHeader = `"${throttle.action}";q=${throttle.limit};w=${seconds(throttle.windowMs)}`;

  return async (ctx, next) => {
    const result: ThrottleResult = await throttle.hit(ipOf(ctx));
    const fields: Record<string, string> = headers
      ? {
          'RateLimit-Policy': policyHeader,
          RateLimit: `"${throttle.action}";r=${result.remaining};t=${seconds(result.resetAfterMs)}`,
        }
      : {};
    if (!result.allowed) {
      refuse(ctx, refusal, result.retryAfterMs, fields);
      return;
    }
    for (const [name, value] of Object.entries(fields)) ctx.set(name, value);
    await next();
  };
}

/** The options object's core limiter (both factories check these two first). */
function limiterOption(options: { readonly limiter: LoginLimiterLike }): LoginLimiterLike {
  checkOptionsObject(options);
  const { limiter } = options;
  // Duck-typed: a second copy of @latchkey/core (another version in the app) must not break instanceof.
  if (
    limiter === null ||
    typeof limiter !== 'object' ||
    typeof limiter.check !== 'function' ||
    typeof limiter.throttle !== 'function' ||
    typeof limiter.settle !== 'function'
  ) {
    throw new InvalidOptionError('limiter must be a LoginLimiter');
  }
  return limiter;
}

/** The default `ip` option. */
function clientIp(ctx: ParameterizedContext): string {
  return ctx.ip;
}

/** Whole seconds, rounded up (a client waiting that long is never early). */
function seconds(ms: number): number {
  return Math.ceil(ms / 1000);
}

/** `Retry-After` in whole seconds: rounded up, at least 1. */
function retryAfterSeconds(ms: number): number {
  return Math.max(1, seconds(ms));
}

function refuse(
  ctx: ParameterizedContext,
  mode: RefusalMode,
  retryAfterMs: number,
  fields: Readonly<Record<string, string>>,
): void {
  refuseRequest(ctx, mode, 429, TOO_MANY_ATTEMPTS, {
    ...fields,
    'Retry-After': String(retryAfterSeconds(retryAfterMs)),
  });
}

/**
 * The `RateLimit` field: the policy with the fewest attempts left (the draft asks for the most
 * constraining one); when refused, the refusing policy, whose `t` matches `Retry-After`.
 */
function rateLimitField(policies: readonly LoginPolicyState[]): string {
  let shown = policies[0] as LoginPolicyState;
  for (const p of policies) {
    if (p.blocked && !shown.blocked) shown = p;
    else if (
      p.blocked === shown.blocked &&
      (p.blocked ? p.resetAfterMs > shown.resetAfterMs : p.remaining < shown.remaining)
    ) {
      shown = p;
    }
  }
  const t = shown.blocked ? retryAfterSeconds(shown.resetAfterMs) : seconds(shown.resetAfterMs);
  return `"${shown.policy}";r=${shown.remaining};t=${t}`;
}

async function settleQuietly(
  limiter: LoginLimiterLike,
  reservation: NonNullable<LoginCheckResult['reservation']>,
  outcome: LoginOutcome,
  onError: (error: unknown) => void,
): Promise<void> {
  try {
    await limiter.settle(reservation, outcome);
  } catch (error) {
    try {
      onError(error);
    } catch {
      // A failing logger must not turn a finished login into an error.
    }
  }
}
