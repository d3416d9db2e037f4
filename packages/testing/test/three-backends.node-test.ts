// The test kit under node:test, on the fake, a real redis-server and a real 3-master Cluster: the same
// per-test context backendSuite gives uvu (fresh prefix and clock, advance, keys, keysWithoutTtl,
// round-trip counter). Run by packages/testing/test/node-test.test.ts through `node --test`, which also
// proves that a failing test here fails the run (LATCHKEY_NODE_TEST_MUST_FAIL=1 adds one).
//
//   node --conditions=latchkey-source --import tsx --test packages/testing/test/three-backends.node-test.ts
import * as assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { type Backend, type BackendContext, openBackend, testBackends } from '@latchkey/testing';

const HOUR = 3_600_000;

for (const kind of testBackends()) {
  describe(`the test kit under node:test [${kind}]`, () => {
    let backend: Backend;
    let t: BackendContext;
    const prefixes: string[] = [];
    before(async () => {
      backend = await openBackend(kind);
    });
    after(() => backend.close());
    beforeEach(() => {
      t = backend.beginTest();
    });
    afterEach(() => {
      prefixes.push(t.prefix);
      backend.endTest(t);
    });

    it('counts round trips from zero and lists the keys under the prefix, with and without TTL', async () => {
      assert.equal(t.roundTrips.count, 0, 'reset for every test');
      await t.redis.set(`${t.prefix}:a`, '1', 'PX', HOUR);
      await t.redis.set(`${t.prefix}:b`, '2');
      assert.equal(t.roundTrips.count, 2);
      assert.deepEqual(await t.keys(), [`${t.prefix}:a`, `${t.prefix}:b`]);
      assert.deepEqual(await t.keysWithoutTtl(), [`${t.prefix}:b`], 'the key without a TTL is the leak');
      await t.redis.del(`${t.prefix}:b`);
    });

    it('advance() moves the clock and the TTLs together', async () => {
      await t.redis.set(`${t.prefix}:short`, '1', 'PX', HOUR);
      await t.redis.set(`${t.prefix}:long`, '1', 'PX', 2 * HOUR);
      const start = t.clock.now();
      await t.advance(HOUR);
      assert.equal(t.clock.now(), start + HOUR);
      assert.deepEqual(await t.keys(), [`${t.prefix}:long`]);
      const left = await t.redis.pttl(`${t.prefix}:long`);
      assert.ok(left > 0 && left <= HOUR, `about an hour left, got ${left} ms`);
      await t.advance(30 * 24 * HOUR);
    });

    it('each test gets a prefix of its own and a clock that starts at the real now again', async () => {
      assert.equal(prefixes.length, 2);
      assert.ok(!prefixes.includes(t.prefix));
      assert.deepEqual(await t.keys(), []);
      assert.ok(t.clock.now() - Date.now() < 60_000, 'the previous test advanced its own clock by 30 days');
    });

    if (process.env['LATCHKEY_NODE_TEST_MUST_FAIL'] === '1') {
      it('fails on purpose (proves that the runner reports a failure)', async () => {
        await t.redis.set(`${t.prefix}:x`, '1', 'PX', HOUR);
        assert.deepEqual(await t.keys(), [], 'a key was just written: this cannot hold');
      });
    }
  });
}
