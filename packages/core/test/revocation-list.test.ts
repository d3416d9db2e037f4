import { createFakeRedis } from '@latchkey/testing';
import { backendSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  KeySpace,
  RevocationList,
  type SecurityEvent,
  userTag,
} from '../src/index.js';

const MINUTE = 60_000;
const TOLERANCE = 5_000;
const MARGIN = 60_000;

const options = suite('RevocationList options');

options('rejects out-of-range tolerance, margin and batch size, naming the option', () => {
  const redis = createFakeRedis();
  for (const [bad, name] of [
    [{ clockToleranceMs: -1 }, 'clockToleranceMs'],
    [{ clockToleranceMs: 2 * 3600_000 }, 'clockToleranceMs'],
    [{ skewMarginMs: 1.5 }, 'skewMarginMs'],
    [{ maxBatchSize: 0 }, 'maxBatchSize'],
  ] as const) {
    assert.throws(
      () => new RevocationList({ redis, ...bad }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes(name),
    );
  }
  redis.disconnect();
});

options.run();

backendSuite('RevocationList.revoke', (test) => {
  test('revokes a jti in one round trip, with TTL = remaining life + tolerance + skew margin', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const expiresAt = ctx.clock.now() + 10 * MINUTE;
    assert.is(await ctx.roundTrips.measure(() => list.revoke('jti-1', { expiresAt, userId: 'alice' })), 1);
    const key = new KeySpace(ctx.prefix).revokedJti(userTag('alice'), 'jti-1');
    assert.equal(await ctx.keys(), [key]);
    const pttl = await ctx.redis.pttl(key);
    const expected = 10 * MINUTE + TOLERANCE + MARGIN;
    assert.ok(pttl <= expected && pttl > expected - 2_000, `pttl ${pttl} ≈ ${expected}`);
    assert.ok(await list.isRevoked('jti-1', { userId: 'alice' }));
  });

  test('works with a clock that reports fractions of a millisecond', async (ctx) => {
    const list = new RevocationList({
      redis: ctx.redis,
      clock: { now: () => ctx.clock.now() + 0.25 },
      prefix: ctx.prefix,
    });
    assert.is(await list.revoke('frac', { expiresAt: ctx.clock.now() + MINUTE, userId: 'ida' }), true);
    assert.ok(await list.isRevoked('frac', { userId: 'ida' }));
    assert.equal(await ctx.keysWithoutTtl(), []);
  });

  test('stores nothing for a token already past expiry plus tolerance', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const now = ctx.clock.now();
    assert.is(await list.revoke('old', { expiresAt: now - TOLERANCE, userId: 'alice' }), false);
    assert.is(await list.revoke('old2', { expiresAt: now - MINUTE }), false);
    assert.equal(await ctx.keys(), []);
    // Still inside the tolerance some verifier would accept it: it must be recorded.
    assert.is(await list.revoke('recent', { expiresAt: now - TOLERANCE + 1_000, userId: 'alice' }), true);
    assert.ok(await list.isRevoked('recent', { userId: 'alice' }));
  });

  test('never shortens an existing record', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const now = ctx.clock.now();
    await list.revoke('j', { expiresAt: now + 30 * MINUTE, userId: 'bob' });
    await list.revoke('j', { expiresAt: now + MINUTE, userId: 'bob' });
    const key = new KeySpace(ctx.prefix).revokedJti(userTag('bob'), 'j');
    assert.ok((await ctx.redis.pttl(key)) > 29 * MINUTE);
  });

  test('keeps the record until the token is dead everywhere, then holds zero keys', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const expiresAt = ctx.clock.now() + 2 * MINUTE;
    await list.revoke('a', { expiresAt, userId: 'carol' });
    await list.revoke('b', { expiresAt });
    await ctx.advance(2 * MINUTE + TOLERANCE + MARGIN - 1_000);
    assert.ok(await list.isRevoked('a', { userId: 'carol' }), 'still recorded inside the margin');
    assert.ok(await list.isRevoked('b'));
    assert.equal(await ctx.keysWithoutTtl(), []);
    await ctx.advance(2_000);
    assert.equal(await ctx.keys(), []);
  });

  test('puts a user-scoped id under the user tag and a bare id under its own tag', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const space = new KeySpace(ctx.prefix);
    const expiresAt = ctx.clock.now() + MINUTE;
    await list.revoke('same', { expiresAt, userId: 'user {with} "braces"' });
    await list.revoke('same', { expiresAt });
    assert.equal(
      await ctx.keys(),
      [space.revokedJti(userTag('user {with} "braces"'), 'same'), space.revokedJtiStandalone('same')].sort(),
    );
    assert.not.ok(await list.isRevoked('same', { userId: 'someone else' }));
  });

  test('emits access-token.revoked with the jti and user, never more', async (ctx) => {
    const events: SecurityEvent[] = [];
    const list = new RevocationList({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      onEvent: (event) => events.push(event),
    });
    await list.revoke('e1', { expiresAt: ctx.clock.now() + MINUTE, userId: 'dave' });
    await list.revoke('e2', { expiresAt: ctx.clock.now() - MINUTE, userId: 'dave' });
    assert.equal(events, [{ type: 'access-token.revoked', at: ctx.clock.now(), jti: 'e1', userId: 'dave' }]);
  });

  test('refuses malformed ids and expiries before reaching Redis', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const expiresAt = ctx.clock.now() + MINUTE;
    ctx.roundTrips.reset();
    const bad: unknown[] = ['', 'a b', 'x'.repeat(129), '{tag}', 'ünï', 'a:b', 'a\nb', 42, null, undefined];
    for (const jti of bad) {
      await list.revoke(jti as string, { expiresAt }).then(
        () => assert.unreachable(`accepted ${String(jti)}`),
        (e: unknown) => assert.instance(e, InvalidInputError),
      );
    }
    for (const e of [Number.NaN, 1.5, -1, ctx.clock.now() + 400 * 24 * 3600_000]) {
      await list.revoke('ok', { expiresAt: e }).then(
        () => assert.unreachable(`accepted expiresAt ${e}`),
        (error: unknown) => assert.instance(error, InvalidInputError),
      );
    }
    for (const userId of ['', '\uD800', 'a\uDC00b']) {
      // A lone surrogate reaches the digest as U+FFFD: two ids would share one tag.
      await list.revoke('ok', { expiresAt, userId }).then(
        () => assert.unreachable(`accepted the user id ${JSON.stringify(userId)}`),
        (error: unknown) => assert.instance(error, InvalidInputError),
      );
    }
    assert.is(ctx.roundTrips.count, 0);
    assert.equal(await ctx.keys(), []);
  });
});

