import Router from '@koa/router';
import {
  AccessTokens,
  type Clock,
  isLatchkeyError,
  type KeyRing,
  LoginLimiter,
  MfaLogins,
  OneTimeCodes,
  PasskeyCredentials,
  RecoveryCodes,
  type RedisClient,
  type RefreshTokenReusedError,
  RefreshTokens,
  SecretBox,
  type ServerSecret,
  type Session,
  SessionStore,
  type StaleAuthenticationError,
  StoreUnavailableError,
  systemClock,
  Totp,
  WebAuthnChallenges,
} from '@latchkey/core';
import {
  type AuthState,
  crossOriginProtection,
  type LoginLimitState,
  latchkeyErrors,
  loginLimiter,
  rateLimit,
  requireAuth,
  requireFreshAuth,
  type SessionState,
  session,
  TOO_MANY_ATTEMPTS,
  UNAUTHENTICATED,
} from '@latchkey/koa';
import Koa, { type Middleware, type ParameterizedContext } from 'koa';
import bodyParser from 'koa-bodyparser';
import { type Config, isLoopbackHostHeader, RESET_CONFIRMS_PER_REQUEST } from './config.js';
import { type Logger, logSecurityEvent, requestLog } from './logger.js';
import type { DevOutbox, Mailer, MailPurpose } from './mailer.js';
import type { Metrics } from './metrics.js';
import { RedisAvailability } from './outage.js';
import { browserPage } from './page.js';
import { type PasswordChecker, PasswordHasher, type PasswordHashingOptions } from './passwords.js';
import { methodsOf, mfaRoutes, TOTP_ISSUER } from './routes/mfa.js';
import { passkeyRoutes } from './routes/passkeys.js';
import { type StoredUser, type User, UserStore } from './users.js';
import {
  bodyObject,
  field,
  HttpError,
  invalidRequest,
  parseEmail,
  parseNewPassword,
  parsePresentedPassword,
  parseString,
} from './validation.js';

/** Everything the app is built from. `server.ts` assembles it from the environment; tests by hand. */
export interface AppDeps {
  readonly config: Config;
  /** The one connection: latchkey's stores and the users share it. */
  readonly redis: RedisClient;
  /** Signs and verifies access tokens. */
  readonly keyRing: KeyRing;
  /** Derives every keyed digest (codes, identifiers, refresh successors). */
  readonly secret: ServerSecret;
  readonly logger: Logger;
  /** Delivers verification and reset codes. */
  readonly mailer: Mailer;
  /** The dev outbox, served at `GET /dev/outbox` when `config.dev` (and only then). */
  readonly outbox?: DevOutbox | undefined;
  /** @default systemClock */
  readonly clock?: Clock;
  /**
   * Prefix of every key (the users live under `<prefix>:app`).
   * @default 'lk'
   */
  readonly prefix?: string;
  /** argon2id costs; lower them in tests only. */
  readonly passwordHashing?: PasswordHashingOptions;
  /**
   * The password hasher itself (tests only: one that can pause a check).
   * @default new PasswordHasher(passwordHashing)
   */
  readonly passwordHasher?: PasswordChecker;
  /**
   * Tracks Redis outages: one warn line when Redis becomes unavailable, one info line when it is back,
   * the 503s in between only counted (metrics read it).
   * @default new RedisAvailability(redis, logger)
   */
  readonly availability?: RedisAvailability;
  /**
   * Prometheus metrics: fed by the stores' `onEvent` and `onCommand` hooks, the HTTP middleware and
   * `availability`; `GET /metrics` on the app's port where `config.metrics.onAppPort` says so.
   * @default none (no metrics)
   */
  readonly metrics?: Metrics;
}

/** The most a `/healthz` probe waits for Redis, in ms. */
const HEALTH_TIMEOUT_MS = 1000;
/** Bodies larger than this are refused with 413 (koa-bodyparser's defaults are 1 MB / 56 KB). */
const BODY_LIMIT = '16kb';
/** Longest refresh token or code accepted before it is looked at (well above the real lengths). */
const MAX_TOKEN_FIELD = 512;
const MAX_CODE_FIELD = 256;
const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;
/** How long a login refused as stale waits for a revoke-before mark set by a clock ahead of ours, in ms. */
const STALE_RETRY_WAIT_MS = 50;

/**
 * Whether a login refused as stale checked the current password: `authenticatedAt` is the login's,
 * `mark` the user's revoke-before mark ({@link StaleAuthenticationError.revokedBefore}).
 */
