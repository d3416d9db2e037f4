import { backendSuite, closeClient, openBackendClient, realRedisSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CommandTiming,
  InvalidOptionError,
  LoginLimiter,
  ServerSecret,
  SessionStore,
  type SessionStoreOptions,
  StoreUnavailableError,
} from '../src/index.js';

backendSuite('StoreOptions.onCommand', (test) => {
  test('reports each round trip with its operation, duration and outcome, before the caller resumes', async ({
    redis,
    clock,
    prefix,
  }) => {
    const seen: Array<CommandTiming | 'caller'> = [];
    const store = new SessionStore({ redis, clock, prefix, onCommand: (t) => seen.push(t) });
    const { token } = await store.create('u1', {});
    seen.push('caller');
    assert.ok(await store.get(token));
    await store.revokeAllForUser('u1');
    const timings = seen.filter((t): t is CommandTiming => t !== 'caller');
    assert.equal(
      timings.map((t) => [t.operation, t.outcome]),
      [
        ['session-create', 'ok'],
        ['session-get', 'ok'],
        ['session-revoke-all', 'ok'],
      ],
    );
    assert.is(seen[1], 'caller', 'the hook ran before the caller continued');
    for (const t of timings) {
      assert.ok(t.durationMs >= 0 && t.durationMs < 60_000, `durationMs ${t.durationMs}`);
      assert.is(t.error, undefined);
    }
  });

  test('is shared by every store: the login limiter reports its scripts too', async ({
    redis,
    clock,
    prefix,
  }) => {
    const operations: string[] = [];
    const limiter = new LoginLimiter({
      redis,
      clock,
      prefix,
      secret: ServerSecret.generate(),
      onCommand: (t) => operations.push(t.operation),
    });
    const result = await limiter.check('a@example.com', '203.0.113.9');
    assert.ok(result.allowed);
    assert.ok(operations.length >= 1);
    for (const operation of operations) assert.match(operation, /^limiter-/);
  });

  test('a hook that throws changes nothing for the caller', async ({ redis, clock, prefix }) => {
    const store = new SessionStore({
      redis,
      clock,
      prefix,
      onCommand: () => {
        throw new Error('broken metrics');
      },
    });
    const { token } = await store.create('u1', {});
    assert.ok(await store.get(token));
  });
});

realRedisSuite('StoreOptions.onCommand when Redis is gone', (test) => {
  test('reports outcome unavailable with the StoreUnavailableError the caller gets', async () => {
    const redis = await openBackendClient('redis');
    const timings: CommandTiming[] = [];
    const store = new SessionStore({ redis, onCommand: (t) => timings.push(t) });
    redis.disconnect();
    const error = await store.get(`v1.${'a'.repeat(43)}.${'b'.repeat(22)}.${'c'.repeat(43)}`).then(
      () => null,
      (e: unknown) => e,
    );
    await closeClient(redis);
    assert.instance(error, StoreUnavailableError);
    assert.is(timings.length, 1);
    assert.is(timings[0]?.operation, 'session-get');
    assert.is(timings[0]?.outcome, 'unavailable');
    assert.is(timings[0]?.error, error);
  });
});

const options = suite('StoreOptions.onCommand option');

options('must be a function', () => {
  assert.throws(
    () => new SessionStore({ redis: {} as never, onCommand: 42 } as unknown as SessionStoreOptions),
    (e: unknown) => e instanceof InvalidOptionError,
  );
});

options.run();
