import { TestClock } from '@latchkey/testing';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signUp, startTestApp, type TestApp } from './helpers.js';

// The lifetimes of HTTP-API.md, as a client sees them, with their defaults and with each variable
// overriding its default: a test per variable that fails if the app ignored it.

interface Ctx {
  clock: TestClock;
  apps: TestApp[];
  start(env?: Record<string, string>): Promise<TestApp>;
}

const lifetimes = suite<Ctx>('lifetimes');
lifetimes.before.each((ctx) => {
  ctx.clock = new TestClock();
  ctx.clock.install();
  ctx.apps = [];
  ctx.start = async (env = {}) => {
    const app = await startTestApp({ env, clock: ctx.clock });
    ctx.apps.push(app);
    return app;
  };
});
lifetimes.after.each(async (ctx) => {
  await Promise.all(ctx.apps.map((app) => app.close()));
  ctx.clock.restore();
});

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** The access-token verifier's tolerance for clock differences (core's default). */
const TOLERANCE = 5 * SECOND;

async function accessTokenLife(ctx: Ctx, env: Record<string, string>, ttl: number): Promise<void> {
  const app = await ctx.start(env);
  const client = app.client();
  const user = await signUp(client);
  const login = await app.client().post('/auth/login', { email: user.email, password: user.password });
  assert.is(login.body.expiresIn, ttl / SECOND);
  const me = () => app.client().get('/auth/me', { bearer: login.body.accessToken });
  ctx.clock.advance(ttl - SECOND);
  assert.is((await me()).status, 200, 'alive just before expiresIn');
  ctx.clock.advance(SECOND + TOLERANCE + SECOND);
  assert.is((await me()).status, 401, 'expired after expiresIn');
}

lifetimes('an access token lives 15 minutes by default', async (ctx) => {
  await accessTokenLife(ctx, {}, 15 * MINUTE);
});

lifetimes('ACCESS_TOKEN_TTL_SECONDS sets the access-token lifetime', async (ctx) => {
  await accessTokenLife(ctx, { ACCESS_TOKEN_TTL_SECONDS: '120' }, 2 * MINUTE);
});

async function idleLife(ctx: Ctx, env: Record<string, string>, idle: number): Promise<void> {
  const app = await ctx.start(env);
  const client = app.client();
  await signUp(client);
  // Use renews the idle timer: three times just under it, the session lives on.
  for (let i = 0; i < 3; i++) {
    ctx.clock.advance(idle - SECOND);
    assert.is((await client.get('/auth/me')).status, 200, `use ${i + 1}`);
  }
  ctx.clock.advance(idle + SECOND);
  assert.is((await client.get('/auth/me')).status, 401, 'idle for longer than the timeout');
}

lifetimes('a session ends after 1 h without use by default', async (ctx) => {
  await idleLife(ctx, {}, HOUR);
});

lifetimes('SESSION_IDLE_TTL_SECONDS sets the idle timeout', async (ctx) => {
  await idleLife(ctx, { SESSION_IDLE_TTL_SECONDS: '600' }, 10 * MINUTE);
});

async function absoluteLife(ctx: Ctx, env: Record<string, string>, absolute: number): Promise<void> {
  const app = await ctx.start(env);
  const client = app.client();
  const user = await signUp(client);
  const login = await app.client().post('/auth/login', { email: user.email, password: user.password });
  assert.match(login.setCookies[0] as string, new RegExp(`; Max-Age=${absolute / SECOND}(;|$)`));
  let refreshToken = login.body.refreshToken as string;
  const step = Math.min(Math.floor(absolute / 10), 50 * MINUTE); // used often enough never to idle out
  let elapsed = 0;
  while (elapsed + step < absolute) {
    ctx.clock.advance(step);
    elapsed += step;
    assert.is((await client.get('/auth/me')).status, 200, `cookie at ${elapsed} ms`);
    const refreshed = await app.client().post('/auth/refresh', { refreshToken });
    assert.is(refreshed.status, 200, `refresh at ${elapsed} ms`);
    refreshToken = refreshed.body.refreshToken;
  }
  ctx.clock.advance(absolute - elapsed);
  assert.is((await client.get('/auth/me')).status, 401, 'the cookie ends at the absolute lifetime');
  const late = await app.client().post('/auth/refresh', { refreshToken });
  assert.is(late.status, 401, 'and so does the refresh token');
  assert.is(late.body.error, 'invalid_refresh_token');
}

lifetimes('a session and its refresh token end 24 h after login by default, however used', async (ctx) => {
  await absoluteLife(ctx, {}, 24 * HOUR);
});

lifetimes(
  'SESSION_ABSOLUTE_TTL_SECONDS sets the absolute lifetime (and the cookie’s Max-Age)',
  async (ctx) => {
    await absoluteLife(ctx, { SESSION_ABSOLUTE_TTL_SECONDS: '7200' }, 2 * HOUR);
  },
);

lifetimes('a refresh renews the idle timer of its session', async (ctx) => {
  const app = await ctx.start({ SESSION_IDLE_TTL_SECONDS: '600' });
  const client = app.client();
  const user = await signUp(client);
  let refreshToken = user.refreshToken;
  for (let i = 0; i < 4; i++) {
    ctx.clock.advance(590 * SECOND);
    const refreshed = await app.client().post('/auth/refresh', { refreshToken });
    assert.is(refreshed.status, 200, `refresh ${i + 1}, 590 s after the last`);
    refreshToken = refreshed.body.refreshToken;
  }
  assert.is((await client.get('/auth/me')).status, 200, 'the cookie of that session too');
  ctx.clock.advance(601 * SECOND);
  assert.is((await app.client().post('/auth/refresh', { refreshToken })).status, 401);
});

lifetimes('refresh reuse grace is 0 s by default: the first replay is reuse', async (ctx) => {
  const app = await ctx.start();
  const user = await signUp(app.client());
  assert.is((await app.client().post('/auth/refresh', { refreshToken: user.refreshToken })).status, 200);
  const replay = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
  assert.is(replay.body.error, 'refresh_token_reused');
});

lifetimes(
  'REFRESH_REUSE_GRACE_SECONDS: a replay inside the grace gets the same successor; after it, reuse',
  async (ctx) => {
    const app = await ctx.start({ REFRESH_REUSE_GRACE_SECONDS: '5' });
    const user = await signUp(app.client());
    const first = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(first.status, 200);
    ctx.clock.advance(4 * SECOND);
    const retry = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(retry.status, 200, 'a lost answer retried inside the grace');
    assert.is(retry.body.refreshToken, first.body.refreshToken, 'the very same successor');
    ctx.clock.advance(2 * SECOND);
    const replay = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(replay.status, 401);
    assert.is(replay.body.error, 'refresh_token_reused');
  },
);

lifetimes.run();
