import { type AccessTokenClaims, type AccessTokens, InvalidOptionError } from '@latchkey/core';
import type { DefaultState, Middleware, ParameterizedContext } from 'koa';
import { type AssuranceOptions, refuseInsufficient, resolveAssurance } from './assurance.js';
import { checkOptionsObject, optionalFunction } from './internal/options.js';
import { type RefusalMode, refusalOption, refuseRequest } from './refusal.js';

/** How a request authenticated with an access token (`ctx.state.auth` after {@link bearer}). */
export interface BearerAuth {
  readonly via: 'bearer';
  readonly userId: string;
  /** The public id of the session the token belongs to. */
  readonly sessionId: string;
  /** When the session's credential check began (server-side, epoch ms), for freshness checks. */
  readonly authenticatedAt: number;
  /** The token's verified claims. */
  readonly claims: AccessTokenClaims;
  /** How the session was made (RFC 8176, the token's signed `amr` claim); empty when it has none. */
  readonly amr: readonly string[];
}

/** How a request authenticated with its session cookie (`ctx.state.auth` after {@link requireAuth}). */
export interface SessionAuth {
  readonly via: 'session';
  readonly userId: string;
  readonly sessionId: string;
  /** When the session's credential check began (epoch ms). */
  readonly authenticatedAt: number;
  /** How the session was made (RFC 8176 `amr`, as recorded at login); empty when it has none. */
  readonly amr: readonly string[];
}

/** Whatever authenticated the request. */
export type Auth = BearerAuth | SessionAuth;

/** What {@link bearer} puts on `ctx.state` (under `key`, default `auth`). */
export type BearerState<K extends string = 'auth'> = { [P in K]: BearerAuth };

/**
 * What {@link bearer} with `optional: true` puts on `ctx.state` (under `key`, default `auth`): null
 * when no token was presented.
 */
export type OptionalBearerState<K extends string = 'auth'> = { [P in K]: BearerAuth | null };

/** What {@link requireAuth} puts on `ctx.state` (under `key`, default `auth`). */
export type AuthState<K extends string = 'auth'> = { [P in K]: Auth };

/** The part of a cookie session {@link requireAuth} reads (the session middleware's `ctx.state.session`). */
export interface SessionLike {
  readonly id: string;
  readonly userId: string;
  readonly authenticatedAt: number;
  readonly amr?: readonly string[] | undefined;
}

/** What {@link requireAuth} expects on `ctx.state` from the session middleware mounted before it. */
export interface SessionLikeState {
  session?: SessionLike | null | undefined;
}

/** The verifier the middleware calls: an {@link AccessTokens} instance. */
export type AccessTokenVerifier = Pick<AccessTokens, 'verify'>;

/** Options {@link bearer} and {@link requireAuth} share. */
export interface TokenAuthOptions<K extends string = 'auth'> {
  /** Verifies the tokens. */
  readonly accessTokens: AccessTokenVerifier;
  /**
   * The `ctx.state` property the authentication is put on, as koa-jwt's `key` (e.g. `'user'`): an
   * identifier, not `session` (the session middleware's) and not a property every object has.
   * @default 'auth'
   */
  readonly key?: K;
  /**
   * Another token source (a cookie, a query parameter, a custom header), asked first: a string it
   * returns is verified as if sent as `Authorization: Bearer <token>` (and a wrong one is refused,
   * with no fallback); `undefined` or `null` falls back to the `Authorization` header. A token read
   * from a cookie is sent by browsers on their own: keep `crossOriginProtection()` in front of such
   * routes (it exempts only requests that carry `Authorization`).
   * @default the `Authorization` header only
   */
  readonly getToken?: (ctx: ParameterizedContext) => string | null | undefined;
  /**
   * The `realm` of the `WWW-Authenticate: Bearer` challenge (printable ASCII without `"` and `\`, at
   * most 256 characters).
   * @default no realm
   */
  readonly realm?: string;
  /**
   * How a refusal (401) is answered: `'json'` writes `{ error, message }` with the challenge;
   * `'throw'` throws a {@link RequestRefusedError} (status 401, code `unauthenticated`, headers
   * `WWW-Authenticate` and `Cache-Control`) for the app's own error handler.
   * @default 'json'
   */
  readonly refusal?: RefusalMode;
}