type StillCurrent = (authenticatedAt: number, mark: number) => Promise<boolean>;

type Data = Record<string, unknown>;

/** A verified login, about to become a session. */
interface Login {
  readonly userId: string;
  /** When the credential check began (a later revoke-before mark makes the login stale). */
  readonly authenticatedAt: number;
  /** How the user authenticated (RFC 8176), recorded on the session and signed into access tokens. */
  readonly amr: readonly string[];
}

/** RFC 8176 `amr` of a password login. */
const PASSWORD_AMR = Object.freeze(['pwd']);

interface AppState extends SessionState<Data>, LoginLimitState, Partial<AuthState> {
  /** The validated body of the route. */
  input?: Record<string, string>;
  /** The authenticated user, loaded by {@link loadUser}. */
  user?: StoredUser;
}

type Ctx = ParameterizedContext<AppState>;
type Mw = Middleware<AppState>;

/**
 * Builds the example app: the whole flow of HTTP-API.md, wired from latchkey's stores and Koa
 * middleware. The app owns users and passwords only.
 */
export function createApp(deps: AppDeps): Koa<AppState> {
  const { config, redis, logger, mailer } = deps;
  const clock = deps.clock ?? systemClock;
  const prefix = deps.prefix ?? 'lk';
  const limits = config.limits;
  const metrics = deps.metrics;
  const logEvent = logSecurityEvent(logger);
  const onEvent: typeof logEvent =
    metrics === undefined
      ? logEvent
      : (event) => {
          logEvent(event);
          metrics.onEvent(event);
        };
  const availability = deps.availability ?? new RedisAvailability(redis, logger);
  metrics?.watch(availability);
  // config.durability: revocations wait for replica acknowledgements (latchkey's durability option).
  const store = {
    redis,
    prefix,
    clock,
    onEvent,
    ...(config.durability === undefined ? {} : { durability: config.durability }),
    ...(metrics === undefined ? {} : { onCommand: metrics.onCommand }),
  };

  const idleTimeoutMs = limits.sessionIdleTtlSeconds * 1000;
  const sessions = new SessionStore<Data>({
    ...store,
    idleTimeoutMs,
    absoluteTimeoutMs: limits.sessionAbsoluteTtlSeconds * 1000,
    lastSeenResolutionMs: Math.min(60_000, Math.floor(idleTimeoutMs / 2)),
  });
  const refreshTokens = new RefreshTokens({
    ...store,
    secret: deps.secret,
    graceMs: limits.refreshReuseGraceSeconds * 1000,
  });
  const accessTokens = new AccessTokens({
    ...store,
    keyRing: deps.keyRing,
    ttlMs: limits.accessTokenTtlSeconds * 1000,
  });
  const limiter = new LoginLimiter({
    ...store,
    secret: deps.secret,
    accountIp: { maxFailures: limits.loginMaxFailures, windowMs: HOUR_MS },
    ip: { maxFailures: limits.loginMaxFailuresPerIp, windowMs: HOUR_MS },
  });
  // HTTP-API.md's numbers: budgets and caps count per email, purpose and client IP bucket, with a
  // larger one across IPs, so a stranger from one address cannot spend the owner's budget or caps.
  const codes = new OneTimeCodes({
    ...store,
    secret: deps.secret,
    failureBudget: { max: 10, windowMs: DAY_MS },
    failureBudgetAcrossIps: { max: 100, windowMs: DAY_MS },
    issueLimits: [
      { max: 5, windowMs: HOUR_MS },
      { max: 10, windowMs: DAY_MS },
    ],
    issueLimitsAcrossIps: [{ max: 30, windowMs: DAY_MS }],
    resendCooldownMs: 60_000,
  });
  // Second factors: pending logins (mfaTokens) whose `email` method uses the codes above (purpose
  // `2fa`), TOTP with its last-accepted step per account, recovery codes, and the box that seals the
  // TOTP secrets kept in the user records. The three share one failure budget per account
  // (HTTP-API.md: 10 per 24 h), set once on the pending logins and enforced by all three.
  const mfaLogins = new MfaLogins({
    ...store,
    secret: deps.secret,
    codes,
    failureBudget: { max: 10, windowMs: DAY_MS },
  });
  const totp = new Totp({ ...store, issuer: TOTP_ISSUER, mfa: mfaLogins });
  const recoveryCodes = new RecoveryCodes({ ...store, secret: deps.secret, mfa: mfaLogins });
  const box = new SecretBox(deps.secret);
  const challenges = new WebAuthnChallenges(store);
  const passkeys = new PasskeyCredentials(store);
  const users = new UserStore({ redis, prefix: `${prefix}:app`, clock });
  const hasher: PasswordChecker = deps.passwordHasher ?? new PasswordHasher(deps.passwordHashing);
  void hasher.warmUp?.().catch(() => undefined);

  const app = new Koa<AppState>({
    proxy: config.trustProxy > 0,
    maxIpsCount: config.trustProxy,
  });
  // Errors are answered by latchkeyErrors, which emits those it answered with a 5xx here (as Koa's
  // own handler does); what else reaches Koa (a broken socket) is a warning. Each is logged once.
  app.silent = true;
  app.on('error', (error: unknown, ctx: Koa.Context | undefined) => {
    if (error instanceof StoreUnavailableError) availability.failed(error);
    else if (ctx !== undefined && ctx.status >= 500) logger.error({ err: error }, 'server error');
    else logger.warn({ err: error }, 'request error');
  });

  app.use(async (ctx, next) => {
    // X-Forwarded-Host is never trusted, also with TRUST_PROXY: Koa would take ctx.host from it.
    delete ctx.req.headers['x-forwarded-host'];
    await next();
  });
  app.use(requestLog(logger));
  if (metrics !== undefined) app.use(metrics.http());
  if (config.dev) {
    // Development mode serves codes from its outbox to whoever asks: only to clients that reached it
    // by a loopback name. A foreign name resolving to 127.0.0.1 (DNS rebinding) gets 421.
    app.use(async (ctx, next) => {
      if (isLoopbackHostHeader(ctx.req.headers.host)) return next();
      ctx.status = 421;
      ctx.body = {
        error: 'misdirected_request',
        message: 'in development mode the server answers only to localhost, 127.0.0.1 or [::1]',
      };
    });
  }
  // GET /metrics on this port: in development, or behind METRICS_TOKEN; with METRICS_PORT only there.
  if (metrics !== undefined && config.metrics.onAppPort) app.use(metrics.endpoint(config.metrics.token));
  app.use(latchkeyErrors());
  app.use(jsonFallbacks());
  // browser page (GET /): ahead of the API router.
  app.use(browserPage() as Mw);

  const router = new Router<AppState>();

  // --- helpers ------------------------------------------------------------------------------------

  /** Mounted on every route with a body, before anything else of the route runs. */
  const body = bodyParser({
    enableTypes: ['json', 'form'],
    jsonLimit: BODY_LIMIT,
    formLimit: BODY_LIMIT,
    textLimit: BODY_LIMIT,
    strict: true,
    onerror: (error: unknown) => {
      // The parse error carries the raw body (err.body) and V8's message quotes it: neither goes on.
      const status = (error as { status?: unknown }).status;
      if (status === 413) throw new HttpError(413, 'payload_too_large', 'the body exceeds 16 KiB');
      if (status === 415) {
        throw new HttpError(415, 'unsupported_media_type', 'unsupported charset or content encoding');
      }
      throw invalidRequest('the body is not valid JSON or form data');
    },
  });
  const withBody: Mw = async (ctx, next) => {
    // An empty body (no Content-Length and no chunks, or Content-Length: 0) has no type to check.
    const empty =
      ctx.request.length === 0 || (ctx.request.length === undefined && ctx.get('transfer-encoding') === '');
    if (empty) {
      (ctx.request as { body?: unknown }).body = {};
      return next();
    }
    if (ctx.request.is('application/json', 'application/x-www-form-urlencoded') === false) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        'send application/json or application/x-www-form-urlencoded',
      );
    }
    await body(ctx as unknown as Parameters<typeof body>[0], next);
  };
  const validate =
    (parse: (input: Record<string, unknown>) => Record<string, string>): Mw =>
    async (ctx, next) => {
      const raw = (ctx.request as { body?: unknown }).body;
      ctx.state.input = parse(raw === undefined ? {} : bodyObject(raw));
      await next();
    };
  const authenticated = requireAuth<AppState>({ accessTokens }) as Mw;
  /** The authenticated user's record; a user that no longer exists is not authenticated. */
  const loadUser: Mw = async (ctx, next) => {
    const user = await users.findById(auth(ctx).userId);
    if (user === null) {
      throw unauthenticated(ctx);
    }
    ctx.state.user = user;
    await next();
  };
  const perIp = (action: string, limit: number): Mw =>
    rateLimit<AppState>({ limiter, action, limit, windowMs: HOUR_MS }) as Mw;
  const loginThrottle = (identifier: (ctx: Ctx) => string): Mw =>
    loginLimiter<AppState>({
      limiter,
      identifier,
      onSettleError: (error) => logger.warn({ err: error }, 'could not settle a login attempt'),
    }) as Mw;

  /** Ends the request's cookie session in the browser when `ended` says the store ended it. */
  const forgetCookieSessionIf = (ctx: Ctx, ended: (current: Session<Data>) => boolean): void => {
    const current = ctx.state.session;
    if (current !== null && current !== undefined && ended(current)) ctx.state.sessions.forget();
  };

  const send = (to: string, purpose: MailPurpose, code: string): void => {
    // Not awaited: whether a message goes out must not show in the response time.
    void Promise.resolve()
      .then(() => mailer.send({ to, purpose, code }))
      .catch((error: unknown) => logger.error({ err: error, purpose }, 'the mailer failed'));
  };

  const tokenResponse = async (ctx: Ctx, session: Session<Data>, refreshToken: string): Promise<void> => {
    // The token signs how the session was made, so a bearer check sees it without a round trip.
    const access = await accessTokens.issue({
      userId: session.userId,
      sessionId: session.id,
      amr: session.amr,
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      accessToken: access.token,
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: Math.round((access.expiresAt - access.issuedAt) / 1000),
    };
  };

  /**
   * The session, refresh token, tokens and cookie of a successful login. When the session cannot be
   * made or completed, no session cookie is left behind and `refused()` answers (or the error goes on).
   */
  const startLoginSession = async (
    ctx: Ctx,
    login: Login,
    refused: () => HttpError,
    stillCurrent?: StillCurrent,
  ): Promise<void> => {
    const { userId, authenticatedAt, amr } = login;
    const created = await withStaleRetry(
      authenticatedAt,
      (at) => ctx.state.sessions.logIn(userId, {}, { authenticatedAt: at, amr }),
      refused,
      stillCurrent,
    );
    try {
      const refreshToken = await refreshTokens.issue(created);
      if (refreshToken === null) throw refused(); // revoked in the meantime
      await tokenResponse(ctx, created, refreshToken);
    } catch (error) {
      // A login that does not answer 200 leaves no session cookie behind: the session it would
      // name is revoked already, or has no tokens (Redis failed; it ends at its idle timeout).
      ctx.state.sessions.forget();
      throw error;
    }
  };

  /**
   * Runs `attempt` (a session or pending login created for a checked credential) with the one retry
   * of a login refused as stale although its credential is the current one (issue 19: the
   * revoke-before mark excludes the revocation's own millisecond, so a login sent right after a reset's
   * 204 can share it). Everything was revoked (a reset, a change, a logout-all) while — or in the
   * millisecond before — the credential was checked; only a credential that is not current any more
   * (`stillCurrent`, absent: never) is refused. The new authenticatedAt is taken after the refusal and
   * not before the mark; the store accepts the mark itself (at most 1 ms ahead of its clock). A mark
   * further ahead — set by a server whose clock runs ahead of this one — is waited for briefly, else
   * the login is refused.
   */
  const withStaleRetry = async <T>(
    authenticatedAt: number,
    attempt: (authenticatedAt: number) => Promise<T>,
    refused: () => HttpError,
    stillCurrent?: StillCurrent,
  ): Promise<T> => {
    let mark: number;
    try {
      return await attempt(authenticatedAt);
    } catch (error) {
      if (!isLatchkeyError(error, 'ERR_SESSION_STALE_AUTH')) throw error;
      mark = (error as StaleAuthenticationError).revokedBefore;
    }
    if (stillCurrent === undefined || !(await stillCurrent(authenticatedAt, mark))) throw refused();
    const deadline = performance.now() + STALE_RETRY_WAIT_MS;
    while (mark > clock.now() + 1 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    if (mark > clock.now() + 1) throw refused();
    try {
      return await attempt(Math.max(clock.now(), mark));
    } catch (error) {
      if (isLatchkeyError(error, 'ERR_SESSION_STALE_AUTH')) throw refused(); // revoked again meanwhile
      throw error;
    }
  };

  /**
   * For a login refused as stale: is the password it checked still the current one? Re-reads the hash
   * now (after the mark was set; resets and changes write the hash before the mark). A hash that
   * changed is checked again: a password that matches the new hash is current (the check runs after
   * the mark); the old password never matches it. An unchanged hash counts only when the login began
   * in the revocation's own millisecond (mark − 1): one that began earlier raced a logout-all and
   * stays refused, as before.
   */
  const passwordStillCurrent =
    (userId: string, checkedHash: string, password: string): StillCurrent =>
    async (authenticatedAt, mark) => {
      const current = await users.findById(userId);
      if (current === null) return false;
      if (current.passwordHash === checkedHash) return authenticatedAt >= mark - 1;
      return hasher.verify(current.passwordHash, password);
    };

  /**
   * The answer of a correct password for an account with TOTP: a pending login (an mfaToken bound to
   * the user, the instant the password check began, and the allowed methods), no session yet. A login
   * refused as stale retries once ({@link withStaleRetry}), as {@link startLoginSession} does.
   */
  const answerMfaRequired = async (
    ctx: Ctx,
    user: StoredUser,
    authenticatedAt: number,
    stillCurrent: StillCurrent,
  ): Promise<void> => {
    const methods = methodsOf(user);
    const begun = await withStaleRetry(
      authenticatedAt,
      (at) => mfaLogins.begin({ userId: user.id, authenticatedAt: at, methods, amr: PASSWORD_AMR }),
      () => invalidCredentials(401),
      stillCurrent,
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      mfaRequired: true,
      mfaToken: begun.mfaToken,
      methods,
      expiresIn: Math.max(0, Math.round((begun.expiresAt - clock.now()) / 1000)),
    };
  };

  const tooManyAttempts = (retryAfterMs: number): HttpError =>
    new HttpError(429, TOO_MANY_ATTEMPTS.error, TOO_MANY_ATTEMPTS.message, {
      'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
    });

  // --- routes -------------------------------------------------------------------------------------

  router.get('/healthz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await withTimeout(redis.ping(), HEALTH_TIMEOUT_MS);
      ctx.body = { status: 'ok' };
    } catch {
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = { status: 'unavailable' };
    }
  });

  // Every API route first passes the cross-site check. The cookie session is loaded where a route
  // uses it: before authentication on protected routes, after validation on public ones (a 400 needs
  // no Redis). Both are mounted per route, not app-wide, so that an unknown route is 404 and a wrong
  // method 405 without a Redis call, and /healthz stays a plain probe.
  const csrf = crossOriginProtection({
    trustedOrigins: config.csrfTrustedOrigins,
    ...(config.publicOrigin === undefined ? {} : { publicOrigin: config.publicOrigin }),
  }) as Mw;
  const cookieSession = session<Data>({
    store: sessions,
    clock,
    cookie: { name: 'sid', secure: config.secureCookies, sameSite: 'lax' },
  }) as unknown as Mw;
  const web = [csrf, cookieSession] as const;

  router.post(
    '/auth/register',
    csrf,
    withBody,
    validate((b) => ({
      email: parseEmail(field(b, 'email')),
      password: parseNewPassword(field(b, 'password')),
    })),
    perIp('register', limits.registerMaxPerIp),
    async (ctx) => {
      const { email, password } = input(ctx, 'email', 'password');
      const result = await users.register(email, () => hasher.hash(password));
      if (!result.ok) throw new HttpError(409, 'email_taken', 'an account with this email already exists');
      ctx.status = 201;
      ctx.body = { userId: result.user.id };
    },
  );

  router.post(
    '/auth/login',
    csrf,
    withBody,
    validate((b) => ({
      email: parseEmail(field(b, 'email')),
      password: parsePresentedPassword(field(b, 'password')),
    })),
    cookieSession,
    loginThrottle((ctx) => input(ctx, 'email').email),
    async (ctx) => {
      const { email, password } = input(ctx, 'email', 'password');
      // Taken before the hash is read: a reset, change or logout-all whose revoke-before mark is later
      // makes this login stale (the session store refuses it).
      const authenticatedAt = clock.now();
      const user = await users.findByEmail(email);
      const ok = await hasher.verify(user?.passwordHash, password);
      if (user === null || !ok) throw invalidCredentials(401);
      // The check took a while: if the password changed meanwhile, what was checked is the old one.
      // The mark alone misses a change made by a server whose clock is behind this one's (its mark is
      // then earlier than this authenticatedAt); the stored hash does not depend on clocks.
      const current = await users.findById(user.id);
      if (current === null || current.passwordHash !== user.passwordHash) throw invalidCredentials(401);
      if (current.totpSealed !== null) {
        // The password was right (the limiter settles this 200 as a success): a second step follows.
        await answerMfaRequired(
          ctx,
          current,
          authenticatedAt,
          passwordStillCurrent(user.id, user.passwordHash, password),
        );
        return;
      }
      await startLoginSession(
        ctx,
        { userId: user.id, authenticatedAt, amr: PASSWORD_AMR },
        () => invalidCredentials(401),
        passwordStillCurrent(user.id, user.passwordHash, password),
      );
    },
  );

  router.post(
    '/auth/refresh',
    csrf,
    withBody,
    validate((b) => ({
      refreshToken: parseString(field(b, 'refreshToken'), 'refreshToken', MAX_TOKEN_FIELD),
    })),
    // Only so that a reuse that revokes the request's own cookie session also clears that cookie.
    cookieSession,
    async (ctx) => {
      let rotated: Awaited<ReturnType<RefreshTokens['rotate']>>;
      try {
        rotated = await refreshTokens.rotate(input(ctx, 'refreshToken').refreshToken);
      } catch (error) {
        if (isLatchkeyError(error, 'ERR_REFRESH_REUSED')) {
          const revoked = (error as RefreshTokenReusedError).sessionId;
          forgetCookieSessionIf(ctx, (current) => current.id === revoked);
          throw new HttpError(
            401,
            'refresh_token_reused',
            'the refresh token was already used; the session has been revoked',
          );
        }
        throw error;
      }
      if (rotated === null) {
        throw new HttpError(401, 'invalid_refresh_token', 'the refresh token is not valid');
      }
      await tokenResponse(ctx, rotated.session as Session<Data>, rotated.token);
    },
  );

  router.get('/auth/me', ...web, authenticated, loadUser, async (ctx) => {
    const { sessionId, via, amr } = auth(ctx);
    const user = ctx.state.user as User;
    const mfa = { totp: (user as StoredUser).totpSealed !== null, passkeys: await passkeys.count(user.id) };
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      userId: user.id,
      email: user.email,
      emailVerified: user.emailVerified,
      sessionId,
      via,
      mfa,
      amr,
    };
  });

  router.post('/auth/logout', ...web, async (ctx) => {
    const header = ctx.req.headers.authorization;
    if (header !== undefined) {
      // Only the header counts when present; an invalid one ends nothing and is still 204.
      const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
      const verified = match?.[1] === undefined ? null : await accessTokens.verify(match[1]);
      if (verified?.ok === true) {
        await sessions.revoke(verified.userId, verified.sessionId);
        forgetCookieSessionIf(ctx, (current) => current.id === verified.sessionId);
      }
    } else {
      await ctx.state.sessions.logOut();
    }
    ctx.status = 204;
  });

  router.post('/auth/logout-others', ...web, authenticated, async (ctx) => {
    const { userId, sessionId } = auth(ctx);
    await sessions.revokeAllForUser(userId, { except: sessionId });
    // Authenticated by a bearer token, the request's cookie may name one of those other sessions.
    forgetCookieSessionIf(ctx, (current) => current.userId === userId && current.id !== sessionId);
    ctx.status = 204;
  });

  router.post('/auth/logout-all', ...web, authenticated, async (ctx) => {
    const { userId } = auth(ctx);
    await sessions.revokeAllForUser(userId);
    forgetCookieSessionIf(ctx, (current) => current.userId === userId);
    ctx.status = 204;
  });

  router.get('/auth/sessions', ...web, authenticated, async (ctx) => {
    const { userId, sessionId } = auth(ctx);
    const list = await sessions.listForUser(userId);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      sessions: list.map((s) => ({
        id: s.id,
        createdAt: new Date(s.createdAt).toISOString(),
        lastSeenAt: new Date(s.lastSeenAt).toISOString(),
        current: s.id === sessionId,
        ...(s.ip === undefined ? {} : { ip: s.ip }),
        ...(s.userAgent === undefined ? {} : { userAgent: s.userAgent }),
      })),
    };
  });

  router.delete('/auth/sessions/:id', ...web, authenticated, async (ctx) => {
    const { userId } = auth(ctx);
    const id = ctx.params['id'] ?? '';
    const revoked = SESSION_ID.test(id) && (await sessions.revoke(userId, id));
    if (!revoked) throw new HttpError(404, 'not_found', 'no such session');
    forgetCookieSessionIf(ctx, (current) => current.id === id);
    ctx.status = 204;
  });

  router.post(
    '/auth/password',
    ...web,
    authenticated,
    withBody,
    validate((b) => ({
      currentPassword: parsePresentedPassword(field(b, 'currentPassword'), 'currentPassword'),
      newPassword: parseNewPassword(field(b, 'newPassword'), 'newPassword'),
    })),
    loadUser,
    loginThrottle((ctx) => (ctx.state.user as User).email),
    async (ctx) => {
      const { currentPassword, newPassword } = input(ctx, 'currentPassword', 'newPassword');
      const user = ctx.state.user as User & { passwordHash: string };
      const { sessionId } = auth(ctx);
      if (!(await hasher.verify(user.passwordHash, currentPassword))) throw invalidCredentials(403);
      // Only over the hash just checked: a reset that landed meanwhile made currentPassword stale, and
      // its new password must stand.
      const newHash = await hasher.hash(newPassword);
      if (!(await users.setPasswordHash(user.id, newHash, user.passwordHash))) throw invalidCredentials(403);
      // The current password was just checked: the kept session counts as freshly authenticated, and
      // a login that checked the old password before this instant can no longer create a session.
      await sessions.revokeAllForUser(user.id, { except: sessionId, setMark: true });
      onEvent({ type: 'password.changed', at: clock.now(), userId: user.id });
      forgetCookieSessionIf(ctx, (current) => current.userId === user.id && current.id !== sessionId);
      ctx.status = 204;
    },
  );

  router.post('/auth/verify-email/request', ...web, authenticated, loadUser, async (ctx) => {
    const user = ctx.state.user as User;
    if (!user.emailVerified) {
      const issued = await codes.issue({ subject: user.email, purpose: 'verify-email', ip: ctx.ip });
      if (!issued.ok) throw tooManyAttempts(issued.retryAfterMs);
      send(user.email, 'verify-email', issued.code);
    }
    ctx.status = 202;
    ctx.body = { status: 'sent' };
  });

  router.post(
    '/auth/verify-email/confirm',
    ...web,
    authenticated,
    withBody,
    validate((b) => ({ code: parseString(field(b, 'code'), 'code', MAX_CODE_FIELD) })),
    loadUser,
    async (ctx) => {
      const user = ctx.state.user as User;
      if (!user.emailVerified) {
        const checked = await codes.verify({
          subject: user.email,
          purpose: 'verify-email',
          code: input(ctx, 'code').code,
          ip: ctx.ip,
        });
        if (!checked.ok) throw invalidCode();
        if (!(await users.markEmailVerified(user))) {
          throw unauthenticated(ctx);
        }
      }
      ctx.body = { emailVerified: true };
    },
  );

  router.post(
    '/auth/password-reset/request',
    csrf,
    withBody,
    validate((b) => ({ email: parseEmail(field(b, 'email')) })),
    perIp('password-reset', limits.resetMaxPerIp),
    async (ctx) => {
      const { email } = input(ctx, 'email');
      const user = await users.findByEmail(email);
      // A code is issued for unknown addresses too (and never sent): the answer, its timing and the
      // cooldown behave the same whether or not an account exists.
      const issued = await codes.issue({ subject: email, purpose: 'password-reset', ip: ctx.ip });
      if (issued.ok && user !== null) send(user.email, 'password-reset', issued.code);
      ctx.status = 202;
      ctx.body = { status: 'sent' };
    },
  );

  router.post(
    '/auth/password-reset/confirm',
    csrf,
    withBody,
    validate((b) => ({
      email: parseEmail(field(b, 'email')),
      code: parseString(field(b, 'code'), 'code', MAX_CODE_FIELD),
      newPassword: parseNewPassword(field(b, 'newPassword'), 'newPassword'),
    })),
    perIp('password-reset-confirm', limits.resetMaxPerIp * RESET_CONFIRMS_PER_REQUEST),
    cookieSession,
    async (ctx) => {
      const { email, code, newPassword } = input(ctx, 'email', 'code', 'newPassword');
      const checked = await codes.verify({
        subject: email,
        purpose: 'password-reset',
        code: code,
        ip: ctx.ip,
      });
      if (!checked.ok) throw invalidCode();
      const user = await users.findByEmail(email);
      if (user === null) throw invalidCode();
      // The code proved the mailbox: the same write marks the email verified and ends the expiry of an
      // unverified account (a squatter's registration of the owner's address becomes the owner's).
      if (!(await users.resetPassword(user, await hasher.hash(newPassword)))) throw invalidCode();
      // After the new hash is written: a login that checked the old password before this instant is
      // refused by the session store's stale-authentication check.
      await sessions.revokeAllForUser(user.id);
      onEvent({ type: 'password.reset', at: clock.now(), userId: user.id });
      forgetCookieSessionIf(ctx, (current) => current.userId === user.id);
      ctx.status = 204;
    },
  );

  if (config.dev && deps.outbox !== undefined) {
    const outbox = deps.outbox;
    router.get('/dev/outbox', async (ctx) => {
      const to = parseEmail(ctx.query['to'], 'to');
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { messages: outbox.list(to) };
    });
  }

  // "Fresh": authenticated within FRESH_AUTH_SECONDS (10 minutes) by a password, a second factor or
  // a passkey — each login's session carries the instant of its last check.
  const fresh = requireFreshAuth<AppState>({ maxAgeMs: limits.freshAuthSeconds * 1000, clock }) as Mw;
  const revokeOthers = async (ctx: Ctx, userId: string, sessionId: string): Promise<void> => {
    await sessions.revokeAllForUser(userId, { except: sessionId });
    forgetCookieSessionIf(ctx, (current) => current.userId === userId && current.id !== sessionId);
  };

  mfaRoutes(router, {
    logger,
    users,
    mfaLogins,
    totp,
    recoveryCodes,
    box,
    csrf,
    cookieSession,
    authenticated,
    fresh,
    withBody,
    logIn: (ctx, login, refused) => startLoginSession(ctx, login, refused),
    unauthenticated,
    revokeOthers,
    send,
    tooManyAttempts,
  });

  passkeyRoutes(router, {
    config,
    clock,
    logger,
    challenges,
    passkeys,
    users,
    csrf,
    cookieSession,
    authenticated,
    fresh,
    withBody,
    perIp,
    loginThrottle,
    logIn: (ctx, login) =>
      startLoginSession(ctx, login, () => new HttpError(401, 'invalid_passkey', 'the passkey is not valid')),
    unauthenticated,
    revokeOthers,
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

function auth(ctx: Ctx): NonNullable<AppState['auth']> {
  const value = ctx.state.auth;
  if (value === undefined) throw unauthenticated(ctx);
  return value;
}

/** The 401 of a protected route whose credential names no usable user (as requireAuth answers). */
function unauthenticated(ctx: Ctx): HttpError {
  const bearer = ctx.state.auth?.via === 'bearer';
  return new HttpError(401, UNAUTHENTICATED.error, UNAUTHENTICATED.message, {
    'WWW-Authenticate': bearer ? 'Bearer error="invalid_token"' : 'Bearer',
    'Cache-Control': 'no-store',
  });
}

/** The validated fields of the route's body (set by `validate`, which ran before). */
function input<K extends string>(ctx: Ctx, ...names: K[]): Record<K, string> {
  const out = {} as Record<K, string>;
  for (const name of names) {
    const value = ctx.state.input?.[name];
    if (value === undefined) throw invalidRequest(`${name} is missing`);
    out[name] = value;
  }
  return out;
}

function invalidCredentials(status: 401 | 403): HttpError {
  return new HttpError(status, 'invalid_credentials', 'the email or password is not correct');
}

function invalidCode(): HttpError {
  return new HttpError(400, 'invalid_code', 'the code is not valid');
}

/**
 * Gives the answers Koa and the router produce without a body (unknown route, wrong method, a method
 * not implemented at all) the JSON shape of every other error.
 */
function jsonFallbacks(): Middleware {
  const bodies: Readonly<Record<number, { error: string; message: string }>> = {
    404: { error: 'not_found', message: 'no such route' },
    405: { error: 'method_not_allowed', message: 'this route does not allow that method' },
    501: { error: 'not_implemented', message: 'this method is not implemented' },
  };
  return async (ctx, next) => {
    await next();
    const status = ctx.status;
    const fallback = bodies[status];
    if (fallback === undefined || (ctx.body !== undefined && ctx.body !== null)) return;
    ctx.body = { ...fallback };
    ctx.status = status; // assigning a body would otherwise turn the status into 200
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
