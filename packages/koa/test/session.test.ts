import { request as httpRequest } from 'node:http';
import { InvalidOptionError, SessionStore, StoreUnavailableError } from '@latchkey/core';
import { createFakeRedis } from '@latchkey/testing';
import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  crossOriginProtection,
  latchkeyErrors,
  type SessionCookieOptions,
  type SessionState,
  session,
} from '../src/index.js';
import { cookieValues } from '../src/internal/cookies.js';
import { cookieAttributes, cookieValue, serve, setCookies, type TestServer } from './support/http-client.js';

type Data = { theme?: string; visits?: number; cart?: string[] };

interface SessionApp {
  server: TestServer;
  store: SessionStore<Data>;
  /** The cookie name the app uses. */
  name: string;
}

const DAY_MS = 24 * 3600_000;

/**
 * A small app on the session middleware. Routes: `POST /login?user=<id>` logs in; `POST /logout`;
 * `GET /me` shows ctx.state.session; `POST /visit` changes data twice; `POST /regenerate`;
 * `POST /forget`; `POST /revoke-then-update` ends the session behind the middleware's back, then
 * changes data.
 */
async function sessionApp(
  { redis, clock, prefix }: BackendContext,
  cookie: SessionCookieOptions = {},
): Promise<SessionApp> {
  const store = new SessionStore<Data>({ redis, clock, prefix });
  const app = new Koa<SessionState<Data>>();
  app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
  app.use(latchkeyErrors());
  app.use(session({ store, clock, cookie }));
  app.use(async (ctx) => {
    const { sessions } = ctx.state;
    switch (`${ctx.method} ${ctx.path}`) {
      case 'POST /login': {
        const created = await sessions.logIn(String(ctx.query['user']), { theme: 'light', visits: 0 });
        ctx.body = { id: created.id };
        return;
      }
      case 'POST /logout':
        ctx.body = { destroyed: await sessions.logOut() };
        return;
      case 'GET /me': {
        const current = ctx.state.session;
        ctx.body = {
          session: current === null ? null : { id: current.id, userId: current.userId, data: current.data },
        };
        return;
      }
      case 'POST /visit': {
        const visits = (ctx.state.session?.data.visits ?? 0) + 1;
        const changed = sessions.update({ visits }) && sessions.update({ theme: 'dark', cart: ['sku-1'] });
        ctx.body = { changed, data: ctx.state.session?.data ?? null };
        return;
      }
      case 'POST /regenerate': {
        const renewed = await sessions.regenerate();
        ctx.body = { id: renewed?.id ?? null };
        return;
      }
      case 'POST /forget':
        sessions.forget();
        ctx.status = 204;
        return;
      case 'POST /revoke-then-update': {
        const current = ctx.state.session;
        if (current !== null) await store.revoke(current.userId, current.id);
        sessions.update({ theme: 'dark' });
        ctx.status = 204;
        return;
      }
      default:
        ctx.status = 404;
    }
  });
  const server = await serve(app);
  const name = cookie.secure === false ? (cookie.name ?? 'sid') : `__Host-${cookie.name ?? 'sid'}`;
  return { server, store, name };
}

/** Logs `user` in and returns the `name=value` pair to send back. */
async function logIn(app: SessionApp, user: string, cookie?: string): Promise<string> {
  const response = await app.server.request(`/login?user=${encodeURIComponent(user)}`, {
    method: 'POST',
    headers: cookie === undefined ? {} : { cookie },
  });
  assert.is(response.status, 200);
  await response.arrayBuffer();
  const [line] = setCookies(response, app.name);
  assert.ok(line, 'login sets the session cookie');
  return `${app.name}=${cookieValue(line as string)}`;
}

