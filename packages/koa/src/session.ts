import {
  type Clock,
  type CreateSessionOptions,
  InvalidOptionError,
  type Session,
  type SessionPatch,
  type SessionStore,
  type SessionToken,
} from '@latchkey/core';
import type { Context, Middleware } from 'koa';
import {
  COOKIE_NAME,
  COOKIE_PATH,
  type CookieAttributes,
  cookieValues,
  putSetCookie,
  serializeCookie,
} from './internal/cookies.js';
import { booleanOption, checkOptionsObject, clockOption } from './internal/options.js';

/** How the session cookie is written. `HttpOnly` is always on. */
export interface SessionCookieOptions {
  /**
   * The base name. With `secure` the cookie is named `__Host-<name>` (no `Domain`, `Path=/`, so a
   * sibling subdomain cannot plant or shadow it); without, `<name>`.
   * @default 'sid'
   */
  readonly name?: string;
  /**
   * Send the cookie over HTTPS only. Turn off only for local development over plain http. Works
   * behind a TLS-terminating proxy whatever `ctx.secure` says (the header is written directly).
   * @default true
   */
  readonly secure?: boolean;
  /**
   * The `SameSite` attribute. `'none'` requires `secure`.
   * @default 'lax'
   */
  readonly sameSite?: 'lax' | 'strict' | 'none';
  /**
   * The cookie path; must be `'/'` when `secure` (the `__Host-` prefix requires it).
   * @default '/'
   */
  readonly path?: string;
}

/** The shape session data must have: a plain object of JSON values. */
export type SessionData = Record<string, unknown>;

/**
 * A core {@link SessionStore} by shape: its public members without the class's `#private` ones, so a
 * store from another copy of `@latchkey/core` in the app (another version) type-checks and works.
 */
export type SessionStoreLike<Data extends SessionData> = Pick<SessionStore<Data>, keyof SessionStore<Data>>;

/** Options of {@link session}. */
export interface SessionMiddlewareOptions<Data extends SessionData> {
  /** The store sessions live in. */
  readonly store: SessionStoreLike<Data>;
  /** How the cookie is named and written. */
  readonly cookie?: SessionCookieOptions;
  /**
   * The clock that turns a regenerated session's absolute expiry into the cookie's `Max-Age`; pass
   * the store's clock. (At login the lifetime comes from the new session itself.)
   * @default systemClock
   */
  readonly clock?: Clock;
}

/**
 * Options of {@link SessionControl.logIn}: those of `SessionStore.create`. `ip` and `userAgent`
 * default to the request's (`ctx.ip`, the `User-Agent` header).
 */
export type LogInOptions = CreateSessionOptions;

/** The per-request session helpers, on `ctx.state.sessions`. */
export interface SessionControl<Data extends SessionData> {
  /** The cookie's full name (`__Host-sid` or `sid` with the defaults). */
  readonly cookieName: string;
  /**
   * Creates a session for `userId` and sets the cookie (one round trip; two when a session was
   * present, which is destroyed first: a login never reuses an existing session, so a planted
   * session id cannot be fixated). `ip` and `userAgent` default to the request's. Pass
   * `authenticatedAt` = the clock's time before the password was checked, so a login racing a
   * password reset or logout-all is refused.
   * @throws {StaleAuthenticationError} when `authenticatedAt` predates the user's revoke-all mark
   * @throws {StoreUnavailableError}
   */
  logIn(userId: string, data: Data, options?: LogInOptions): Promise<Session<Data>>;
  /**
   * Destroys the current session (if any) and sends a clearing cookie either way. Resolves true when
   * a live session was destroyed.
   * @throws {StoreUnavailableError}
   */
  logOut(): Promise<boolean>;
  /**
   * Records changed data fields (a field set to `undefined` is deleted); they show in
   * `ctx.state.session.data` at once and are saved in one atomic update (one round trip, however
   * often this was called) when the request ends without an error. Returns false when there is no
   * session. The save throws `SessionDataTooLargeError` past the store's `maxDataBytes`.
   */
  update(patch: SessionPatch<Data>): boolean;
  /**
   * Gives the current session a new token and cookie (fixation protection on a privilege change);
   * the old token stops working at once. Resolves null (and forgets the session) when it is gone.
   * @throws {StoreUnavailableError}
   */
  regenerate(): Promise<Session<Data> | null>;
  /**
   * Forgets the current session after the application ended it another way (logout-all, revoking
   * it by id, a password reset): sends a clearing cookie, sets `ctx.state.session` to null and drops
   * unsaved changes. Makes no Redis call.
   */
  forget(): void;
}

