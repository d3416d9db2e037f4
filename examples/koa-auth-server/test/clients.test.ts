import { randomBytes } from 'node:crypto';
import { startRedisSentinel } from '@latchkey/testing';
import { realRedisSuite, sharedRedisCluster, sharedRedisServer } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RedisTarget } from '../src/config.js';
import { closeRedis, createRedisClient, describeTarget, whenReady } from '../src/redis.js';
import { eventually, signUp, startTestApp } from './helpers.js';

// The connections server.ts opens for REDIS_URL and REDIS_CLUSTER (no offline queue, timeouts,
// reconnection) carry the whole flow, on a real server and on a real cluster.

async function flowOn(target: RedisTarget): Promise<void> {
  const redis = createRedisClient(target);
  try {
    assert.ok(await whenReady(redis, 10_000), 'connected');
    const app = await startTestApp({ redis, prefix: `lkt-ex-${randomBytes(4).toString('hex')}` });
    try {
      const client = app.client();
      const user = await signUp(client);
      assert.is((await client.get('/auth/me')).status, 200);
      const rotated = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
      assert.is(rotated.status, 200);
      assert.is((await client.post('/auth/logout-all')).status, 204);
      assert.is((await app.client().get('/auth/me', { bearer: rotated.body.accessToken })).status, 401);
      assert.is((await client.get('/healthz')).status, 200);
    } finally {
      await app.close();
    }
  } finally {
    await closeRedis(redis);
  }
}

realRedisSuite('the server’s Redis clients', (test) => {
  test('REDIS_URL: a single server', async () => {
    const { port } = await sharedRedisServer();
    await flowOn({ kind: 'url', url: `redis://127.0.0.1:${port}` });
  });

  test('REDIS_CLUSTER: a 3-master cluster', async () => {
    const { nodes } = await sharedRedisCluster();
    await flowOn({ kind: 'cluster', nodes: nodes.map((n) => ({ host: n.host, port: n.port })) });
  });

  test('REDIS_SENTINELS with REDIS_WAIT_REPLICAS=1: the flow, and a logout that survives a failover', async () => {
    const sentinel = await startRedisSentinel();
    const target = {
      kind: 'sentinel' as const,
      sentinels: sentinel.sentinels.map((s) => ({ ...s })),
      name: sentinel.name,
    };
    try {
      await flowOn(target);
      const redis = createRedisClient(target);
      const app = await startTestApp({ redis, env: { REDIS_WAIT_REPLICAS: '1' } });
      try {
        assert.ok(await whenReady(redis, 10_000), 'connected');
        const kept = app.client();
        const user = await signUp(kept);
        const other = app.client();
        assert.is(
          (await other.post('/auth/login', { email: user.email, password: user.password })).status,
          200,
        );
        const master = await sentinel.master();
        const loggedOut = [...other.jar].map(([name, value]) => `${name}=${value}`).join('; ');
        assert.is((await other.post('/auth/logout')).status, 204);
        sentinel.kill(master); // right after the acknowledged logout
        const statuses = new Set<number>();
        const promotion = sentinel.awaitPromotion(master);
        let promoted = false;
        void promotion.then(() => {
          promoted = true;
        });
        while (!promoted) {
          statuses.add((await kept.get('/auth/me')).status);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await promotion;
        // Back to a replica: until then every revocation (a refresh rotates) fails closed with 503.
        await sentinel.restart(master);
        let last = 0;
        await eventually(
          async () => {
            last = (await kept.get('/auth/me')).status;
            return last === 200;
          },
          30_000,
          'serving again',
        ).catch((error: unknown) => {
          throw new Error(
            `${String(error)} (last status ${last}, seen ${[...statuses].join(',')}, client ${(redis as { status?: string }).status}, logs ${app.logs.slice(-3).join(' | ').slice(0, 1500)})`,
          );
        });
        for (const status of statuses)
          assert.ok([200, 503].includes(status), `answered ${status} during the failover`);
        const probe = app.client();
        const me = await probe.get('/auth/me', { headers: { cookie: loggedOut } });
        assert.is(me.status, 401, 'the acknowledged logout survived the failover');
        assert.is(
          (await app.client().post('/auth/refresh', { refreshToken: user.refreshToken })).status,
          200,
        );
      } finally {
        await app.close();
        await closeRedis(redis);
      }
    } finally {
      await sentinel.stop();
    }
  });
});

const clients = suite('describeTarget');

clients('the start-up line names the target without credentials', () => {
  assert.is(
    describeTarget({ kind: 'url', url: 'redis://user:hunter2@db.internal:6380/1' }),
    'the Redis server at redis://db.internal:6380/1',
  );
  assert.match(describeTarget({ kind: 'fake' }), /lost on exit/);
  assert.is(describeTarget({ kind: 'cluster', nodes: [{ host: 'a', port: 1 }] }), 'the Redis Cluster at a:1');
});

clients.run();