/** Options of {@link bearer}. */
export interface BearerOptions<K extends string = 'auth'> extends TokenAuthOptions<K> {
  /**
   * Let requests without a token through with `ctx.state[key] = null`. A token that is presented but
   * wrong is refused all the same.
   * @default false
   */
  readonly optional?: boolean;
}

/**
 * Options of {@link requireAuth}; `mfa` and `amr` ({@link AssuranceOptions}) set the assurance the
 * route needs.
 */
export interface RequireAuthOptions<K extends string = 'auth'>
  extends TokenAuthOptions<K>,
    AssuranceOptions {}

/** The 401 bodies (`error` is always `unauthenticated`; the message says whether a token was sent). */
export const UNAUTHENTICATED = Object.freeze({
  error: 'unauthenticated',
  message: 'authentication required',
});
export const INVALID_TOKEN = Object.freeze({
  error: 'unauthenticated',
  message: 'the access token is not valid',
});

/** RFC 6750 token68 after the scheme; the scheme is case-insensitive. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const BEARER_SCHEME = /^Bearer(?: |$)/i;
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*$/;
/** A `ctx.state` key: an identifier. */
const STATE_KEY = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;
/** Keys that would shadow what every object has, or the session middleware's own. */
const RESERVED_KEYS: ReadonlySet<string> = new Set([
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'valueOf',
  'session',
  'sessions',
]);
/** The content of a quoted-string without the characters that need escaping. */
const REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}$/;

interface Resolved {
  readonly verifier: AccessTokenVerifier;
  readonly key: string;
  readonly getToken: ((ctx: ParameterizedContext) => string | null | undefined) | undefined;
  readonly refusal: RefusalMode;
  /** The challenges without and with `error="invalid_token"`. */
  readonly challenge: string;
  readonly invalidTokenChallenge: string;
}

type Presented =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'bad-token' }
  | { readonly kind: 'other' };

/**
 * Authenticates requests by `Authorization: Bearer <access token>`: one local verification plus one
 * Redis round trip ({@link AccessTokens.verify}), then `ctx.state.auth = { via: 'bearer', userId,
 * sessionId, authenticatedAt, claims }`. A missing or unacceptable token is answered with 401 JSON
 * `{ error: 'unauthenticated', message }` and `WWW-Authenticate: Bearer` — with
 * `error="invalid_token"` when a bearer token was sent (RFC 6750) — and the route never runs. With
 * `optional: true` a request without `Authorization` passes with `ctx.state.auth = null`.
 * `key` puts the result elsewhere on `ctx.state`, `getToken` reads tokens from elsewhere too, `realm`
 * names the challenge's realm, and `refusal: 'throw'` throws a {@link RequestRefusedError} instead of
 * writing the 401.
 *
 * A store outage throws `StoreUnavailableError`: mount {@link latchkeyErrors} first, which answers
 * 503 with `Retry-After` (never 500, never "authenticated").
 *
 * @throws {InvalidOptionError} when `accessTokens` is missing.
 * @example
 * app.use(latchkeyErrors());
 * router.get('/api/me', bearer({ accessTokens }), (ctx) => {
 *   ctx.body = { userId: ctx.state.auth.userId };
 * });
 */
