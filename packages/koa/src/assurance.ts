import type { ParameterizedContext } from 'koa';
import { booleanOption, optionalFunction } from './internal/options.js';
import { type RefusalMode, refuseRequest } from './refusal.js';

/**
 * How strongly a route needs the user to have authenticated, judged by the RFC 8176 authentication
 * method references (`amr`) of the request's session or access token (access tokens sign the
 * session's `amr`, so a bearer check needs no extra round trip).
 */
export interface AssuranceOptions {
  /**
   * Require a multi-factor authentication: the session's `amr` holds `mfa` (a password plus a second
   * factor, or a passkey with user verification, when the application records it so).
   * @default false
   */
  readonly mfa?: boolean;
  /**
   * A predicate over the session's `amr` values (empty when the session recorded none); the request
   * passes only when it returns `true` (nothing else counts). With `mfa: true` both must hold. Keep it synchronous and
   * cheap: it runs on every request of the route.
   * @default none
   * @example
   * requireAuth({ accessTokens, amr: (amr) => amr.includes('hwk') }) // a device-bound passkey
   */
  readonly amr?: (amr: readonly string[]) => boolean;
}

/** The JSON body of an assurance refusal. */
export const INSUFFICIENT_USER_AUTHENTICATION = Object.freeze({
  error: 'insufficient_user_authentication',
  message: 'this action needs a stronger authentication (a second factor); please authenticate again',
});

/** The RFC 9470 challenge of an assurance refusal. */
export const INSUFFICIENT_USER_AUTHENTICATION_CHALLENGE = 'Bearer error="insufficient_user_authentication"';

/** @internal A resolved assurance requirement: null when the route needs none. */
export type Assurance = ((amr: readonly string[]) => boolean) | null;

/** @internal Resolves and validates the assurance options once. */
export function resolveAssurance(options: AssuranceOptions): Assurance {
  const mfa = booleanOption('mfa', options.mfa, false);
  const predicate = optionalFunction('amr', options.amr);
  if (!mfa && predicate === undefined) return null;
  return (amr) => {
    if (mfa && !amr.includes('mfa')) return false;
    // Fail closed: only a literal true passes (a predicate returning a truthy string does not).
    return predicate === undefined || predicate(amr) === true;
  };
}

/**
 * @internal Answers 401 `insufficient_user_authentication` with `WWW-Authenticate: Bearer
 * error="insufficient_user_authentication"` (RFC 9470 §3): the credential is valid but was not made
 * with the methods the route needs, so the client asks the user to authenticate again, with them.
 * With `mode` `'throw'` a RequestRefusedError carries the same (code `insufficient_user_authentication`).
 */
export function refuseInsufficient(
  ctx: ParameterizedContext,
  mode: RefusalMode = 'json',
  challenge: string = INSUFFICIENT_USER_AUTHENTICATION_CHALLENGE,
): void {
  refuseRequest(ctx, mode, 401, INSUFFICIENT_USER_AUTHENTICATION, {
    'WWW-Authenticate': challenge,
    'Cache-Control': 'no-store',
  });
}