backendSuite('RevocationList.isRevoked', (test) => {
  test('answers false for an unknown id and true after revoke, one round trip each', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    let answer: boolean | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        answer = await list.isRevoked('nope', { userId: 'erin' });
      }),
      1,
    );
    assert.is(answer, false);
    await list.revoke('nope', { expiresAt: ctx.clock.now() + MINUTE, userId: 'erin' });
    assert.is(await list.isRevoked('nope', { userId: 'erin' }), true);
    assert.is(await list.isRevoked('nope'), false, 'the bare scope is another record');
  });
});

backendSuite('RevocationList.areRevoked', (test) => {
  test('answers a batch in order; one user’s ids are one round trip', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const expiresAt = ctx.clock.now() + MINUTE;
    await list.revoke('a2', { expiresAt, userId: 'frank' });
    let flags: boolean[] = [];
    const trips = await ctx.roundTrips.measure(async () => {
      flags = await list.areRevoked([
        { jti: 'a1', userId: 'frank' },
        { jti: 'a2', userId: 'frank' },
        { jti: 'a3', userId: 'frank' },
      ]);
    });
    assert.equal(flags, [false, true, false]);
    assert.is(trips, 1);
  });

  test('sends one script per hash tag, concurrently, across users and bare ids', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const expiresAt = ctx.clock.now() + MINUTE;
    await list.revoke('x', { expiresAt, userId: 'u1' });
    await list.revoke('y', { expiresAt, userId: 'u2' });
    await list.revoke('z', { expiresAt });
    const queries = [
      { jti: 'x', userId: 'u1' },
      { jti: 'y', userId: 'u1' },
      { jti: 'y', userId: 'u2' },
      { jti: 'z' },
      { jti: 'w' },
      { jti: 'x', userId: 'u2' },
    ];
    let flags: boolean[] = [];
    const trips = await ctx.roundTrips.measure(async () => {
      flags = await list.areRevoked(queries);
    });
    assert.equal(flags, [true, false, true, true, false, false]);
    assert.is(trips, 4, 'u1, u2, z and w each have their own tag');
  });

  test('handles an empty batch without Redis and refuses oversized or malformed ones', async (ctx) => {
    const list = new RevocationList({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      maxBatchSize: 3,
    });
    ctx.roundTrips.reset();
    assert.equal(await list.areRevoked([]), []);
    for (const bad of [
      [{ jti: 'a' }, { jti: 'b' }, { jti: 'c' }, { jti: 'd' }],
      [{ jti: 'a b' }],
      [null],
      'x',
    ]) {
      await list.areRevoked(bad as never).then(
        () => assert.unreachable('accepted a bad batch'),
        (e: unknown) => assert.instance(e, InvalidInputError),
      );
    }
    assert.is(ctx.roundTrips.count, 0);
  });

  test('splits a large batch of one user into chunks and keeps the order', async (ctx) => {
    const list = new RevocationList({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const expiresAt = ctx.clock.now() + MINUTE;
    await list.revoke('id-700', { expiresAt, userId: 'gina' });
    const queries = Array.from({ length: 1200 }, (_, i) => ({ jti: `id-${i}`, userId: 'gina' }));
    const flags = await list.areRevoked(queries);
    assert.is(flags.length, 1200);
    assert.equal(
      flags.flatMap((flag, i) => (flag ? [i] : [])),
      [700],
    );
  });
});
