import { InvalidOptionError } from '@latchkey/core';
import { TestClock } from '@latchkey/testing';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type FreshnessState, latchkeyErrors, requireFreshAuth } from '../src/index.js';
import { serve, type TestServer } from './support/http-client.js';

const MAX_AGE_MS = 5 * 60_000;

/**
 * An app where the headers `x-session-auth-at` / `x-bearer-auth-at` stand in for what the session and
 * bearer middleware would put on ctx.state; the guarded route counts how often it ran.
 */
async function guardedApp(clock: TestClock) {
  let reached = 0;
  const app = new Koa<FreshnessState>();
  app.use(latchkeyErrors());
  app.use(async (ctx, next) => {
    const session = ctx.get('x-session-auth-at');
    const bearer = ctx.get('x-bearer-auth-at');
    if (session !== '') ctx.state.session = { authenticatedAt: Number(session) };
    if (bearer !== '') ctx.state.auth = { authenticatedAt: Number(bearer) };
    await next();
  });
  app.use(requireFreshAuth({ maxAgeMs: MAX_AGE_MS, clock }));
  app.use((ctx) => {
    reached++;
    ctx.status = 204;
  });
  const server = await serve(app);
  return {
    server,
    get reached() {
      return reached;
    },
  };
}

async function expectReauthentication(server: TestServer, headers: Record<string, string>): Promise<void> {
  const response = await server.request('/', { method: 'POST', headers });
  assert.is(response.status, 401);
  assert.equal(await response.json(), {
    error: 'reauthentication_required',
    message: 'this action needs a recent login; please authenticate again',
  });
  assert.is(
    response.headers.get('www-authenticate'),
    'Bearer error="insufficient_user_authentication", max_age=300',
  );
}

const guard = suite('requireFreshAuth');

guard('passes while the session was authenticated less than maxAgeMs ago, then asks again', async () => {
  const clock = new TestClock();
  const guarded = await guardedApp(clock);
  try {
    const headers = { 'x-session-auth-at': String(clock.now()) };
    assert.is((await guarded.server.request('/', { method: 'POST', headers })).status, 204);
    clock.advance(MAX_AGE_MS - 1);
    assert.is((await guarded.server.request('/', { method: 'POST', headers })).status, 204, 'just inside');
    clock.advance(1);
    await expectReauthentication(guarded.server, headers);
    assert.is(guarded.reached, 2, 'the refused request never reached the route');
  } finally {
    await guarded.server.close();
  }
});

guard('with an Authorization header only the bearer authentication counts', async () => {
  const clock = new TestClock();
  const guarded = await guardedApp(clock);
  try {
    const now = String(clock.now());
    const stale = String(clock.now() - MAX_AGE_MS - 1);
    await expectReauthentication(guarded.server, {
      authorization: 'Bearer x',
      'x-bearer-auth-at': stale,
      'x-session-auth-at': now,
    });
    const fresh = await guarded.server.request('/', {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'x-bearer-auth-at': now, 'x-session-auth-at': stale },
    });
    assert.is(fresh.status, 204);
    const noBearer = await guarded.server.request('/', {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'x-session-auth-at': now },
    });
    assert.is(noBearer.status, 401, 'no fallback to the cookie session');
    assert.is(((await noBearer.json()) as { error: string }).error, 'unauthenticated');
  } finally {
    await guarded.server.close();
  }
});

guard('without any authentication it answers 401 unauthenticated with WWW-Authenticate: Bearer', async () => {
  const guarded = await guardedApp(new TestClock());
  try {
    const response = await guarded.server.request('/', { method: 'POST' });
    assert.is(response.status, 401);
    assert.is(response.headers.get('www-authenticate'), 'Bearer');
    assert.equal(await response.json(), { error: 'unauthenticated', message: 'authentication required' });
    assert.is(guarded.reached, 0);
  } finally {
    await guarded.server.close();
  }
});

guard('reads the authentication under `key`, also one made from a token without Authorization', async () => {
  const clock = new TestClock();
  const app = new Koa<{ user?: { authenticatedAt: number }; session?: { authenticatedAt: number } }>();
  app.use(async (ctx, next) => {
    // What bearer({ key: 'user', getToken }) leaves for a token from a cookie: no Authorization header.
    ctx.state.user = { authenticatedAt: Number(ctx.get('x-user-auth-at')) };
    ctx.state.session = { authenticatedAt: clock.now() };
    await next();
  });
  app.use(requireFreshAuth({ maxAgeMs: MAX_AGE_MS, clock, key: 'user', realm: 'app' }));
  app.use((ctx) => {
    ctx.status = 204;
  });
  const server = await serve(app);
  try {
    const fresh = await server.request('/', {
      method: 'POST',
      headers: { 'x-user-auth-at': String(clock.now()) },
    });
    assert.is(fresh.status, 204);
    const stale = await server.request('/', {
      method: 'POST',
      headers: { 'x-user-auth-at': String(clock.now() - MAX_AGE_MS) },
    });
    assert.is(stale.status, 401, 'the token authentication counts, not the fresher cookie session');
    assert.match(
      stale.headers.get('www-authenticate') ?? '',
      /^Bearer realm="app", error="insufficient_user/,
    );
  } finally {
    await server.close();
  }
});

guard('refuses a maxAgeMs that is not a whole number ≥ 1', () => {
  for (const maxAgeMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '60000' as unknown as number]) {
    assert.throws(
      () => requireFreshAuth({ maxAgeMs }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes('maxAgeMs'),
      String(maxAgeMs),
    );
  }
  assert.throws(
    () => requireFreshAuth({ maxAgeMs: 1000, clock: {} as TestClock }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.includes('clock'),
  );
});

guard.run();