/** What {@link session} puts on `ctx.state`. */
export interface SessionState<Data extends SessionData> {
  /** The live session of the request's cookie, or null. */
  session: Session<Data> | null;
  /** Log in, log out, change data. */
  sessions: SessionControl<Data>;
}

interface ResolvedCookie extends CookieAttributes {
  readonly name: string;
}

/**
 * Loads the session of the request's cookie onto `ctx.state.session` (one Redis round trip, sliding
 * renewal included; none when there is no cookie or its value cannot be a token) and puts the helpers
 * of {@link SessionControl} on `ctx.state.sessions`. Data changed with `update` is saved once when the
 * request ends.
 *
 * The cookie is `HttpOnly; SameSite=Lax; Path=/; Secure`, named `__Host-sid`, with `Max-Age` = the
 * session's remaining absolute lifetime. When the request carries the cookie more than once (cookie
 * tossing) none of them is used. A cookie that names no live session is ignored, not cleared: a
 * clearing cookie from a slow request could erase the cookie of a login that happened meanwhile.
 *
 * Mount {@link latchkeyErrors} before it: a store outage throws and answers 503.
 *
 * @throws {InvalidOptionError} when an option breaks its rule (named in the message)
 * @example
 * const sessions = new SessionStore<{ theme: string }>({ redis });
 * app.use(latchkeyErrors());
 * app.use(crossOriginProtection());
 * app.use(session({ store: sessions }));
 * router.post('/login', async (ctx) => {
 *   const authenticatedAt = Date.now(); // before the password check
 *   // … check the password …
 *   await ctx.state.sessions.logIn(user.id, { theme: 'dark' }, { authenticatedAt });
 * });
 */
export function session<Data extends SessionData>(
  options: SessionMiddlewareOptions<Data>,
): Middleware<SessionState<Data>> {
  checkOptionsObject(options);
  const { store } = options;
  // Duck-typed: a second copy of @latchkey/core (dist next to src) must not break instanceof.
  if (store === null || typeof store !== 'object' || typeof store.get !== 'function') {
    throw new InvalidOptionError('store must be a SessionStore');
  }
  const clock = clockOption(options.clock);
  const cookie = resolveCookie(options.cookie ?? {});

  return async (ctx, next) => {
    const control = new RequestSession<Data>(ctx, store, cookie, clock);
    ctx.state.sessions = control;
    ctx.state.session = null;
    const values = cookieValues(ctx.req.headers.cookie, cookie.name);
    if (values.length === 1) {
      // get() checks the token's shape itself (garbage never reaches Redis): parsing it here first
      // would run the same regular expression twice on every request.
      const token = values[0] as SessionToken;
      const found = await store.get(token);
      if (found !== null) control.adopt(token, found);
    }
    await next();
    await control.save();
  };
}

class RequestSession<Data extends SessionData> implements SessionControl<Data> {
  readonly #ctx: Context & { state: SessionState<Data> };
  readonly #store: SessionStoreLike<Data>;
  readonly #cookie: ResolvedCookie;
  readonly #clock: Clock;
  #token: SessionToken | null = null;
  #patch: SessionPatch<Data> | null = null;

  constructor(ctx: Context, store: SessionStoreLike<Data>, cookie: ResolvedCookie, clock: Clock) {
    this.#ctx = ctx as Context & { state: SessionState<Data> };
    this.#store = store;
    this.#cookie = cookie;
    this.#clock = clock;
  }

  get cookieName(): string {
    return this.#cookie.name;
  }

  /** @internal The session loaded from the request's cookie. */
  adopt(token: SessionToken, found: Session<Data>): void {
    this.#token = token;
    this.#ctx.state.session = found;
  }