/** `GET /me` with `cookie` (none when undefined): the status and the session the app saw. */
async function me(app: SessionApp, cookie?: string): Promise<{ status: number; body: unknown }> {
  const response = await app.server.request('/me', cookie === undefined ? {} : { headers: { cookie } });
  const text = await response.text();
  return {
    status: response.status,
    body: response.ok ? (JSON.parse(text) as { session: unknown }).session : text,
  };
}

backendSuite('session middleware', (test) => {
  test('logIn sets an HttpOnly, Secure, SameSite=Lax, Path=/ __Host- cookie living the absolute lifetime', async (context) => {
    const app = await sessionApp(context);
    try {
      const response = await app.server.request('/login?user=alice', { method: 'POST' });
      assert.is(
        response.status,
        200,
        'a Secure cookie over plain http (TLS ended at a proxy) does not throw',
      );
      const lines = response.headers.getSetCookie();
      assert.is(lines.length, 1);
      const line = lines[0] as string;
      assert.match(line, /^__Host-sid=v1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43};/);
      assert.equal(cookieAttributes(line), {
        path: '/',
        'max-age': String(DAY_MS / 1000),
        httponly: '',
        secure: '',
        samesite: 'Lax',
      });
    } finally {
      await app.server.close();
    }
  });

  test('Max-Age follows a per-session absolute lifetime', async (context) => {
    const store = new SessionStore<Data>({
      redis: context.redis,
      clock: context.clock,
      prefix: context.prefix,
    });
    const app = new Koa<SessionState<Data>>();
    app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
    app.use(session({ store, clock: context.clock }));
    app.use(async (ctx) => {
      await ctx.state.sessions.logIn('bob', {}, { absoluteTimeoutMs: 7 * DAY_MS, idleTimeoutMs: DAY_MS });
      ctx.status = 204;
    });
    const server = await serve(app);
    try {
      const [line] = setCookies(await server.request('/', { method: 'POST' }), '__Host-sid');
      assert.is(cookieAttributes(line as string)['max-age'], String((7 * DAY_MS) / 1000));
    } finally {
      await server.close();
    }
  });

  test('with secure off the cookie is named sid and carries no Secure', async (context) => {
    const app = await sessionApp(context, { secure: false, sameSite: 'strict' });
    try {
      const response = await app.server.request('/login?user=alice', { method: 'POST' });
      const [line] = setCookies(response, 'sid');
      assert.ok(line);
      const attributes = cookieAttributes(line as string);
      assert.is(attributes['secure'], undefined);
      assert.is(attributes['samesite'], 'Strict');
      assert.is(attributes['httponly'], '');
      assert.is(setCookies(response, '__Host-sid').length, 0);
    } finally {
      await app.server.close();
    }
  });

  test('the cookie loads its session in one round trip', async (context) => {
    const app = await sessionApp(context);
    try {
      const cookie = await logIn(app, 'alice');
      let seen: { status: number; body: unknown } | undefined;
      const trips = await context.roundTrips.measure(async () => {
        seen = await me(app, `theme=x; ${cookie}; other=1`);
      });
      assert.is(trips, 1);
      const { status, body } = seen as { status: number; body: { userId: string; data: Data } };
      assert.is(status, 200);
      assert.is(body.userId, 'alice');
      assert.equal(body.data, { theme: 'light', visits: 0 });
    } finally {
      await app.server.close();
    }
  });

  test('no cookie, or a cookie that cannot be a token, gives no session, no 5xx and no Redis call', async (context) => {
    const app = await sessionApp(context);
    try {
      const tokenShaped = `v1.${'A'.repeat(43)}.${'B'.repeat(22)}.${'C'.repeat(43)}`;
      const garbage = [
        undefined,
        '__Host-sid=',
        '__Host-sid',
        `__Host-sid=${'x'.repeat(10 * 1024)}`,
        `__Host-sid=v1.${'é'.repeat(43)}.${'B'.repeat(22)}.${'C'.repeat(43)}`,
        // UTF-8 bytes on the wire (fetch sends each char below U+0100 as one byte)
        `__Host-sid=${Buffer.from('v1.😀.ключ', 'utf8').toString('latin1')}`,
        '__Host-sid=v1.abc.def.ghi',
        `__Host-sid=${tokenShaped.replace('v1', 'v2')}`,
        `__Host-sid=${tokenShaped}x`,
        `__Host-sid="${tokenShaped}"`,
        `__Host-sid=${tokenShaped.slice(0, -1)}!`,
        `sid=${tokenShaped}`,
        `__host-sid=${tokenShaped}`,
        ';;; = ;__Host-sid;=;',
      ];
      for (const cookie of garbage) {
        let seen: { status: number; body: unknown } | undefined;
        const trips = await context.roundTrips.measure(async () => {
          seen = await me(app, cookie);
        });
        const label = cookie === undefined ? 'no cookie' : cookie.slice(0, 40);
        assert.is(seen?.status, 200, label);
        assert.is(seen?.body, null, label);
        assert.is(trips, 0, label);
      }
      // A well-formed token for no session costs its one lookup and still yields nothing.
      const trips = await context.roundTrips.measure(async () => {
        assert.equal(await me(app, `__Host-sid=${tokenShaped}`), { status: 200, body: null });
      });
      assert.is(trips, 1);
    } finally {
      await app.server.close();
    }
  });

  test('a request carrying the session cookie twice uses neither (cookie tossing)', async (context) => {
    const app = await sessionApp(context);
    try {
      const alice = await logIn(app, 'alice');
      const mallory = await logIn(app, 'mallory');
      for (const cookie of [
        `${alice}; ${mallory}`,
        `${mallory}; ${alice}`,
        `${alice}; ${alice}`,
        `${alice}; __Host-sid=`,
      ]) {
        let seen: { status: number; body: unknown } | undefined;
        const trips = await context.roundTrips.measure(async () => {
          seen = await me(app, cookie);
        });
        assert.equal(seen, { status: 200, body: null });
        assert.is(trips, 0);
      }
      assert.is(((await me(app, alice)).body as { userId: string }).userId, 'alice', 'alone it still works');
    } finally {
      await app.server.close();
    }
  });

  test('the session cookie on two separate Cookie header lines counts twice too', async (context) => {
    const app = await sessionApp(context);
    try {
      const alice = await logIn(app, 'alice');
      const mallory = await logIn(app, 'mallory');
      /** GET /me with the given Cookie lines sent as separate header lines. */
      const meWithLines = (lines: string[]) =>
        new Promise<unknown>((resolve, reject) => {
          const req = httpRequest(`${app.server.origin}/me`, { headers: { cookie: lines } }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              text += chunk;
            });
            res.on('end', () => resolve((JSON.parse(text) as { session: unknown }).session));
          });
          req.on('error', reject);
          req.end();
        });
      const trips = await context.roundTrips.measure(async () => {
        assert.is(await meWithLines([alice, mallory]), null);
        assert.is(await meWithLines([`theme=x; ${mallory}`, `${alice}; other=1`]), null);
      });
      assert.is(trips, 0);
      assert.is(((await meWithLines(['theme=x', alice])) as { userId: string }).userId, 'alice');
    } finally {
      await app.server.close();
    }
  });

  test('logging in over an existing session revokes it and issues a new one', async (context) => {
    const app = await sessionApp(context);
    try {
      const first = await logIn(app, 'alice');
      const firstId = ((await me(app, first)).body as { id: string }).id;
      const second = await logIn(app, 'alice', first);
      assert.is.not(second, first);
      const secondId = ((await me(app, second)).body as { id: string }).id;
      assert.is.not(secondId, firstId, 'a new session, never the old one reused');
      assert.equal(await me(app, first), { status: 200, body: null }, 'the old cookie is dead');
      assert.equal(
        (await app.store.listForUser('alice')).map((s) => s.id),
        [secondId],
      );
      const other = await logIn(app, 'bob', second);
      assert.equal(await me(app, second), { status: 200, body: null });
      assert.is(((await me(app, other)).body as { userId: string }).userId, 'bob');
      assert.equal(await app.store.listForUser('alice'), [], 'switching user ends the previous login');
    } finally {
      await app.server.close();
    }
  });

  test('logOut destroys the session and sends a clearing cookie', async (context) => {
    const app = await sessionApp(context);
    try {
      const cookie = await logIn(app, 'alice');
      const response = await app.server.request('/logout', { method: 'POST', headers: { cookie } });
      assert.equal(await response.json(), { destroyed: true });
      const [line] = setCookies(response, '__Host-sid');
      assert.ok(line);
      assert.is(cookieValue(line as string), '');
      const attributes = cookieAttributes(line as string);
      assert.is(attributes['max-age'], '0');
      assert.is(attributes['path'], '/');
      assert.is(attributes['secure'], '');
      assert.equal(await me(app, cookie), { status: 200, body: null });
      assert.equal(await context.keys(), [], 'nothing of the session is left in Redis');

      const anonymous = await app.server.request('/logout', { method: 'POST' });
      assert.equal(await anonymous.json(), { destroyed: false });
      assert.is(setCookies(anonymous, '__Host-sid').length, 1, 'cleared also without a session');
    } finally {
      await app.server.close();
    }
  });

  test('data changed during a request shows at once and is saved once, at the end', async (context) => {
    const app = await sessionApp(context);
    try {
      const cookie = await logIn(app, 'alice');
      let body: unknown;
      const trips = await context.roundTrips.measure(async () => {
        const response = await app.server.request('/visit', { method: 'POST', headers: { cookie } });
        body = await response.json();
      });
      assert.is(trips, 2, 'one load, one save for two changes');
      assert.equal(body, { changed: true, data: { theme: 'dark', visits: 1, cart: ['sku-1'] } });
      assert.equal(((await me(app, cookie)).body as { data: Data }).data, {
        theme: 'dark',
        visits: 1,
        cart: ['sku-1'],
      });
      const unchanged = await context.roundTrips.measure(() => me(app, cookie));
      assert.is(unchanged, 1, 'a request that changes nothing saves nothing');

      const anonymous = await app.server.request('/visit', { method: 'POST' });
      assert.equal(await anonymous.json(), { changed: false, data: null });
    } finally {
      await app.server.close();
    }
  });

  test('a change to a session ended meanwhile does not bring it back', async (context) => {
    const app = await sessionApp(context);
    try {
      const cookie = await logIn(app, 'alice');
      const response = await app.server.request('/revoke-then-update', {
        method: 'POST',
        headers: { cookie },
      });
      assert.is(response.status, 204);
      assert.equal(await me(app, cookie), { status: 200, body: null });
      assert.equal(await context.keys(), []);
    } finally {
      await app.server.close();
    }
  });

  test('regenerate moves the session to a new cookie and kills the old one', async (context) => {
    const app = await sessionApp(context);
    try {
      const old = await logIn(app, 'alice');
      await context.advance(3600_000 - 120_000);
      assert.is((await me(app, old)).status, 200);
      const response = await app.server.request('/regenerate', { method: 'POST', headers: { cookie: old } });
      const { id } = (await response.json()) as { id: string };
      const [line] = setCookies(response, '__Host-sid');
      assert.ok(line);
      const renewed = `__Host-sid=${cookieValue(line as string)}`;
      assert.is.not(renewed, old);
      const maxAge = Number(cookieAttributes(line as string)['max-age']);
      assert.is(maxAge, (DAY_MS - 3600_000 + 120_000) / 1000, 'the remaining absolute lifetime');
      assert.equal(await me(app, old), { status: 200, body: null });
      assert.equal(((await me(app, renewed)).body as { id: string }).id, id);
    } finally {
      await app.server.close();
    }
  });

  test('forget clears the cookie without a Redis call', async (context) => {
    const app = await sessionApp(context);
    try {
      const cookie = await logIn(app, 'alice');
      let lines: string[] = [];
      const trips = await context.roundTrips.measure(async () => {
        const response = await app.server.request('/forget', { method: 'POST', headers: { cookie } });
        lines = setCookies(response, '__Host-sid');
      });
      assert.is(trips, 1, 'only the load');
      assert.is(lines.length, 1);
      assert.is(cookieAttributes(lines[0] as string)['max-age'], '0');
    } finally {
      await app.server.close();
    }
  });

  test('a session past its idle timeout is gone; one in use slides until the absolute lifetime', async (context) => {
    const app = await sessionApp(context);
    try {
      const idle = await logIn(app, 'alice');
      const busy = await logIn(app, 'bob');
      for (let elapsed = 0; elapsed < DAY_MS - 3600_000; elapsed += 30 * 60_000) {
        await context.advance(30 * 60_000);
        assert.is(
          ((await me(app, busy)).body as { userId: string } | null)?.userId,
          'bob',
          `after ${elapsed}`,
        );
      }
      assert.equal(await me(app, idle), { status: 200, body: null });
      await context.advance(3600_000);
      assert.equal(await me(app, busy), { status: 200, body: null }, 'never past the absolute lifetime');
    } finally {
      await app.server.close();
    }
  });
});

