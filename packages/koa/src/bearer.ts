import { type AccessTokenClaims, type AccessTokens, InvalidOptionError } from '@latchkey/core';
import type { Context, DefaultState, Middleware } from 'koa';
import { type AssuranceOptions, refuseInsufficient, resolveAssurance } from './assurance.js';
import { checkOptionsObject } from './internal/options.js';

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

/** What {@link bearer} puts on `ctx.state`. */
export interface BearerState {
  auth: BearerAuth;
}

/** What {@link bearer} with `optional: true` puts on `ctx.state`: null when no `Authorization` was sent. */
export interface OptionalBearerState {
  auth: BearerAuth | null;
}

/** What {@link requireAuth} puts on `ctx.state`. */
export interface AuthState {
  auth: Auth;
}

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

/** Options of {@link bearer}. */
export interface BearerOptions {
  /** Verifies the tokens. */
  readonly accessTokens: AccessTokenVerifier;
  /**
   * Let requests without an `Authorization` header through with `ctx.state.auth = null`. A header
   * that is present but wrong is refused all the same.
   * @default false
   */
  readonly optional?: boolean;
}

/**
 * Options of {@link requireAuth}; `mfa` and `amr` ({@link AssuranceOptions}) set the assurance the
 * route needs.
 */
export interface RequireAuthOptions extends AssuranceOptions {
  /** Verifies bearer tokens. */
  readonly accessTokens: AccessTokenVerifier;
}

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
export function bearer<StateT = DefaultState>(
  options: BearerOptions & { readonly optional?: false },
): Middleware<StateT & BearerState>;
export function bearer<StateT = DefaultState>(
  options: BearerOptions & { readonly optional: true },
): Middleware<StateT & OptionalBearerState>;
export function bearer<StateT = DefaultState>(
  options: BearerOptions,
): Middleware<StateT & BearerState> | Middleware<StateT & OptionalBearerState> {
  const verifier = resolveVerifier(options);
  if (options.optional !== undefined && typeof options.optional !== 'boolean') {
    throw new InvalidOptionError('optional must be a boolean');
  }
  const optional = options.optional === true;
  const middleware: Middleware<StateT & OptionalBearerState> = async (ctx, next) => {
    const presented = readAuthorization(ctx.req.headers.authorization);
    if (presented.kind === 'none') {
      if (!optional) return refuse(ctx, presented);
      ctx.state.auth = null;
      return next();
    }
    const auth = await authenticate(verifier, presented);
    if (auth === null) return refuse(ctx, presented);
    ctx.state.auth = auth;
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
export function requireAuth<StateT extends SessionLikeState = SessionLikeState>(
  options: RequireAuthOptions,
): Middleware<StateT & AuthState> {
  const verifier = resolveVerifier(options);
  const assurance = resolveAssurance(options);
  return async (ctx, next) => {
    const presented = readAuthorization(ctx.req.headers.authorization);
    if (presented.kind !== 'none') {
      const auth = await authenticate(verifier, presented);
      if (auth === null) return refuse(ctx, presented);
      if (assurance !== null && !assurance(auth.amr)) return refuseInsufficient(ctx);
      ctx.state.auth = auth;
      return next();
    }
    const session = (ctx.state as SessionLikeState).session;
    if (session === null || session === undefined || typeof session !== 'object') {
      return refuse(ctx, presented);
    }
    const amr = Object.freeze([...(session.amr ?? [])]);
    if (assurance !== null && !assurance(amr)) return refuseInsufficient(ctx);
    ctx.state.auth = Object.freeze({
      via: 'session',
      userId: session.userId,
      sessionId: session.id,
      authenticatedAt: session.authenticatedAt,
      amr,
    });
    return next();
  };
}

function resolveVerifier(options: { readonly accessTokens: AccessTokenVerifier }): AccessTokenVerifier {
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
  return accessTokens;
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

function refuse(ctx: Context, presented: Presented): void {
  const tokenSent = presented.kind === 'token' || presented.kind === 'bad-token';
  ctx.status = 401;
  ctx.set('WWW-Authenticate', tokenSent ? 'Bearer error="invalid_token"' : 'Bearer');
  ctx.set('Cache-Control', 'no-store');
  ctx.body = tokenSent ? { ...INVALID_TOKEN } : { ...UNAUTHENTICATED };
}
