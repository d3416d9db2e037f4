import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  WebAuthnChallenges,
  type WebAuthnChallengesOptions,
} from '../src/index.js';
import { rejects } from './helpers/assertions.js';

const MINUTE = 60_000;
const SESSION = 'sid-AAAAAAAAAAAAAAAAAAAA';
const ATTEMPT = WebAuthnChallenges.createAttemptId();

function challengesFor(ctx: BackendContext, extra: Partial<WebAuthnChallengesOptions> = {}) {
  return new WebAuthnChallenges({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, ...extra });
}

const options = suite('WebAuthnChallenges options');
const fakeRedis = { defineCommand() {} } as unknown as WebAuthnChallengesOptions['redis'];

options('rejects a broken ttlMs with InvalidOptionError naming it', () => {
  for (const ttlMs of [0, -1, 1.5, 2 * 60 * MINUTE]) {
    assert.throws(
      () => new WebAuthnChallenges({ redis: fakeRedis, ttlMs }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('ttlMs'),
    );
  }
});

options('attempt ids are 256-bit base64url and distinct', () => {
  const ids = new Set(Array.from({ length: 100 }, () => WebAuthnChallenges.createAttemptId()));
  assert.is(ids.size, 100);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{43}$/);
});

options.run();

backendSuite('WebAuthnChallenges.issue', (test) => {
  test('issues a 32-byte challenge for 5 minutes in one round trip, stored only as a digest', async (ctx) => {
    const challenges = challengesFor(ctx);
    let issued: Awaited<ReturnType<WebAuthnChallenges['issue']>> | undefined;
    const trips = await ctx.roundTrips.measure(async () => {
      issued = await challenges.issue({ purpose: 'registration', owner: SESSION });
    });
    assert.is(trips, 1);
    assert.ok(issued);
    if (issued === undefined) return;
    assert.is(Buffer.from(issued.challenge, 'base64url').length, 32);
    assert.is(issued.expiresAt, ctx.clock.now() + 5 * MINUTE);
    const dump = await ctx.dump();
    assert.is(dump.length, 1);
    for (const { key, content } of dump) {
      assert.not.ok(content.includes(issued.challenge));
      assert.not.ok(key.includes(SESSION));
      assert.match(key, /:wc:\{[A-Za-z0-9_-]{43}\}$/);
    }
  });

  test('refuses malformed purposes and owners without a Redis call', async (ctx) => {
    const challenges = challengesFor(ctx);
    const bad = [
      { purpose: 'login', owner: SESSION },
      { purpose: 'registration', owner: '' },
      { purpose: 'registration', owner: 'x'.repeat(257) },
      { purpose: 'registration', owner: 'with space' },
      { purpose: 'registration', owner: 'é' },
      { purpose: 'registration', owner: 42 },
      null,
    ];
    ctx.roundTrips.reset();
    for (const binding of bad) {
      await rejects(
        challenges.issue(binding as never),
        (e) => e instanceof InvalidInputError,
        `InvalidInputError for ${JSON.stringify(binding)}`,
      );
    }
    assert.is(ctx.roundTrips.count, 0);
  });
});

