import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AccessTokens,
  generateDevelopmentKey,
  InvalidOptionError,
  KeyRing,
  type Session,
  SessionStore,
  type SessionToken,
} from '@latchkey/core';
import { TestClock } from '@latchkey/testing';
import { type BackendContext, backendSuite, realRedisSuite } from '@latchkey/testing/backends';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually } from '../../core/test/helpers/assertions.js';
import { startOwnRedis } from '../../core/test/helpers/own-redis.js';
import { iso, signV4Public } from '../../core/test/helpers/paseto.js';
import {
  type Auth,
  bearer,
  latchkeyErrors,
  type OptionalBearerState,
  requireAuth,
  type SessionLikeState,
} from '../src/index.js';
import { serve, type TestServer } from './support/http-client.js';

const MINUTE = 60_000;
const dev = await generateDevelopmentKey();
const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });

/**
 * Signs arbitrary claims as latchkey would (kid footer, implicit assertion), written from the PASETO
 * v4.public specification with node:crypto rather than with paseto, as an interoperability check.
 */
function forge(claims: unknown): string {
  const payload = typeof claims === 'string' ? claims : JSON.stringify(claims);
  return signV4Public(dev.secret, payload, JSON.stringify({ kid: dev.kid }), 'latchkey/access-token/v1');
}

interface Harness {
  readonly sessions: SessionStore;
  readonly tokens: AccessTokens;
  readonly server: TestServer;
  /** How often the protected route ran. */
  readonly reached: () => number;
}

/** The part of the session middleware requireAuth relies on: `ctx.state.session` from a `sid` cookie. */
function sessionStandIn(
  sessions: SessionStore,
): Koa.Middleware<{ session?: Session<Record<string, unknown>> | null }> {
  return async (ctx, next) => {
    const value = /(?:^|; )sid=([^;]+)/.exec(ctx.get('cookie'))?.[1];
    ctx.state.session = value === undefined ? null : await sessions.get(value as SessionToken);
    await next();
  };
}

type Mode = 'bearer' | 'optional' | 'requireAuth';

async function harness(
  mode: Mode,
  common: { redis: BackendContext['redis']; clock: TestClock; prefix: string },
): Promise<Harness> {
  const sessions = new SessionStore(common);
  const tokens = new AccessTokens({ ...common, keyRing });
  let reached = 0;
  const app = new Koa<{ auth?: Auth | null }>();
  app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
  app.use(latchkeyErrors());
  app.use(sessionStandIn(sessions));
  if (mode === 'bearer') app.use(bearer({ accessTokens: tokens }));
  else if (mode === 'optional') app.use(bearer({ accessTokens: tokens, optional: true }));
  else app.use(requireAuth({ accessTokens: tokens }));
  app.use((ctx) => {
    reached++;
    ctx.body = { auth: ctx.state.auth };
  });
  const server = await serve(app);
  return { sessions, tokens, server, reached: () => reached };
}

async function expect401(
  h: Harness,
  headers: Record<string, string>,
  challenge: 'Bearer' | 'Bearer error="invalid_token"',
): Promise<void> {
  const before = h.reached();
  const response = await h.server.request('/', { headers });
  assert.is(response.status, 401, JSON.stringify(headers).slice(0, 80));
  assert.is(response.headers.get('www-authenticate'), challenge);
  const body = (await response.json()) as { error: string; message: string };
  assert.is(body.error, 'unauthenticated');
  assert.type(body.message, 'string');
  assert.is(h.reached(), before, 'the route did not run');
}

const bearerHeader = (token: string) => ({ authorization: `Bearer ${token}` });

// ---------------------------------------------------------------------------------------------------

