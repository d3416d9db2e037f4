import { startRedisServer } from '@latchkey/testing';
import { backendSuite, closeClient, realRedisSuite } from '@latchkey/testing/backends';
import { Redis } from 'ioredis';
import * as assert from 'uvu/assert';
import { CrossSlotError, KeySpace, StoreUnavailableError, userTag } from '../src/index.js';
import { defineScript, ScriptRunner } from '../src/internal/script.js';

// Probe scripts for the harness itself; the stores' scripts live in src/lua.
const compareInstants = defineScript({
  name: 'test-compare-instants',
  numberOfKeys: 1,
  source: `
    local stored = redis.call('GET', KEYS[1])
    if type(stored) ~= 'string' then
      redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
      return 0
    end
    if tonumber(ARGV[1]) > tonumber(stored) then return 1 end
    if tonumber(ARGV[1]) < tonumber(stored) then return -1 end
    return 2`,
});

const derivedKey = defineScript({
  name: 'test-derived-key',
  numberOfKeys: 1,
  source: `
    local key = KEYS[1] .. ARGV[1]
    redis.call('HSET', key, 'f', ARGV[2])
    redis.call('PEXPIRE', key, ARGV[3])
    return redis.call('HGET', key, 'f')`,
});

const twoKeys = defineScript({
  name: 'test-two-keys',
  numberOfKeys: 2,
  source: `return redis.call('EXISTS', KEYS[1]) + redis.call('EXISTS', KEYS[2])`,
});

backendSuite('ScriptRunner.run', (test) => {
  test('compares millisecond instants past 2^31 passed through ARGV', async ({ redis, prefix, clock }) => {
    const runner = new ScriptRunner(redis);
    const key = `${prefix}:at:{x}`;
    const at = String(clock.now()); // ~1.8e12, far past 2^31
    assert.is(await runner.run(compareInstants, [key], [at, 60_000]), 0);
    assert.is(await runner.run(compareInstants, [key], [String(clock.now() + 1)]), 1);
    assert.is(await runner.run(compareInstants, [key], [String(clock.now() - 1)]), -1);
    assert.is(await runner.run(compareInstants, [key], [at]), 2);
    assert.is(await redis.get(key), at, 'the stored instant reads back exactly');
  });

  test('derives a key from a tagged KEYS[1] base inside the script', async ({ redis, prefix, keys }) => {
    const runner = new ScriptRunner(redis);
    const space = new KeySpace(prefix);
    const tag = userTag('user {with} "odd" id');
    const reply = await runner.run(derivedKey, [space.sessionBase(tag)], ['sid-1', 'value', 60_000]);
    assert.is(reply, 'value');
    assert.equal(await keys(), [space.session(tag, 'sid-1')]);
  });

  test('refuses keys of two slots before anything reaches Redis', async ({ redis, prefix, roundTrips }) => {
    const runner = new ScriptRunner(redis);
    const space = new KeySpace(prefix);
    roundTrips.reset();
    assert.throws(
      () => runner.run(twoKeys, [space.sessionIndex(userTag('a')), space.sessionIndex(userTag('b'))], []),
      (e: unknown) => e instanceof CrossSlotError,
    );
    assert.is(roundTrips.count, 0);
  });

  test('counts a script call as one round trip, the first call (EVAL) included', async ({
    redis,
    prefix,
    roundTrips,
  }) => {
    const runner = new ScriptRunner(redis);
    const fresh = defineScript({ ...twoKeys, name: `test-fresh-${prefix.replace(/[^a-z0-9]/gi, '')}` });
    const keys = [`${prefix}:{t}:a`, `${prefix}:{t}:b`];
    assert.is(await roundTrips.measure(() => runner.run(fresh, keys, [])), 1);
    assert.is(await roundTrips.measure(() => runner.run(fresh, keys, [])), 1);
  });
});

// The fake has no connection to lose: these run on the real backends only.
backendSuite(
  'ScriptRunner.run, connection failures',
  (test) => {
    test('a closed connection raises StoreUnavailableError', async ({ connect, prefix }) => {
      const client = connect();
      const runner = new ScriptRunner(client, 500);
      await runner.run(twoKeys, [`${prefix}:{t}:a`, `${prefix}:{t}:b`], []);
      client.disconnect();
      await runner.run(twoKeys, [`${prefix}:{t}:a`, `${prefix}:{t}:b`], []).then(
        () => assert.unreachable('must not succeed on a closed connection'),
        (e: unknown) => assert.instance(e, StoreUnavailableError),
      );
    });

    test('a server that does not answer in time raises StoreUnavailableError', async ({
      connect,
      prefix,
      kind,
    }) => {
      const client = connect();
      const runner = new ScriptRunner(client, 100);
      const slow = defineScript({
        name: 'test-slow',
        numberOfKeys: 1,
        source: `local n = 0 for i = 1, tonumber(ARGV[1]) do n = n + 1 end return redis.call('EXISTS', KEYS[1])`,
      });
      const started = performance.now();
      await runner.run(slow, [`${prefix}:{t}:a`], ['40000000']).then(
        () => assert.unreachable(`a ${kind} script this slow must time out`),
        (e: unknown) => assert.instance(e, StoreUnavailableError),
      );
      assert.ok(performance.now() - started < 1000);
    });
  },
  { backends: ['redis', 'cluster'] },
);

const incr = defineScript({
  name: 'test-incr',
  numberOfKeys: 1,
  source: `local n = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 60000) return n`,
});

realRedisSuite('ScriptRunner.run during an outage', (test) => {
  test('fails at once while reconnecting and never runs the call after Redis returns', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 20 });
    const runner = new ScriptRunner(client, 2000);
    try {
      assert.is(await runner.run(incr, ['lk:{o}:n'], []), 1);
      await server.stop();
      for (let i = 0; i < 100 && client.status === 'ready'; i++) await new Promise((r) => setTimeout(r, 10));
      const started = performance.now();
      await runner.run(incr, ['lk:{o}:late'], []).then(
        () => assert.unreachable('must not succeed while Redis is down'),
        (e: unknown) => assert.instance(e, StoreUnavailableError),
      );
      assert.ok(performance.now() - started < 500, 'answered at once, not after the timeout');
      await server.start();
      for (let i = 0; i < 200 && client.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 25));
      assert.is(await runner.run(incr, ['lk:{o}:n'], []), 1, 'serves again (the restarted server is empty)');
      assert.is(await client.get('lk:{o}:late'), null, 'the refused call was not queued and replayed');
    } finally {
      await closeClient(client);
      await server.stop();
    }
  });
});
