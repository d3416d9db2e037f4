import { randomBytes } from 'node:crypto';
import { realRedisSuite, sharedRedisCluster, sharedRedisServer } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RedisTarget } from '../src/config.js';
import { closeRedis, createRedisClient, describeTarget, whenReady } from '../src/redis.js';
import { signUp, startTestApp } from './helpers.js';

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