export function bearer<StateT = DefaultState, K extends string = 'auth'>(
  options: BearerOptions<K> & { readonly optional?: false },
): Middleware<StateT & BearerState<K>>;
export function bearer<StateT = DefaultState, K extends string = 'auth'>(
  options: BearerOptions<K> & { readonly optional: true },
): Middleware<StateT & OptionalBearerState<K>>;
export function bearer<StateT = DefaultState, K extends string = 'auth'>(
  options: BearerOptions<K>,
): Middleware<StateT & BearerState<K>> | Middleware<StateT & OptionalBearerState<K>> {
  const resolved = resolveOptions(options);
  if (options.optional !== undefined && typeof options.optional !== 'boolean') {
    throw new InvalidOptionError('optional must be a boolean');
  }
  const optional = options.optional === true;
  const middleware: Middleware<StateT & OptionalBearerState<K>> = async (ctx, next) => {
    const state = ctx.state as Record<string, unknown>;
    const presented = readToken(ctx, resolved);
    if (presented.kind === 'none') {
      if (!optional) return refuse(ctx, resolved, presented);
      state[resolved.key] = null;
      return next();
    }
    const auth = await authenticate(resolved.verifier, presented);
    if (auth === null) return refuse(ctx, resolved, presented);
    state[resolved.key] = auth;
    return next();
  };
  return middleware;
}

/**
 * For routes that serve both browsers and API clients: accepts a bearer token or the session cookie.
 * When the request carries an `Authorization` header, only it counts — an invalid one is 401, with
 * no fallback to the cookie. Otherwise the session that the session middleware (mounted before) put
 * on `ctx.state.session` counts. Sets `ctx.state.auth` to a {@link BearerAuth} or {@link SessionAuth};
 * without either credential the answer is 401 `unauthenticated` with `WWW-Authenticate: Bearer`.
 * Takes the options of {@link bearer} but `optional` (`key`, `getToken`, `realm`, `refusal`); a token
 * from `getToken` counts as an `Authorization` header does.
 *
 * With `mfa: true` (or an `amr` predicate) the route also needs the session to have been made with
 * those methods (its RFC 8176 `amr`: the session's own, or the access token's signed claim — no extra
 * round trip). A valid credential without them is answered 401 `insufficient_user_authentication`
 * with `WWW-Authenticate: Bearer error="insufficient_user_authentication"` (RFC 9470): the client
 * asks the user to log in again with a second factor.
 *
 * @throws {InvalidOptionError} when `accessTokens` is missing, `mfa` is not a boolean or `amr` not a
 *   function.
 * @example
 * app.use(latchkeyErrors());
 * app.use(session({ store: sessions }));
 * router.get('/auth/me', requireAuth({ accessTokens }), (ctx) => {
 *   ctx.body = { userId: ctx.state.auth.userId, via: ctx.state.auth.via };
 * });
 * router.post('/admin/keys', requireAuth({ accessTokens, mfa: true }), rotateKeys);
 */
export function requireAuth<StateT extends SessionLikeState = SessionLikeState, K extends string = 'auth'>(
  options: RequireAuthOptions<K>,
): Middleware<StateT & AuthState<K>> {
  const resolved = resolveOptions(options);
  const assurance = resolveAssurance(options);
  const insufficient = bearerChallenge(options.realm, 'error="insufficient_user_authentication"');
  return async (ctx, next) => {
    const state = ctx.state as Record<string, unknown>;
    const presented = readToken(ctx, resolved);
    if (presented.kind !== 'none') {
      const auth = await authenticate(resolved.verifier, presented);
      if (auth === null) return refuse(ctx, resolved, presented);
      if (assurance !== null && !assurance(auth.amr)) {
        return refuseInsufficient(ctx, resolved.refusal, insufficient);
      }
      state[resolved.key] = auth;
      return next();
    }
    const session = (ctx.state as SessionLikeState).session;
    if (session === null || session === undefined || typeof session !== 'object') {
      return refuse(ctx, resolved, presented);
    }
    const amr = Object.freeze([...(session.amr ?? [])]);
    if (assurance !== null && !assurance(amr)) return refuseInsufficient(ctx, resolved.refusal, insufficient);
    state[resolved.key] = Object.freeze({
      via: 'session',
      userId: session.userId,
      sessionId: session.id,
      authenticatedAt: session.authenticatedAt,
      amr,
    });
    return next();
  };
}

