import { type RedisClient, userTag } from '@latchkey/core';
import { type RedisServerHandle, startRedisServer } from '@latchkey/testing';
import { realRedisSuite } from '@latchkey/testing/backends';
import * as assert from 'uvu/assert';
import { closeRedis, createRedisClient } from '../src/redis.js';
import { type Client, eventually, type Reply, signUp, startTestApp, type TestApp } from './helpers.js';

// Redis goes away under the running app: every route that needs it answers 503 unavailable with
// Retry-After: 1 within 2 s, the process lives on, and it serves again by itself once Redis is back.

interface Ctx {
  server: RedisServerHandle;
  app: TestApp;
  errors: Error[];
  close(): Promise<void>;
}

type Request = [string, (c: Client) => Promise<Reply>];

/** One request to every route that needs Redis (the cookie ones through `c`'s cookie). */
function everyRoute(
  user: { userId: string; email: string; password: string; accessToken: string; refreshToken: string },
  sessionId: string,
): Request[] {
  const bearer = { bearer: user.accessToken, cookies: false } as const;
  // Well-formed (it names the user's slot), so it reaches Redis.
  const mfaToken = `m1.${userTag(user.userId)}.${'A'.repeat(43)}`;
  return [
    [
      'register',
      (c) =>
        c.post('/auth/register', { email: 'new@example.com', password: 'correct horse' }, { cookies: false }),
    ],
    [
      'login',
      (c) => c.post('/auth/login', { email: user.email, password: user.password }, { cookies: false }),
    ],
    ['me (cookie)', (c) => c.get('/auth/me')],
    ['me (bearer)', (c) => c.get('/auth/me', bearer)],
    ['refresh', (c) => c.post('/auth/refresh', { refreshToken: user.refreshToken }, { cookies: false })],
    ['logout', (c) => c.post('/auth/logout')],
    ['logout (bearer)', (c) => c.post('/auth/logout', undefined, bearer)],
    ['logout-others', (c) => c.post('/auth/logout-others', undefined, bearer)],
    ['logout-all', (c) => c.post('/auth/logout-all', undefined, bearer)],
    ['sessions', (c) => c.get('/auth/sessions', bearer)],
    ['delete session', (c) => c.delete(`/auth/sessions/${sessionId}`, bearer)],
    [
      'password',
      (c) =>
        c.post('/auth/password', { currentPassword: user.password, newPassword: 'new password' }, bearer),
    ],
    ['verify request', (c) => c.post('/auth/verify-email/request', undefined, bearer)],
    ['verify confirm', (c) => c.post('/auth/verify-email/confirm', { code: '123456' }, bearer)],
    [
      'reset request',
      (c) => c.post('/auth/password-reset/request', { email: user.email }, { cookies: false }),
    ],
    ['mfa step (totp)', (c) => c.post('/auth/login/mfa', { mfaToken, method: 'totp', code: '123456' })],
    [
      'mfa step (recovery code)',
      (c) => c.post('/auth/login/mfa', { mfaToken, method: 'recovery-code', code: 'AAAA-BBBB-CCCC-DDDD' }),
    ],
    ['mfa email code', (c) => c.post('/auth/login/mfa/email', { mfaToken })],
    ['totp setup', (c) => c.post('/auth/mfa/totp/setup', undefined, bearer)],
    ['totp qr', (c) => c.get('/auth/mfa/totp/setup/qr.svg', bearer)],
    ['totp confirm', (c) => c.post('/auth/mfa/totp/confirm', { code: '123456' }, bearer)],
    ['totp disable', (c) => c.delete('/auth/mfa/totp', { ...bearer, json: { code: '123456' } })],
    ['recovery codes', (c) => c.post('/auth/mfa/recovery-codes', undefined, bearer)],
    [
      'reset confirm',
      (c) =>
        c.post(
          '/auth/password-reset/confirm',
          { email: user.email, code: '123456', newPassword: 'new password' },
          { cookies: false },
        ),
    ],
  ];
}

