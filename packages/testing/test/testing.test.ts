import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { closeClient, realRedisSuite } from '../src/backends.js';
import {
  countRoundTrips,
  createFakeRedis,
  rawCommand,
  realNow,
  startRedisServer,
  TestClock,
} from '../src/index.js';

const fake = suite('createFakeRedis');

fake('each call gets isolated data, while duplicate() shares like a second connection', async () => {
  const a = createFakeRedis();
  const b = createFakeRedis();
  await a.set('k', 'a');
  assert.is(await b.get('k'), null);
  assert.is(await a.duplicate().get('k'), 'a');
});

fake('runs scripts registered with defineCommand', async () => {
  const redis = createFakeRedis();
  redis.defineCommand('probe_v1', { numberOfKeys: 1, lua: "return redis.call('INCR', KEYS[1])" });
  const run = (redis as unknown as { probe_v1(key: string): Promise<number> }).probe_v1.bind(redis);
  assert.is(await run('n'), 1);
  assert.is(await run('n'), 2);
});

fake.run();

const clock = suite('TestClock');

clock('starts at the real now and moves only when told', () => {
  const before = realNow();
  const c = new TestClock();
  assert.ok(c.now() >= before && c.now() <= realNow());
  const t = c.now();
  c.advance(1500);
  assert.is(c.now(), t + 1500);
  assert.throws(() => c.advance(-1), RangeError);
  assert.throws(() => c.set(t), RangeError);
});

clock('drives the fake Redis expiry, a 30-day TTL included, and restores Date.now', async () => {
  const c = new TestClock({ start: 1_795_000_000_000 });
  const redis = createFakeRedis({ clock: c });
  try {
    assert.is(Date.now(), 1_795_000_000_000);
    await redis.set('month', 'x', 'PX', 30 * 86_400_000);
    await redis.set('day', 'x', 'PX', 86_400_000);
    c.advance(86_400_000);
    assert.is(await redis.get('day'), null, 'expired exactly at its TTL');
    assert.is(await redis.get('month'), 'x');
    c.advance(29 * 86_400_000 - 1);
    assert.is(await redis.get('month'), 'x', 'one ms before expiry');
    c.advance(1);
    assert.is(await redis.get('month'), null);
  } finally {
    c.restore();
  }
  assert.ok(Math.abs(Date.now() - realNow()) < 1000, 'Date.now is real again');
  assert.not.ok(c.isInstalled);
});

clock('installing a second clock replaces the first', () => {
  const a = new TestClock({ start: 1000 }).install();
  const b = new TestClock({ start: 2000 }).install();
  assert.is(Date.now(), 2000);
  assert.not.ok(a.isInstalled);
  a.restore(); // not installed: no effect
  assert.is(Date.now(), 2000);
  b.restore();
  assert.ok(Date.now() > 2000);
});

clock.run();

const counter = suite('countRoundTrips on the fake');

counter('counts commands and script calls, one each', async () => {
  const redis = createFakeRedis();
  const rt = countRoundTrips(redis);
  redis.defineCommand('probe_v2', {
    numberOfKeys: 1,
    lua: "redis.call('SET', KEYS[1], '1') redis.call('GET', KEYS[1]) return 1",
  });
  const run = (redis as unknown as { probe_v2(key: string): Promise<number> }).probe_v2.bind(redis);
  assert.is(await rt.measure(() => run('k')), 1, 'calls inside a script are not round trips');
  assert.is(
    await rt.measure(async () => {
      await redis.set('a', '1');
      await redis.get('a');
    }),
    2,
  );
  assert.equal(rt.commands, ['set', 'get']);
});

counter('two counters on one client both count, and neither counts twice', async () => {
  const redis = createFakeRedis();
  const first = countRoundTrips(redis);
  const second = countRoundTrips(redis);
  await redis.set('a', '1');
  assert.is(first.count, 1);
  assert.is(second.count, 1);
  second.reset();
  await redis.get('a');
  assert.is(first.count, 2);
  assert.is(second.count, 1);
});

counter.run();

realRedisSuite('startRedisServer and countRoundTrips on real Redis', (test) => {
  test('a server can be stopped and started again on the same port; clients reconnect', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      await client.set('k', '1');
      const pid = server.pid;
      assert.ok(pid !== null && pid > 0);
      await server.stop();
      assert.is(server.pid, null);
      await rawCommand(server.port, 'PING', 300).then(
        () => assert.unreachable('stopped server must not answer'),
        () => {},
      );
      await server.start();
      assert.ok((await rawCommand(server.port, 'PING')).startsWith('+PONG'));
      for (let i = 0; i < 50 && client.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 100));
      assert.is(await client.get('k'), null, 'a restarted throwaway server is empty');
    } finally {
      await closeClient(client);
      await server.stop();
    }
  });

  test('an EVAL after NOSCRIPT is one round trip', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true });
    try {
      await client.connect(); // the handshake's commands are not the script's
      const rt = countRoundTrips(client);
      client.defineCommand('probe_v3', { numberOfKeys: 1, lua: "return redis.call('INCR', KEYS[1])" });
      const run = (client as unknown as { probe_v3(key: string): Promise<number> }).probe_v3.bind(client);
      assert.is(await rt.measure(() => run('n')), 1);
      await client.script('FLUSH');
      assert.is(await rt.measure(() => run('n')), 1, 'EVALSHA → NOSCRIPT → EVAL counts once');
      assert.is(await run('n'), 3);
    } finally {
      await closeClient(client);
      await server.stop();
    }
  });
});