/** The `ctx.state` key of the authentication: `key ?? 'auth'`, checked. @internal */
export function stateKeyOption(key: string | undefined): string {
  const resolved = key ?? 'auth';
  if (typeof resolved !== 'string' || !STATE_KEY.test(resolved) || RESERVED_KEYS.has(resolved)) {
    throw new InvalidOptionError(
      `key must be an identifier of at most 64 characters other than ${[...RESERVED_KEYS].join(', ')}, got ${JSON.stringify(key)}`,
    );
  }
  return resolved;
}

/** The `WWW-Authenticate` challenge with `realm`, checked. @internal */
export function bearerChallenge(realm: string | undefined, params?: string): string {
  if (realm !== undefined && (typeof realm !== 'string' || !REALM.test(realm))) {
    throw new InvalidOptionError(
      'realm must be 1 to 256 printable ASCII characters without a double quote or backslash',
    );
  }
  const parts = [
    ...(realm === undefined ? [] : [`realm="${realm}"`]),
    ...(params === undefined ? [] : [params]),
  ];
  return parts.length === 0 ? 'Bearer' : `Bearer ${parts.join(', ')}`;
}

function resolveOptions(options: TokenAuthOptions<string>): Resolved {
  checkOptionsObject(options);
  const { accessTokens } = options;
  // Duck-typed: a second copy of @latchkey/core must not break instanceof.
  if (
    accessTokens === null ||
    typeof accessTokens !== 'object' ||
    typeof accessTokens.verify !== 'function'
  ) {
    throw new InvalidOptionError('accessTokens must be an AccessTokens instance');
  }
  return Object.freeze({
    verifier: accessTokens,
    key: stateKeyOption(options.key),
    getToken: optionalFunction('getToken', options.getToken),
    refusal: refusalOption(options.refusal),
    challenge: bearerChallenge(options.realm),
    invalidTokenChallenge: bearerChallenge(options.realm, 'error="invalid_token"'),
  });
}

/** The token `getToken` returns, else the one in the `Authorization` header. */
function readToken(ctx: ParameterizedContext, resolved: Resolved): Presented {
  if (resolved.getToken !== undefined) {
    const token: unknown = resolved.getToken(ctx);
    if (token !== undefined && token !== null) {
      return typeof token === 'string' && TOKEN68.test(token)
        ? { kind: 'token', token }
        : { kind: 'bad-token' };
    }
  }
  return readAuthorization(ctx.req.headers.authorization);
}

function readAuthorization(header: string | undefined): Presented {
  if (header === undefined) return { kind: 'none' };
  const match = BEARER.exec(header);
  if (match !== null) return { kind: 'token', token: match[1] as string };
  return BEARER_SCHEME.test(header) ? { kind: 'bad-token' } : { kind: 'other' };
}

async function authenticate(verifier: AccessTokenVerifier, presented: Presented): Promise<BearerAuth | null> {
  if (presented.kind !== 'token') return null;
  const result = await verifier.verify(presented.token);
  if (!result.ok) return null;
  return Object.freeze({
    via: 'bearer',
    userId: result.userId,
    sessionId: result.sessionId,
    authenticatedAt: result.authenticatedAt,
    claims: result.claims,
    amr: result.amr,
  });
}

function refuse(ctx: ParameterizedContext, resolved: Resolved, presented: Presented): void {
  const tokenSent = presented.kind === 'token' || presented.kind === 'bad-token';
  refuseRequest(ctx, resolved.refusal, 401, tokenSent ? INVALID_TOKEN : UNAUTHENTICATED, {
    'WWW-Authenticate': tokenSent ? resolved.invalidTokenChallenge : resolved.challenge,
    'Cache-Control': 'no-store',
  });
}
