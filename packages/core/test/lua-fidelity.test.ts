// Pins the behaviour of every STYLE.md §Lua trap that latchkey's scripts rely on, on the fake and on
// real Redis alike. If ioredis-mock or Redis changes under us, these fail before a store does.
import { backendSuite } from '@latchkey/testing/backends';
import * as assert from 'uvu/assert';
import { defineScript, ScriptRunner } from '../src/internal/script.js';

const probe = (name: string, numberOfKeys: number, source: string) =>
  defineScript({ name: `fidelity-${name}`, numberOfKeys, source });

const missingField = probe(
  'missing-field',
  1,
  `redis.call('HSET', KEYS[1], 'a', '1')
   redis.call('PEXPIRE', KEYS[1], 60000)
   local v = redis.call('HMGET', KEYS[1], 'a', 'nope')
   local g = redis.call('HGET', KEYS[1], 'nope')
   local a, b, c = 0, 0, 0
   if type(v[1]) == 'string' then a = 1 end
   if type(v[2]) == 'string' then b = 1 end
   if type(g) == 'string' then c = 1 end
   return {a, b, c}`,
);

const emptyZset = probe(
  'empty-zset',
  1,
  `redis.call('ZADD', KEYS[1], ARGV[1], 'm')
   redis.call('ZREM', KEYS[1], 'm')
   if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
   return redis.call('EXISTS', KEYS[1])`,
);

const durations = probe(
  'durations',
  1,
  `local ttl = tonumber(ARGV[1]) - tonumber(ARGV[2])
   redis.call('SET', KEYS[1], ARGV[1])
   redis.call('PEXPIRE', KEYS[1], ttl)
   local later = 0
   if tonumber(ARGV[1]) > tonumber(ARGV[2]) then later = 1 end
   return { later, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1]) }`,
);

const hincr = probe(
  'hincrby',
  1,
  `redis.call('HINCRBY', KEYS[1], 'n', 5)
   redis.call('HINCRBY', KEYS[1], 'n', 1)
   redis.call('HSET', KEYS[1], 's', ARGV[1])
   redis.call('PEXPIRE', KEYS[1], 60000)
   return redis.call('HMGET', KEYS[1], 'n', 's')`,
);

const integers = probe(
  'integers',
  1,
  `local n = redis.call('INCR', KEYS[1])
   redis.call('PEXPIRE', KEYS[1], 60000)
   return { n, #ARGV, 0, -1 }`,
);

const grownList = probe(
  'grown-list',
  0,
  `local out = {}
   for i = 1, tonumber(ARGV[1]) do out[#out + 1] = 'v' .. i end
   return {unpack(out)}`,
);

backendSuite('Lua subset shared by Redis and ioredis-mock', (test) => {
  test('a missing hash field is not a string (HMGET and HGET)', async ({ redis, prefix }) => {
    const runner = new ScriptRunner(redis);
    assert.equal(await runner.run(missingField, [`${prefix}:{f}:h`], []), [1, 0, 0]);
  });

  test('ZCARD == 0 then DEL leaves no empty sorted set behind', async ({ redis, prefix, keys }) => {
    const runner = new ScriptRunner(redis);
    assert.is(await runner.run(emptyZset, [`${prefix}:{f}:z`], ['1795000000000']), 0);
    assert.equal(await keys(), []);
  });

  test('instants past 2^31 compare exactly; their difference sets a PEXPIRE; ARGV strings read back unchanged', async ({
    redis,
    prefix,
  }) => {
    const runner = new ScriptRunner(redis);
    const later = '1795000086400000';
    const now = '1795000000000000';
    const reply = (await runner.run(durations, [`${prefix}:{f}:d`], [later, now])) as unknown[];
    assert.is(reply[0], 1);
    const pttl = Number(reply[1]);
    assert.ok(pttl > 86_300_000 && pttl <= 86_400_000, `pttl ${pttl}`);
    assert.is(reply[2], later);
  });

  test('HINCRBY counters and ARGV strings in a hash read back as parseable text', async ({
    redis,
    prefix,
  }) => {
    const runner = new ScriptRunner(redis);
    const [n, s] = (await runner.run(hincr, [`${prefix}:{f}:c`], ['1795000000000'])) as unknown[];
    assert.is(Number(n), 6);
    assert.is(s, '1795000000000');
  });

  test('a list grown in a loop comes back whole through {unpack(list)}', async ({ redis }) => {
    const runner = new ScriptRunner(redis);
    assert.equal(await runner.run(grownList, [], ['5']), ['v1', 'v2', 'v3', 'v4', 'v5']);
    assert.equal(await runner.run(grownList, [], ['0']), []);
  });

  test('integers (including 0 and negatives) come back as numbers in a flat array', async ({
    redis,
    prefix,
  }) => {
    const runner = new ScriptRunner(redis);
    assert.equal(await runner.run(integers, [`${prefix}:{f}:i`], ['a', 'b']), [1, 2, 0, -1]);
  });
});