backendSuite('bearer()', (test) => {
  test('puts the verified user, session, authenticatedAt and claims on ctx.state.auth', async (ctx) => {
    const h = await harness('bearer', ctx);
    try {
      const { session } = await h.sessions.create('user-1', {});
      const { token, jti } = await h.tokens.issue({
        userId: 'user-1',
        sessionId: session.id,
        claims: { role: 'a' },
      });
      const response = await h.server.request('/', { headers: bearerHeader(token) });
      assert.is(response.status, 200);
      const { auth } = (await response.json()) as {
        auth: Record<string, unknown> & { claims: Record<string, unknown> };
      };
      assert.is(auth['via'], 'bearer');
      assert.is(auth['userId'], 'user-1');
      assert.is(auth['sessionId'], session.id);
      assert.is(auth['authenticatedAt'], session.authenticatedAt);
      assert.is(auth.claims['jti'], jti);
      assert.is(auth.claims['role'], 'a');
      // Case-insensitive scheme, extra spaces.
      assert.is(
        (await h.server.request('/', { headers: { authorization: `bearer   ${token}` } })).status,
        200,
      );
    } finally {
      await h.server.close();
    }
  });

  test('answers 401 with WWW-Authenticate: Bearer when no token is sent', async (ctx) => {
    const h = await harness('bearer', ctx);
    try {
      await expect401(h, {}, 'Bearer');
      await expect401(h, { authorization: 'Basic dXNlcjpwYXNz' }, 'Bearer');
      await expect401(h, { authorization: '' }, 'Bearer');
    } finally {
      await h.server.close();
    }
  });

  test('answers 401 invalid_token for bad, revoked, expired and foreign tokens — never 5xx', async (ctx) => {
    const h = await harness('bearer', ctx);
    try {
      const { session } = await h.sessions.create('user-2', {});
      const good = await h.tokens.issue({ userId: 'user-2', sessionId: session.id });
      const revoked = await h.tokens.issue({ userId: 'user-2', sessionId: session.id });
      await h.tokens.revoke(revoked.token);
      const at = 'v4.public.'.length + 3;
      const tampered = `${good.token.slice(0, at)}${good.token[at] === 'A' ? 'B' : 'A'}${good.token.slice(at + 1)}`;
      const now = ctx.clock.now();
      const base = { sub: 'user-2', sid: session.id, jti: 'j-1', iat: iso(now), exp: iso(now + MINUTE) };
      const { exp: _exp, ...noExp } = base;
      const { jti: _jti, ...noJti } = base;
      const { sid: _sid, ...noSid } = base;
      const bad = [
        'garbage',
        tampered,
        revoked.token,
        good.token.replace('v4.public.', 'v3.public.'),
        good.token.replace('v4.public.', 'v2.public.'),
        good.token.replace('v4.public.', 'v4.local.'),
        `${good.token.slice(0, 20)}é${good.token.slice(21)}`,
        forge(noExp),
        forge(noJti),
        forge(noSid),
      ];
      for (const token of bad)
        await expect401(h, { authorization: `Bearer ${token}` }, 'Bearer error="invalid_token"');
      await expect401(h, { authorization: 'Bearer' }, 'Bearer error="invalid_token"');
      await expect401(h, { authorization: `Bearer ${good.token} extra` }, 'Bearer error="invalid_token"');
      assert.is((await h.server.request('/', { headers: bearerHeader(good.token) })).status, 200);
      const faithful = forge({ ...base, jti: 'j-2' });
      assert.is(
        (await h.server.request('/', { headers: bearerHeader(faithful) })).status,
        200,
        'the forger is faithful',
      );
      ctx.clock.set(good.expiresAt + 10_000);
      await expect401(h, bearerHeader(good.token), 'Bearer error="invalid_token"');
    } finally {
      await h.server.close();
    }
  });

  test('refuses the tokens of a revoked session and of a user logged out everywhere', async (ctx) => {
    const h = await harness('bearer', ctx);
    try {
      const a = await h.sessions.create('user-3', {});
      const b = await h.sessions.create('user-3', {});
      const ta = await h.tokens.issue({ userId: 'user-3', sessionId: a.session.id });
      const tb = await h.tokens.issue({ userId: 'user-3', sessionId: b.session.id });
      await h.sessions.revoke('user-3', a.session.id);
      await expect401(h, bearerHeader(ta.token), 'Bearer error="invalid_token"');
      assert.is((await h.server.request('/', { headers: bearerHeader(tb.token) })).status, 200);
      ctx.clock.advance(1);
      await h.sessions.revokeAllForUser('user-3');
      await expect401(h, bearerHeader(tb.token), 'Bearer error="invalid_token"');
    } finally {
      await h.server.close();
    }
  });

  test('any garbage in Authorization is a 401, never a 5xx and never the route', async (ctx) => {
    const h = await harness('bearer', ctx);
    try {
      const now = ctx.clock.now();
      const base = { sub: 'u', sid: 's', jti: 'j', iat: iso(now), exp: iso(now + MINUTE) };
      const footer = Buffer.from(JSON.stringify({ kid: dev.kid })).toString('base64url');
      let seed = 7;
      const random = (n: number) =>
        Buffer.from(
          Array.from({ length: n }, () => {
            seed = (seed * 1103515245 + 12345) % 2 ** 31;
            return seed & 255;
          }),
        );
      const tokens: string[] = [
        // Signed with the right key and assertion, but claims no verifier may accept or choke on.
        forge({ ...base, sub: 1 }),
        forge({ ...base, exp: 5 }),
        forge({ ...base, nbf: 'soon' }),
        forge({ ...base, exp: iso(now + 48 * 3600_000) }),
        forge('[]'),
        forge('null'),
        forge('{"__proto__":{"sub":"u"}}'),
      ];
      for (let n = 0; n < 100; n += 3) {
        tokens.push(`v4.public.${random(n).toString('base64url')}.${footer}`);
        tokens.push(`v4.public.${random(n).toString('base64url')}x.${random(n % 40).toString('base64url')}`);
        tokens.push(random(n).toString('base64url'));
      }
      for (const token of tokens) {
        await expect401(h, { authorization: `Bearer ${token}` }, 'Bearer error="invalid_token"');
      }
      for (const header of ['Bearer ', 'Bearer\tx', 'bearer', 'Token abc', 'Bearer a b', 'Bearer ====']) {
        const response = await h.server.request('/', { headers: { authorization: header } });
        assert.is(response.status, 401, header);
      }
    } finally {
      await h.server.close();
    }
  });

  test('a 1 MiB token is refused with a 4xx, by Node or by the middleware', async (ctx) => {
    const h = await harness('bearer', ctx);
    const huge = `v4.public.${'A'.repeat(1024 * 1024)}.${'B'.repeat(20)}`;
    try {
      const response = await h.server.request('/', { headers: bearerHeader(huge) });
      assert.ok(response.status >= 400 && response.status < 500, String(response.status));
    } finally {
      await h.server.close();
    }
    // With a header limit large enough for Node to pass it on, the middleware refuses it.
    const app = new Koa();
    app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
    app.use(latchkeyErrors());
    app.use(bearer({ accessTokens: h.tokens }));
    app.use((c) => {
      c.body = 'reached';
    });
    const server = createServer({ maxHeaderSize: 4 * 1024 * 1024 }, app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/`, { headers: bearerHeader(huge) });
      assert.is(response.status, 401);
      assert.is(response.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('optional mode lets anonymous requests through but still refuses a bad token', async (ctx) => {
    const h = await harness('optional', ctx);
    try {
      const response = await h.server.request('/');
      assert.is(response.status, 200);
      assert.equal(await response.json(), { auth: null });
      await expect401(h, bearerHeader('nope'), 'Bearer error="invalid_token"');
      const { session } = await h.sessions.create('user-4', {});
      const { token } = await h.tokens.issue({ userId: 'user-4', sessionId: session.id });
      const ok = (await (
        await h.server.request('/', { headers: bearerHeader(token) })
      ).json()) as OptionalBearerState;
      assert.is(ok.auth?.userId, 'user-4');
    } finally {
      await h.server.close();
    }
  });
});

backendSuite('requireAuth()', (test) => {
  test('accepts a bearer token, or else the cookie session', async (ctx) => {
    const h = await harness('requireAuth', ctx);
    try {
      const { session, token: cookie } = await h.sessions.create('user-5', {});
      const { token } = await h.tokens.issue({ userId: 'user-5', sessionId: session.id });
      const viaBearer = (await (await h.server.request('/', { headers: bearerHeader(token) })).json()) as {
        auth: Auth;
      };
      assert.is(viaBearer.auth.via, 'bearer');
      assert.is(viaBearer.auth.sessionId, session.id);
      const viaCookie = (await (
        await h.server.request('/', { headers: { cookie: `sid=${cookie}` } })
      ).json()) as {
        auth: Auth;
      };
      assert.equal(viaCookie.auth, {
        via: 'session',
        userId: 'user-5',
        sessionId: session.id,
        authenticatedAt: session.authenticatedAt,
        amr: [],
      });
    } finally {
      await h.server.close();
    }
  });

  test('when Authorization is present only it counts: no fallback to the cookie', async (ctx) => {
    const h = await harness('requireAuth', ctx);
    try {
      const { token: cookie } = await h.sessions.create('user-6', {});
      await expect401(
        h,
        { cookie: `sid=${cookie}`, authorization: 'Bearer forged' },
        'Bearer error="invalid_token"',
      );
      await expect401(h, { cookie: `sid=${cookie}`, authorization: 'Basic dXNlcjpwYXNz' }, 'Bearer');
    } finally {
      await h.server.close();
    }
  });

  test('answers 401 with WWW-Authenticate: Bearer without any credential or with a dead session', async (ctx) => {
    const h = await harness('requireAuth', ctx);
    try {
      await expect401(h, {}, 'Bearer');
      const { token: cookie } = await h.sessions.create('user-7', {});
      await h.sessions.destroy(cookie);
      await expect401(h, { cookie: `sid=${cookie}` }, 'Bearer');
    } finally {
      await h.server.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------

backendSuite('bearer() and requireAuth(): key, getToken, realm', (test) => {
  /** An app with `middleware` whose route echoes ctx.state.auth and ctx.state.user. */
  async function echoApp(common: { redis: BackendContext['redis']; clock: TestClock; prefix: string }) {
    const sessions = new SessionStore(common);
    const tokens = new AccessTokens({ ...common, keyRing });
    const { session, token: cookie } = await sessions.create('user-k', {});
    const { token } = await tokens.issue({ userId: 'user-k', sessionId: session.id });
    const serveWith = async (middleware: Koa.Middleware) => {
      const app = new Koa();
      app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
      app.use(sessionStandIn(sessions) as Koa.Middleware);
      app.use(middleware);
      app.use((ctx) => {
        ctx.body = { auth: ctx.state['auth'] ?? 'unset', user: ctx.state['user'] ?? 'unset' };
      });
      return serve(app);
    };
    return { tokens, token, cookie, sessionId: session.id, serveWith };
  }

  test('key puts the authentication on ctx.state[key] instead of ctx.state.auth', async (ctx) => {
    const e = await echoApp(ctx);
    for (const middleware of [
      bearer({ accessTokens: e.tokens, key: 'user' }),
      requireAuth({ accessTokens: e.tokens, key: 'user' }),
    ]) {
      const server = await e.serveWith(middleware as Koa.Middleware);
      try {
        const body = (await (await server.request('/', { headers: bearerHeader(e.token) })).json()) as {
          auth: unknown;
          user: Auth;
        };
        assert.is(body.auth, 'unset');
        assert.is(body.user.userId, 'user-k');
        assert.is(body.user.via, 'bearer');
      } finally {
        await server.close();
      }
    }
    const viaCookie = await e.serveWith(
      requireAuth({ accessTokens: e.tokens, key: 'user' }) as Koa.Middleware,
    );
    try {
      const body = (await (
        await viaCookie.request('/', { headers: { cookie: `sid=${e.cookie}` } })
      ).json()) as {
        user: Auth;
      };
      assert.equal(body.user.via, 'session');
    } finally {
      await viaCookie.close();
    }
  });

  test('key types ctx.state[key] for the routes after it (koa-jwt style ctx.state.user)', async (ctx) => {
    const e = await echoApp(ctx);
    const app = new Koa<SessionLikeState>();
    // Type-level too: `ctx.state.user.userId` compiles only because requireAuth({ key: 'user' }) says so.
    app.use(requireAuth({ accessTokens: e.tokens, key: 'user' })).use((c) => {
      const userId: string = c.state.user.userId;
      c.body = { userId, via: c.state.user.via };
    });
    const server = await serve(app);
    try {
      const response = await server.request('/', { headers: bearerHeader(e.token) });
      assert.equal(await response.json(), { userId: 'user-k', via: 'bearer' });
    } finally {
      await server.close();
    }
  });

  test('getToken reads another source first; a wrong token from it is refused without fallback', async (ctx) => {
    const e = await echoApp(ctx);
    const getToken = (c: Koa.Context) => c.get('x-token') || undefined;
    for (const middleware of [
      bearer({ accessTokens: e.tokens, getToken }),
      requireAuth({ accessTokens: e.tokens, getToken }),
    ]) {
      const server = await e.serveWith(middleware as Koa.Middleware);
      try {
        const ok = await server.request('/', { headers: { 'x-token': e.token } });
        assert.is(ok.status, 200);
        assert.is(((await ok.json()) as { auth: Auth }).auth.sessionId, e.sessionId);
        const wrong = await server.request('/', {
          headers: { 'x-token': 'forged', ...bearerHeader(e.token) },
        });
        assert.is(wrong.status, 401, 'no fallback to the header once getToken found a token');
        assert.is(wrong.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
        const notToken68 = await server.request('/', { headers: { 'x-token': 'a b' } });
        assert.is(notToken68.status, 401);
        assert.is(notToken68.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
        const header = await server.request('/', { headers: bearerHeader(e.token) });
        assert.is(header.status, 200, 'nothing from getToken: the Authorization header counts');
      } finally {
        await server.close();
      }
    }
  });

  test('realm appears in both challenges', async (ctx) => {
    const e = await echoApp(ctx);
    const server = await e.serveWith(
      bearer({ accessTokens: e.tokens, realm: 'example api' }) as Koa.Middleware,
    );
    try {
      const none = await server.request('/');
      assert.is(none.headers.get('www-authenticate'), 'Bearer realm="example api"');
      const bad = await server.request('/', { headers: bearerHeader('forged') });
      assert.is(bad.headers.get('www-authenticate'), 'Bearer realm="example api", error="invalid_token"');
    } finally {
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------

const options = suite('bearer() and requireAuth() options');

options('refuse a bad key, realm or getToken, naming the option', () => {
  const accessTokens = { verify: async () => ({ ok: false, reason: 'malformed' }) as const };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ key: '' }, /^key/],
    [{ key: 'session' }, /^key/],
    [{ key: '__proto__' }, /^key/],
    [{ key: 'a-b' }, /^key/],
    [{ key: 7 }, /^key/],
    [{ realm: 'say "hi"' }, /^realm/],
    [{ realm: 'back\\slash' }, /^realm/],
    [{ realm: '' }, /^realm/],
    [{ realm: 'x'.repeat(257) }, /^realm/],
    [{ realm: 'caf\u00e9' }, /^realm/],
    [{ getToken: 'cookie' }, /^getToken/],
  ];
  for (const [extra, name] of cases) {
    const makers = [(o: never) => bearer(o), (o: never) => requireAuth(o)];
    for (const make of makers) {
      assert.throws(
        () => make({ accessTokens, ...extra } as never),
        (e: unknown) => e instanceof InvalidOptionError && name.test(e.message),
        JSON.stringify(extra),
      );
    }
  }
  assert.not.throws(() => bearer({ accessTokens, key: 'user', realm: 'api', getToken: () => undefined }));
});

options('refuse a missing or wrong verifier, naming it', () => {
  for (const bad of [undefined, null, {}, { verify: 'no' }]) {
    assert.throws(
      () => bearer({ accessTokens: bad as never }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes('accessTokens'),
    );
    assert.throws(
      () => requireAuth({ accessTokens: bad as never }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes('accessTokens'),
    );
  }
  assert.throws(
    () =>
      bearer({
        accessTokens: { verify: async () => ({ ok: false, reason: 'malformed' }) },
        optional: 'yes' as never,
      }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.includes('optional'),
  );
});

options.run();

// ---------------------------------------------------------------------------------------------------

// A real server of its own (stopped and restarted): where redis-server is missing this suite is not
// defined at all, or fails under LATCHKEY_REQUIRE_REDIS=1 — a skipped outage check never passes.
realRedisSuite('bearer() when Redis is down', (outage) => {
  outage('answers 503 with Retry-After while Redis is stopped and 200 once it is back', async () => {
    const { server, redis, close } = await startOwnRedis({ maxRetriesPerRequest: 1 });
    const clock = new TestClock();
    const common = { redis, clock, prefix: 'lkt-bearer-outage' };
    const sessions = new SessionStore(common);
    const tokens = new AccessTokens({ ...common, keyRing, commandTimeoutMs: 300 });
    const app = new Koa();
    app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
    app.use(latchkeyErrors());
    app.use(bearer({ accessTokens: tokens }));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    const http = await serve(app);
    try {
      const { session } = await sessions.create('user-8', {});
      const { token } = await tokens.issue({ userId: 'user-8', sessionId: session.id });
      assert.is((await http.request('/', { headers: bearerHeader(token) })).status, 200);
      await server.stop();
      const started = performance.now();
      const down = await http.request('/', { headers: bearerHeader(token) });
      assert.is(down.status, 503);
      assert.ok(performance.now() - started < 2_000, 'answers within 2 s');
      assert.is(down.headers.get('retry-after'), '1');
      assert.equal(await down.json(), {
        error: 'unavailable',
        message: 'the service is temporarily unavailable',
      });
      await server.start();
      await eventually(async () => (await redis.ping()) === 'PONG', 'Redis is back');
      // The restarted server is empty: the session must be created again (no "valid" from nothing).
      assert.is((await http.request('/', { headers: bearerHeader(token) })).status, 401);
      const again = await sessions.create('user-8', {});
      const fresh = await tokens.issue({ userId: 'user-8', sessionId: again.session.id });
      assert.is((await http.request('/', { headers: bearerHeader(fresh.token) })).status, 200);
    } finally {
      await http.close();
      await close();
    }
  });
});
