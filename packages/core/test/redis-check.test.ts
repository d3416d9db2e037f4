import { type RedisServerHandle, startRedisServer } from '@latchkey/testing';
import { closeClient, openBackendClient, realRedisSuite } from '@latchkey/testing/backends';
import { Redis } from 'ioredis';
import * as assert from 'uvu/assert';
import { checkRedis, EvictionPolicyError } from '../src/index.js';

realRedisSuite('checkRedis', (check) => {
  let server: RedisServerHandle;
  let client: Redis;

  check.before(async () => {
    server = await startRedisServer();
    client = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  });

  check.after(async () => {
    await closeClient(client);
    await server.stop();
  });

  check('passes quietly on noeviction', async () => {
    await client.config('SET', 'maxmemory-policy', 'noeviction');
    const warnings: string[] = [];
    const result = await checkRedis(client, { warn: (m) => warnings.push(m) });
    assert.ok(result.ok);
    assert.equal(warnings, []);
  });

  check('warns on an eviction policy, naming the policy and the node', async () => {
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const warnings: string[] = [];
    const result = await checkRedis(client, { warn: (m) => warnings.push(m) });
    assert.not.ok(result.ok);
    assert.is(warnings.length, 1);
    assert.match(warnings[0] ?? '', /allkeys-lru/);
    assert.match(warnings[0] ?? '', new RegExp(String(server.port)));
  });

  check('refuses with EvictionPolicyError when told to', async () => {
    await client.config('SET', 'maxmemory-policy', 'volatile-ttl');
    await checkRedis(client, { refuseEviction: true, warn: () => {} }).then(
      () => assert.unreachable('must refuse'),
      (e: unknown) => assert.instance(e, EvictionPolicyError),
    );
  });

  check('checks every master of a cluster', async () => {
    const cluster = await openBackendClient('cluster');
    try {
      const result = await checkRedis(cluster, { warn: () => {} });
      assert.is(Object.keys(result.policies).length, 3);
      assert.ok(result.ok);
    } finally {
      await closeClient(cluster);
    }
  });
});