realRedisSuite('Redis outage', (outage) => {
  const ctx = {} as Ctx;

  outage.before(async () => {
    ctx.server = await startRedisServer();
    ctx.errors = [];
    const redis = createRedisClient(
      { kind: 'url', url: ctx.server.url },
      { onError: (e) => ctx.errors.push(e) },
    );
    await eventually(async () => (await redis.ping()) === 'PONG', 5000, 'the client to connect');
    ctx.app = await startTestApp({ redis });
    ctx.close = async () => {
      await ctx.app.close();
      await closeRedis(redis);
      await ctx.server.stop();
    };
  });

  outage.after(async () => {
    await ctx.close?.();
  });

  async function timed(request: () => Promise<{ status: number }>): Promise<number> {
    const started = performance.now();
    await request();
    return performance.now() - started;
  }

  outage(
    'every route that needs Redis answers 503 within 2 s, then serves again after a restart',
    async () => {
      const { app, server } = ctx;
      const client = app.client();
      const user = await signUp(client);
      const sessionId = (await client.get('/auth/me')).body.sessionId as string;

      await server.stop();

      const requests = everyRoute(user, sessionId);
      for (const [name, request] of requests) {
        let reply: Reply | undefined;
        const ms = await timed(async () => {
          reply = await request(client);
          return reply;
        });
        assert.is(reply?.status, 503, `${name}: ${reply?.status} ${reply?.text}`);
        assert.equal(reply?.body, { error: 'unavailable', message: reply?.body.message }, name);
        assert.is(reply?.headers.get('retry-after'), '1', name);
        assert.ok(ms < 2000, `${name} took ${Math.round(ms)} ms`);
      }
      let health: Reply | undefined;
      const healthMs = await timed(async () => {
        health = await client.get('/healthz');
        return health;
      });
      assert.is(health?.status, 503);
      assert.equal(health?.body, { status: 'unavailable' });
      assert.ok(healthMs < 2000);
      assert.ok(client.jar.has('sid'), 'a 503 does not clear the cookie');

      // Requests that need no Redis are still answered normally.
      assert.is((await client.get('/nope')).status, 404);
      assert.is((await client.post('/auth/login', { email: 'bad' })).status, 400);

      await server.start(); // empty, as after losing the data
      await eventually(
        async () => (await client.get('/healthz')).status === 200,
        10_000,
        '/healthz to recover',
      );
      const again = app.client();
      const fresh = await signUp(again, user.email, user.password);
      assert.ok(fresh.accessToken.startsWith('v4.public.'));
      assert.is((await again.get('/auth/me')).status, 200);
      assert.is((await client.get('/auth/me')).status, 401, 'lost data logs people out, never in');
    },
  );

  outage(
    'a hung Redis (paused, connection open): every route, all at once, answers 503 within 2 s, and recovers',
    async () => {
      const { app, server } = ctx;
      const client = app.client();
      await eventually(async () => (await client.get('/healthz')).status === 200, 10_000, 'Redis to be up');
      const user = await signUp(client);
      const sessionId = (await client.get('/auth/me')).body.sessionId as string;
      const pid = server.pid;
      assert.ok(pid !== null);
      process.kill(pid as number, 'SIGSTOP');
      try {
        const requests: Request[] = [...everyRoute(user, sessionId), ['healthz', (c) => c.get('/healthz')]];
        const answers = await Promise.all(
          requests.map(async ([name, request]) => {
            const started = performance.now();
            const reply = await request(client);
            return { name, reply, ms: performance.now() - started };
          }),
        );
        for (const { name, reply, ms } of answers) {
          assert.is(reply.status, 503, `${name}: ${reply.status} ${reply.text}`);
          assert.is(reply.headers.get('retry-after'), '1', name);
          assert.ok(ms < 2000, `${name} took ${Math.round(ms)} ms`);
        }
      } finally {
        process.kill(pid as number, 'SIGCONT');
      }
      await eventually(
        async () => (await client.get('/auth/me')).status === 200,
        10_000,
        'the session to be served again',
      );
    },
  );
});

/** An app on a redis-server of its own (the test stops or freezes it), up and answering. */
async function withOwnRedis(
  run: (own: {
    server: RedisServerHandle;
    redis: RedisClient;
    app: TestApp;
    client: Client;
  }) => Promise<void>,
): Promise<void> {
  const server = await startRedisServer();
  const redis = createRedisClient({ kind: 'url', url: server.url });
  const app = await startTestApp({ redis });
  try {
    const client = app.client();
    await eventually(async () => (await client.get('/healthz')).status === 200, 10_000, 'Redis to be up');
    await run({ server, redis, app, client });
  } finally {
    await app.close();
    await closeRedis(redis);
    await server.stop();
  }
}

realRedisSuite('Redis outage logging', (test) => {
  test('an outage is logged once when it starts and once when it ends, however many requests fail in it', async () => {
    await withOwnRedis(async ({ server, app, client }) => {
      await signUp(client);
      const mark = app.logs.length;
      const pid = server.pid as number;
      process.kill(pid, 'SIGSTOP');
      let statuses: number[];
      try {
        statuses = (await Promise.all(Array.from({ length: 20 }, () => client.get('/auth/me')))).map(
          (r) => r.status,
        );
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      assert.equal(statuses, Array(20).fill(503));
      const entries = () => app.logs.slice(mark).map((line) => JSON.parse(line) as Record<string, unknown>);
      await eventually(
        async () => entries().some((e) => e['msg'] === 'Redis is back'),
        10_000,
        'the recovery line',
      );
      const down = entries().filter((e) => e['msg'] === 'Redis unavailable: answering 503 until it is back');
      assert.is(down.length, 1, 'one line when the outage starts');
      assert.ok((down[0]?.['err'] as { stack?: string } | undefined)?.stack, 'with the error that began it');
      const back = entries().filter((e) => e['msg'] === 'Redis is back');
      assert.is(back.length, 1, 'one line when it ends');
      assert.is(back[0]?.['failedRequests'], 20, 'the 503s in between are counted');
      assert.ok(Number(back[0]?.['outageMs']) > 0);
      const warned503 = entries().filter(
        (e) => e['msg'] === 'request' && e['status'] === 503 && e['level'] !== 30,
      );
      assert.equal(warned503, [], 'a 503 request line is info, not a warning each');
    });
  });

  test('a registration whose user write times out answers 503 after one timeout, not two', async () => {
    await withOwnRedis(async ({ redis, client }) => {
      await signUp(client); // defines the user-store scripts on the client
      const commands = redis as unknown as Record<string, unknown>;
      const hang = () => new Promise(() => undefined); // a Redis that took the claim, then froze
      const saved = { create: commands['appUserCreateV1'], release: commands['appUserReleaseV1'] };
      commands['appUserCreateV1'] = hang;
      commands['appUserReleaseV1'] = hang;
      try {
        const started = performance.now();
        const reply = await client.post('/auth/register', {
          email: 'late@example.com',
          password: 'correct horse',
        });
        const ms = performance.now() - started;
        assert.is(reply.status, 503);
        assert.ok(ms < 1700, `answered after ${Math.round(ms)} ms (the create's 1 s timeout, then nothing)`);
      } finally {
        commands['appUserCreateV1'] = saved.create;
        commands['appUserReleaseV1'] = saved.release;
      }
    });
  });
});
