import { SessionStore, StoreUnavailableError } from '@latchkey/core';
import { realRedisSuite } from '@latchkey/testing/backends';
import Koa from 'koa';
import * as assert from 'uvu/assert';
import { eventually } from '../../core/test/helpers/assertions.js';
import { startOwnRedis } from '../../core/test/helpers/own-redis.js';
import { latchkeyErrors, type SessionState, session } from '../src/index.js';
import { cookieValue, serve, setCookies, type TestServer } from './support/http-client.js';

const COMMAND_TIMEOUT_MS = 300;

async function logIn(server: TestServer): Promise<{ status: number; cookie: string | undefined }> {
  const response = await server.request('/login', { method: 'POST' });
  await response.arrayBuffer();
  const [line] = setCookies(response, '__Host-sid');
  return {
    status: response.status,
    cookie: line === undefined ? undefined : `__Host-sid=${cookieValue(line)}`,
  };
}

realRedisSuite('session middleware, Redis outage', (test) => {
  test('Redis stopped → 503 with Retry-After within 2 s; Redis back → the same app serves again', async () => {
    // Reconnect quickly in the test; production keeps ioredis's backoff.
    const own = await startOwnRedis({ retryStrategy: () => 50 });
    const store = new SessionStore({ redis: own.redis, commandTimeoutMs: COMMAND_TIMEOUT_MS });
    const app = new Koa<SessionState<Record<string, unknown>>>();
    // The app's error reporting sees every outage answer (latchkeyErrors emits its 5xx as Koa does).
    const reported: Array<{ error: unknown; status: number }> = [];
    app.on('error', (error: unknown, ctx: Koa.Context) => reported.push({ error, status: ctx.status }));
    app.use(latchkeyErrors());
    app.use(session({ store }));
    app.use(async (ctx) => {
      if (ctx.path === '/login') {
        await ctx.state.sessions.logIn('alice', {});
        ctx.status = 204;
        return;
      }
      if (ctx.path === '/logout') {
        await ctx.state.sessions.logOut();
        ctx.status = 204;
        return;
      }
      ctx.body = { userId: ctx.state.session?.userId ?? null };
    });
    const server = await serve(app);
    try {
      const before = await logIn(server);
      assert.is(before.status, 204);
      const cookie = before.cookie as string;
      const loaded = await server.request('/', { headers: { cookie } });
      assert.equal(await loaded.json(), { userId: 'alice' });

      await own.server.stop();
      // The cookie is a valid-looking token: the middleware needs Redis to load it, and so does a
      // logout (which must then leave the cookie alone: nothing was revoked).
      for (const attempt of [
        () => server.request('/', { headers: { cookie } }),
        () => server.request('/login', { method: 'POST' }),
        () => server.request('/logout', { method: 'POST', headers: { cookie } }),
      ]) {
        const started = performance.now();
        const response = await attempt();
        const elapsed = performance.now() - started;
        assert.is(response.status, 503);
        assert.is(response.headers.get('retry-after'), '1');
        assert.equal(await response.json(), {
          error: 'unavailable',
          message: 'the service is temporarily unavailable',
        });
        assert.ok(elapsed < 2000, `answered in ${Math.round(elapsed)} ms`);
        assert.is(
          setCookies(response, '__Host-sid').length,
          0,
          'an outage neither sets nor clears the cookie',
        );
      }
      assert.is(reported.length, 3, 'each 503 reached app.on("error")');
      for (const { error, status } of reported) {
        assert.ok(error instanceof StoreUnavailableError);
        assert.is(status, 503);
      }
      const anonymous = await server.request('/');
      assert.is(anonymous.status, 200, 'a request without a session cookie needs no Redis');
      await anonymous.arrayBuffer();

      await own.server.start();
      // The restarted server is empty (no persistence): the old cookie names nothing now.
      await eventually(async () => {
        const response = await server.request('/', { headers: { cookie } });
        await response.arrayBuffer();
        return response.status === 200;
      }, 'the app serves again');
      const after = await logIn(server);
      assert.is(after.status, 204);
      const reloaded = await server.request('/', { headers: { cookie: after.cookie as string } });
      assert.equal(await reloaded.json(), { userId: 'alice' });
    } finally {
      await server.close();
      await own.close();
    }
  });
});