backendSuite('WebAuthnChallenges.consume', (test) => {
  test('consumes a live challenge once, in one round trip', async (ctx) => {
    const challenges = challengesFor(ctx);
    const { challenge } = await challenges.issue({ purpose: 'registration', owner: SESSION });
    const presented = { purpose: 'registration', owner: SESSION, challenge } as const;
    let result: unknown;
    const trips = await ctx.roundTrips.measure(async () => {
      result = await challenges.consume(presented);
    });
    assert.is(trips, 1);
    assert.equal(result, { ok: true });
    assert.equal(await challenges.consume(presented), { ok: false, reason: 'unknown' });
    assert.equal(await ctx.keys(), []);
  });

  test('20 parallel consumptions of one challenge: exactly one succeeds', async (ctx) => {
    const challenges = challengesFor(ctx);
    const { challenge } = await challenges.issue({ purpose: 'authentication', owner: ATTEMPT });
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        challenges.consume({ purpose: 'authentication', owner: ATTEMPT, challenge }),
      ),
    );
    assert.is(results.filter((r) => r.ok).length, 1);
    assert.ok(results.every((r) => r.ok || r.reason === 'unknown'));
  });

  test('is bound to its owner and purpose', async (ctx) => {
    const challenges = challengesFor(ctx);
    const { challenge } = await challenges.issue({ purpose: 'registration', owner: SESSION });
    assert.equal(await challenges.consume({ purpose: 'registration', owner: 'other-session', challenge }), {
      ok: false,
      reason: 'unknown',
    });
    assert.equal(await challenges.consume({ purpose: 'authentication', owner: SESSION, challenge }), {
      ok: false,
      reason: 'unknown',
    });
    assert.equal(await challenges.consume({ purpose: 'registration', owner: SESSION, challenge }), {
      ok: true,
    });
  });

  test('a wrong or malformed challenge spends the outstanding one', async (ctx) => {
    const challenges = challengesFor(ctx);
    for (const wrong of [WebAuthnChallenges.createAttemptId(), 'short', 'x'.repeat(10_000), '']) {
      const { challenge } = await challenges.issue({ purpose: 'authentication', owner: ATTEMPT });
      assert.equal(
        await challenges.consume({ purpose: 'authentication', owner: ATTEMPT, challenge: wrong }),
        { ok: false, reason: 'mismatch' },
      );
      assert.equal(await challenges.consume({ purpose: 'authentication', owner: ATTEMPT, challenge }), {
        ok: false,
        reason: 'unknown',
      });
    }
    await rejects(
      challenges.consume({ purpose: 'authentication', owner: ATTEMPT, challenge: 5 as never }),
      (e) => e instanceof InvalidInputError,
      'InvalidInputError for a non-string challenge',
    );
  });

  test('a new challenge replaces the outstanding one', async (ctx) => {
    const challenges = challengesFor(ctx);
    const first = await challenges.issue({ purpose: 'registration', owner: SESSION });
    const second = await challenges.issue({ purpose: 'registration', owner: SESSION });
    assert.equal(
      await challenges.consume({ purpose: 'registration', owner: SESSION, challenge: first.challenge }),
      { ok: false, reason: 'mismatch' },
    );
    assert.equal(
      await challenges.consume({ purpose: 'registration', owner: SESSION, challenge: second.challenge }),
      { ok: false, reason: 'unknown' },
    );
  });

  test('expires after its lifetime by the clock, and leaves no key', async (ctx) => {
    const challenges = challengesFor(ctx, { ttlMs: MINUTE });
    const a = await challenges.issue({ purpose: 'registration', owner: SESSION });
    const b = await challenges.issue({ purpose: 'authentication', owner: ATTEMPT });
    assert.equal(await ctx.keysWithoutTtl(), []);
    ctx.clock.advance(MINUTE - 1);
    assert.equal(
      await challenges.consume({ purpose: 'registration', owner: SESSION, challenge: a.challenge }),
      { ok: true },
    );
    ctx.clock.advance(1);
    // The clock decides: 'expired' while the key lingers (real Redis here), 'unknown' once its TTL
    // (the lifetime) collected it (the fake follows the test clock).
    const late = await challenges.consume({
      purpose: 'authentication',
      owner: ATTEMPT,
      challenge: b.challenge,
    });
    assert.not.ok(late.ok);
    assert.ok(!late.ok && (late.reason === 'expired' || late.reason === 'unknown'));
    if (ctx.kind !== 'fake') assert.equal(late, { ok: false, reason: 'expired' });
    await challenges.issue({ purpose: 'authentication', owner: ATTEMPT });
    await ctx.advance(MINUTE);
    assert.equal(await ctx.keys(), []);
  });
});