const options = suite('session options');

options('refuses unsafe or malformed cookie options, naming the option', async () => {
  const redis = createFakeRedis();
  const store = new SessionStore({ redis });
  const bad: Array<[SessionCookieOptions, string]> = [
    [{ name: '__Host-sid' }, 'cookie.name'],
    [{ name: '__secure-sid' }, 'cookie.name'],
    [{ name: 'my sid' }, 'cookie.name'],
    [{ name: '' }, 'cookie.name'],
    [{ name: 'sïd' }, 'cookie.name'],
    [{ secure: false, sameSite: 'none' }, 'cookie.sameSite'],
    [{ sameSite: 'LAX' as 'lax' }, 'cookie.sameSite'],
    [{ path: '/app' }, 'cookie.path'],
    [{ secure: false, path: 'app' }, 'cookie.path'],
    [{ secure: false, path: '/a;b' }, 'cookie.path'],
    [{ secure: 'yes' as unknown as boolean }, 'cookie.secure'],
  ];
  for (const [cookie, named] of bad) {
    assert.throws(
      () => session({ store, cookie }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes(named),
      JSON.stringify(cookie),
    );
  }
  assert.throws(
    () => session({ store: {} as SessionStore }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.includes('store'),
  );
  session({ store, cookie: { secure: false, path: '/app', name: 'app_session' } });
  redis.disconnect();
});

const parsing = suite('Cookie header parsing');

parsing('finds each occurrence of the exact name, trimmed, and stops after two', () => {
  assert.equal(cookieValues(undefined, 'sid'), []);
  assert.equal(cookieValues('', 'sid'), []);
  assert.equal(cookieValues('xsid=1; sidx=2; SID=3; sid', 'sid'), []);
  assert.equal(cookieValues(' sid = a ;b=c', 'sid'), ['a']);
  assert.equal(cookieValues('a=b; sid=1; c=d; sid=2; sid=3', 'sid'), ['1', '2']);
  assert.equal(cookieValues('sid=a=b', 'sid'), ['a=b']);
  assert.equal(cookieValues('=sid; sid=x', 'sid'), ['x']);
});

parsing('a header of many pairs without "=" is parsed in linear time', () => {
  const header = `${';'.repeat(1_000_000)}sid=x`;
  const started = performance.now();
  assert.equal(cookieValues(header, 'sid'), ['x']);
  // Linear: a few ms. Searching for '=' to the end of the header from every pair took seconds.
  assert.ok(performance.now() - started < 500, `${Math.round(performance.now() - started)} ms`);
});

const failing = suite('session middleware when the store fails after the load');

failing('logOut answers 503 and leaves the cookie alone when the destroy cannot reach Redis', async () => {
  const token = `v1.${'A'.repeat(43)}.${'B'.repeat(22)}.${'C'.repeat(43)}`;
  const loaded = {
    id: 'B'.repeat(22),
    userId: 'alice',
    data: {},
    createdAt: 0,
    authenticatedAt: 0,
    lastSeenAt: 0,
    expiresAt: Number.MAX_SAFE_INTEGER,
    idleExpiresAt: Number.MAX_SAFE_INTEGER,
    absoluteExpiresAt: Number.MAX_SAFE_INTEGER,
  };
  const outage = () => Promise.reject(new StoreUnavailableError('Redis did not answer'));
  // Loads work, every write fails: what a Redis that dies mid-request looks like.
  const store = {
    get: async () => loaded,
    destroy: outage,
    create: outage,
    update: outage,
    regenerate: outage,
  } as unknown as SessionStore<Data>;
  const app = new Koa<SessionState<Data>>();
  app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
  app.use(latchkeyErrors());
  app.use(session({ store }));
  app.use(async (ctx) => {
    if (ctx.path === '/logout') await ctx.state.sessions.logOut();
    if (ctx.path === '/login') await ctx.state.sessions.logIn('bob', {});
    if (ctx.path === '/regenerate') await ctx.state.sessions.regenerate();
    ctx.status = 204;
  });
  const server = await serve(app);
  try {
    for (const path of ['/logout', '/login', '/regenerate']) {
      const response = await server.request(path, {
        method: 'POST',
        headers: { cookie: `__Host-sid=${token}` },
      });
      assert.is(response.status, 503, path);
      assert.is(response.headers.get('retry-after'), '1', path);
      assert.equal(response.headers.getSetCookie(), [], `${path}: the cookie is neither set nor cleared`);
      await response.arrayBuffer();
    }
  } finally {
    await server.close();
  }
});

const readme = suite('README quick start');

readme(
  'runs as written: login sets the cookie, the cookie loads the session, cross-site POST is refused',
  async () => {
    const redis = createFakeRedis();
    // --- the quick start, verbatim from `const store` on ---
    type Data = { theme?: string };
    const store = new SessionStore<Data>({ redis });
    const app = new Koa<SessionState<Data>>();
    app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
    app.use(latchkeyErrors()); // Redis down → 503 + Retry-After: 1
    app.use(crossOriginProtection()); // cross-site POST/PUT/PATCH/DELETE → 403
    app.use(session({ store })); // { cookie: { secure: false } } for local http only
    app.use(async (ctx) => {
      if (ctx.path === '/login' && ctx.method === 'POST') {
        const authenticatedAt = Date.now(); // read before checking the password
        const userId = 'user-1'; // … after checking the password …
        await ctx.state.sessions.logIn(userId, { theme: 'dark' }, { authenticatedAt });
      }
      ctx.body = { userId: ctx.state.session?.userId ?? null };
    });
    // --- end of the quick start ---
    const server = await serve(app);
    try {
      const login = await server.request('/login', { method: 'POST' });
      assert.equal(await login.json(), { userId: 'user-1' });
      const [line] = setCookies(login, '__Host-sid');
      assert.ok(line);
      const cookie = `__Host-sid=${cookieValue(line as string)}`;
      assert.equal(await (await server.request('/', { headers: { cookie } })).json(), { userId: 'user-1' });
      const forged = await server.request('/login', {
        method: 'POST',
        headers: { 'Sec-Fetch-Site': 'cross-site' },
      });
      assert.is(forged.status, 403);
    } finally {
      await server.close();
      redis.disconnect();
    }
  },
);

options.run();
parsing.run();
failing.run();
readme.run();