  async logIn(userId: string, data: Data, options: LogInOptions = {}): Promise<Session<Data>> {
    const previous = this.#token;
    if (previous !== null) {
      this.#token = null;
      this.#patch = null;
      this.#ctx.state.session = null;
      await this.#store.destroy(previous);
    }
    const created = await this.#store.create(userId, data, {
      ip: this.#ctx.request.ip,
      userAgent: this.#ctx.get('user-agent'),
      ...options,
    });
    const fresh = created.session;
    this.#token = created.token;
    this.#ctx.state.session = fresh;
    // createdAt is the store's "now": the lifetime needs no second clock.
    this.#setCookie(created.token, fresh.absoluteExpiresAt - fresh.createdAt);
    return fresh;
  }

  async logOut(): Promise<boolean> {
    const token = this.#token;
    // Destroy first: when Redis is down the 503 changes nothing, not even the cookie.
    const destroyed = token === null ? false : await this.#store.destroy(token);
    this.forget();
    return destroyed;
  }

  update(patch: SessionPatch<Data>): boolean {
    const current = this.#ctx.state.session;
    if (this.#token === null || current === null) return false;
    this.#patch = { ...this.#patch, ...patch };
    const data: SessionData = { ...current.data, ...patch };
    for (const name of Object.keys(patch)) if (patch[name] === undefined) delete data[name];
    this.#ctx.state.session = { ...current, data: data as Data };
    return true;
  }

  async regenerate(): Promise<Session<Data> | null> {
    const token = this.#token;
    if (token === null) return null;
    const renewed = await this.#store.regenerate(token);
    if (renewed === null) {
      this.forget();
      return null;
    }
    this.#token = renewed.token;
    this.#ctx.state.session = renewed.session;
    this.#setCookie(renewed.token, renewed.session.absoluteExpiresAt - this.#clock.now());
    return renewed.session;
  }

  forget(): void {
    this.#token = null;
    this.#patch = null;
    this.#ctx.state.session = null;
    putSetCookie(this.#ctx.res, this.#cookie.name, serializeCookie(this.#cookie.name, '', 0, this.#cookie));
  }

  /** @internal Saves recorded changes: one atomic update, once per request. */
  async save(): Promise<void> {
    const patch = this.#patch;
    const token = this.#token;
    if (patch === null || token === null) return;
    this.#patch = null;
    // A session that died meanwhile stays dead (the store never resurrects it) and keeps its cookie:
    // clearing it could erase the cookie of a newer login in the same browser.
    this.#ctx.state.session = await this.#store.update(token, patch);
  }

  /** Sets the cookie to live `lifetimeMs` (rounded up to whole seconds, at least 1). */
  #setCookie(token: SessionToken, lifetimeMs: number): void {
    const maxAgeSeconds = Math.max(Math.ceil(lifetimeMs / 1000), 1);
    putSetCookie(
      this.#ctx.res,
      this.#cookie.name,
      serializeCookie(this.#cookie.name, token, maxAgeSeconds, this.#cookie),
    );
  }
}

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

function resolveCookie(options: SessionCookieOptions): ResolvedCookie {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionError('cookie must be an object');
  const base = options.name ?? 'sid';
  if (typeof base !== 'string' || !COOKIE_NAME.test(base) || /^__(host|secure)-/i.test(base)) {
    throw new InvalidOptionError(
      'cookie.name must be a cookie token without a __Host- or __Secure- prefix (the prefix follows cookie.secure)',
    );
  }
  const secure = booleanOption('cookie.secure', options.secure, true);
  const sameSiteOption = options.sameSite ?? 'lax';
  const sameSite = Object.hasOwn(SAME_SITE, sameSiteOption) ? SAME_SITE[sameSiteOption] : undefined;
  if (sameSite === undefined)
    throw new InvalidOptionError("cookie.sameSite must be 'lax', 'strict' or 'none'");
  if (sameSite === 'None' && !secure)
    throw new InvalidOptionError("cookie.sameSite 'none' requires cookie.secure");
  const path = options.path ?? '/';
  if (typeof path !== 'string' || !COOKIE_PATH.test(path)) {
    throw new InvalidOptionError('cookie.path must start with "/" and hold printable ASCII without ";"');
  }
  if (secure && path !== '/')
    throw new InvalidOptionError('cookie.path must be "/" when cookie.secure is on');
  return Object.freeze({ name: secure ? `__Host-${base}` : base, secure, sameSite, path });
}
