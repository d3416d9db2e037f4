import { type BackendContext, backendSuite, realRedisSuite } from '@latchkey/testing/backends';
import type { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  OneTimeCodes,
  type OneTimeCodesOptions,
  type SecurityEvent,
  ServerSecret,
  StoreUnavailableError,
} from '../src/index.js';
import { generateCode } from '../src/one-time-codes.js';
import { eventually } from './helpers/assertions.js';
import { startOwnRedis } from './helpers/own-redis.js';

const secret = ServerSecret.generate();
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const EMAIL = 'verify-email';
const RESET = 'password-reset';

type Extra = Partial<Omit<OneTimeCodesOptions, 'redis' | 'clock' | 'prefix'>>;

function codesFor(ctx: BackendContext, extra: Extra = {}): OneTimeCodes {
  return new OneTimeCodes({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret, ...extra });
}

/** A well-formed code that differs from `code` (same length, digits only). */
function wrong(code: string, n = 1): string {
  const last = Number(code.at(-1));
  return code.slice(0, -1) + String((last + n) % 10);
}

async function issued(codes: OneTimeCodes, subject: string, purpose: string): Promise<string> {
  const result = await codes.issue({ subject, purpose });
  if (!result.ok) throw new Error(`expected a code, got ${result.reason}`);
  return result.code;
}

async function issuedFrom(codes: OneTimeCodes, subject: string, ip: string): Promise<string> {
  const result = await codes.issue({ subject, purpose: RESET, ip });
  if (!result.ok) throw new Error(`expected a code, got ${result.reason}`);
  return result.code;
}

// ---------------------------------------------------------------------------------------------------
// Unit tier: options and the generator (no Redis).

const options = suite('OneTimeCodes options');
const fakeRedis = { defineCommand() {} } as unknown as OneTimeCodesOptions['redis'];

options('rejects each broken option with InvalidOptionError naming it', () => {
  const cases: Array<[Extra, string]> = [
    [{ length: 0 }, 'length'],
    [{ length: 2.5 }, 'length'],
    [{ length: 129 }, 'length'],
    [{ length: 3 }, 'length and alphabet'],
    [{ alphabet: 'a' }, 'alphabet'],
    [{ alphabet: 'aab' }, 'alphabet'],
    [{ alphabet: '01 2' }, 'alphabet'],
    [{ ttlMs: 0 }, 'ttlMs'],
    [{ ttlMs: 400 * DAY }, 'ttlMs'],
    [{ maxAttempts: 0 }, 'maxAttempts'],
    [{ failureBudget: { max: 0, windowMs: DAY } }, 'failureBudget.max'],
    [{ failureBudget: { max: 10, windowMs: -1 } }, 'failureBudget.windowMs'],
    [{ failureBudget: 10 as unknown as { max: number; windowMs: number } }, 'failureBudget'],
    [{ resendCooldownMs: -1 }, 'resendCooldownMs'],
    [
      {
        issueLimits: [
          { max: 5, windowMs: HOUR },
          { max: 0, windowMs: DAY },
        ],
      },
      'issueLimits[1].max',
    ],
    [{ issueLimits: {} as unknown as [] }, 'issueLimits'],
    [{ failureBudgetAcrossIps: { max: 0, windowMs: DAY } }, 'failureBudgetAcrossIps.max'],
    [{ issueLimitsAcrossIps: [{ max: 30, windowMs: 10 }] }, 'issueLimitsAcrossIps[0].windowMs'],
    [{ issueLimitsAcrossIps: 'x' as unknown as [] }, 'issueLimitsAcrossIps'],
    [{ normalizeSubject: 'yes' as unknown as boolean }, 'normalizeSubject'],
  ];
  for (const [extra, name] of cases) {
    assert.throws(
      () => new OneTimeCodes({ redis: fakeRedis, secret, ...extra }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith(name),
      JSON.stringify(extra),
    );
  }
  assert.throws(
    () => new OneTimeCodes({ redis: fakeRedis, secret: 'x'.repeat(64) as unknown as ServerSecret }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('secret'),
  );
});

options('accepts no issue caps, no cooldown and a long magic-link alphabet', () => {
  new OneTimeCodes({ redis: fakeRedis, secret, issueLimits: [], resendCooldownMs: 0 });
  new OneTimeCodes({ redis: fakeRedis, secret, issueLimits: [], issueLimitsAcrossIps: [] });
  new OneTimeCodes({
    redis: fakeRedis,
    secret,
    length: 43,
    alphabet: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
  });
});

options.run();

const generator = suite('OneTimeCodes code generator');

/** Pearson's chi-square statistic of `counts` against a uniform distribution. */
function chiSquare(counts: Map<string, number>, symbols: number, total: number): number {
  const expected = total / symbols;
  let sum = 0;
  for (const n of counts.values()) sum += (n - expected) ** 2 / expected;
  // Symbols never drawn contribute `expected` each.
  return sum + (symbols - counts.size) * expected;
}

generator('draws digits uniformly, at every position (chi-square, p < 1e-6 to fail)', () => {
  const digits = Array.from('0123456789');
  const overall = new Map<string, number>();
  const perPosition = Array.from({ length: 6 }, () => new Map<string, number>());
  const n = 10_000;
  for (let i = 0; i < n; i++) {
    const code = generateCode(digits, 6);
    assert.match(code, /^\d{6}$/);
    Array.from(code).forEach((c, p) => {
      overall.set(c, (overall.get(c) ?? 0) + 1);
      perPosition[p]?.set(c, (perPosition[p]?.get(c) ?? 0) + 1);
    });
  }
  // Critical values of chi-square with 9 degrees of freedom at p = 1e-6: ≈ 45.9.
  assert.ok(chiSquare(overall, 10, 6 * n) < 46, 'overall distribution');
  for (const counts of perPosition) assert.ok(chiSquare(counts, 10, n) < 46, 'per position');
});

generator('has no modulo bias over an alphabet whose size does not divide 256', () => {
  // A byte-modulo generator would favour the first 16 of these 30 symbols by 12.5 % (chi-square ≈ 200).
  const alphabet = Array.from('ABCDEFGHJKMNPQRSTVWXYZ23456789');
  const counts = new Map<string, number>();
  const n = 3000;
  for (let i = 0; i < n; i++) {
    for (const c of generateCode(alphabet, 20)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  assert.equal([...counts.keys()].sort(), [...alphabet].sort());
  // 29 degrees of freedom at p = 1e-6: ≈ 81.
  assert.ok(chiSquare(counts, 30, 20 * n) < 81);
});

generator.run();

// ---------------------------------------------------------------------------------------------------
// Behaviour tier: the same suites on the fake, a real redis-server and a real 3-master cluster.

backendSuite('OneTimeCodes.issue', (test) => {
  test('issues a 6-digit code valid for 10 minutes, in one round trip', async (ctx) => {
    const codes = codesFor(ctx);
    let result: Awaited<ReturnType<OneTimeCodes['issue']>> | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        result = await codes.issue({ subject: 'alice@example.com', purpose: EMAIL });
      }),
      1,
    );
    assert.ok(result?.ok);
    if (!result?.ok) return;
    assert.match(result.code, /^[0-9]{6}$/);
    assert.is(result.expiresAt, ctx.clock.now() + 10 * MINUTE);
  });

  test('the README quick start works as written', async ({ redis, clock, prefix }) => {
    const outbox: string[] = [];
    const mailer = { send: async (_to: string, text: string) => void outbox.push(text) };
    const codes = new OneTimeCodes({ redis, secret, clock, prefix });

    const sent = await codes.issue({ subject: 'alice@example.com', purpose: 'password-reset' });
    if (sent.ok) await mailer.send('alice@example.com', `Your code: ${sent.code}`);
    else assert.unreachable(`not sent (${sent.reason})`);

    const input = outbox[0]?.slice('Your code: '.length) ?? '';
    const checked = await codes.verify({
      subject: 'alice@example.com',
      purpose: 'password-reset',
      code: input,
    });
    assert.ok(checked.ok);
  });

  test('draws codes of the configured length from the configured alphabet', async (ctx) => {
    const alphabet = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';
    const codes = codesFor(ctx, { alphabet, length: 10 });
    for (let i = 0; i < 20; i++) {
      const code = await issued(codes, `user-${i}`, EMAIL);
      assert.is(code.length, 10);
      for (const c of code) assert.ok(alphabet.includes(c), c);
    }
  });

  test('a new code replaces the previous one', async (ctx) => {
    const codes = codesFor(ctx);
    const first = await issued(codes, 'alice', EMAIL);
    await ctx.advance(MINUTE);
    let second = await issued(codes, 'alice', EMAIL);
    // Both may be equal by chance (1 in 10^6); draw until they differ.
    while (second === first) {
      await ctx.advance(MINUTE);
      second = await issued(codes, 'alice', EMAIL);
    }
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: first }), {
      ok: false,
      reason: 'invalid',
    });
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: second }), { ok: true });
  });

  test('refuses inside the 60 s resend cooldown and says how long to wait', async (ctx) => {
    const codes = codesFor(ctx);
    await issued(codes, 'alice', EMAIL);
    await ctx.advance(10_000);
    assert.equal(await codes.issue({ subject: 'alice', purpose: EMAIL }), {
      ok: false,
      reason: 'cooldown',
      retryAfterMs: 50_000,
    });
    await ctx.advance(49_999);
    assert.equal(await codes.issue({ subject: 'alice', purpose: EMAIL }), {
      ok: false,
      reason: 'cooldown',
      retryAfterMs: 1,
    });
    await ctx.advance(1);
    assert.ok((await codes.issue({ subject: 'alice', purpose: EMAIL })).ok);
    // The cooldown is per subject and purpose.
    assert.ok((await codes.issue({ subject: 'alice', purpose: RESET })).ok);
    assert.ok((await codes.issue({ subject: 'bob', purpose: EMAIL })).ok);
  });

  test('the issue cap holds: 5 per hour, 10 per 24 hours', async (ctx) => {
    const codes = codesFor(ctx);
    const start = ctx.clock.now();
    for (let i = 0; i < 5; i++) {
      assert.ok((await codes.issue({ subject: 'alice', purpose: RESET })).ok, `code ${i + 1}`);
      await ctx.advance(MINUTE);
    }
    // Five codes sent at start + 0..4 min: the first leaves the hour window at start + 60 min.
    assert.equal(await codes.issue({ subject: 'alice', purpose: RESET }), {
      ok: false,
      reason: 'issue_limit',
      retryAfterMs: start + HOUR - ctx.clock.now(),
    });
    await ctx.advance(start + HOUR - ctx.clock.now());
    for (let i = 5; i < 10; i++) {
      assert.ok((await codes.issue({ subject: 'alice', purpose: RESET })).ok, `code ${i + 1}`);
      await ctx.advance(MINUTE);
    }
    await ctx.advance(2 * HOUR);
    // Ten in the day: the first leaves the 24-hour window at start + 24 h.
    assert.equal(await codes.issue({ subject: 'alice', purpose: RESET }), {
      ok: false,
      reason: 'issue_limit',
      retryAfterMs: start + DAY - ctx.clock.now(),
    });
    await ctx.advance(start + DAY - ctx.clock.now());
    assert.ok((await codes.issue({ subject: 'alice', purpose: RESET })).ok);
  });

  test('20 parallel issue() calls send exactly one code', async (ctx) => {
    const codes = codesFor(ctx);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => codes.issue({ subject: 'alice', purpose: EMAIL })),
    );
    assert.is(results.filter((r) => r.ok).length, 1);
    assert.ok(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'cooldown'));
  });

  test('sends nothing while the failure budget is spent, until it recovers', async (ctx) => {
    const codes = codesFor(ctx, { maxAttempts: 10 });
    const code = await issued(codes, 'alice', RESET);
    const firstFailureAt = ctx.clock.now();
    for (let i = 0; i < 10; i++) {
      await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(code) });
      await ctx.advance(1000);
    }
    await ctx.advance(HOUR);
    assert.equal(await codes.issue({ subject: 'alice', purpose: RESET }), {
      ok: false,
      reason: 'budget_exhausted',
      retryAfterMs: firstFailureAt + DAY - ctx.clock.now(),
    });
    // Other purposes and subjects are unaffected.
    assert.ok((await codes.issue({ subject: 'alice', purpose: EMAIL })).ok);
    assert.ok((await codes.issue({ subject: 'bob', purpose: RESET })).ok);
    await ctx.advance(firstFailureAt + DAY - ctx.clock.now());
    const fresh = await issued(codes, 'alice', RESET);
    assert.equal(await codes.verify({ subject: 'alice', purpose: RESET, code: fresh }), { ok: true });
  });

  test('normalizes email-like subjects by default, and can keep them exact', async (ctx) => {
    const codes = codesFor(ctx);
    const code = await issued(codes, '  Alice@Example.COM ', EMAIL);
    assert.equal(await codes.verify({ subject: 'alice@example.com', purpose: EMAIL, code }), { ok: true });

    const exact = codesFor(ctx, { normalizeSubject: false });
    const upper = await issued(exact, 'User-A', EMAIL);
    assert.ok((await exact.issue({ subject: 'user-a', purpose: EMAIL })).ok, 'a distinct subject');
    assert.equal(await exact.verify({ subject: 'User-A', purpose: EMAIL, code: upper }), { ok: true });
  });

  test('rejects a malformed subject or purpose with InvalidInputError before any round trip', async (ctx) => {
    const codes = codesFor(ctx);
    const bad: Array<[unknown, unknown]> = [
      ['', EMAIL],
      ['   ', EMAIL],
      ['x'.repeat(1025), EMAIL],
      [42, EMAIL],
      [undefined, EMAIL],
      ['alice', ''],
      ['alice', 'Verify-Email'],
      ['alice', 'reset password'],
      ['alice', 'x'.repeat(33)],
      ['alice', '{tag}'],
      ['alice', undefined],
    ];
    ctx.roundTrips.reset();
    for (const [subject, purpose] of bad) {
      await codes.issue({ subject, purpose } as { subject: string; purpose: string }).then(
        () => assert.unreachable(`issued for ${String(subject)} / ${String(purpose)}`),
        (e: unknown) => assert.instance(e, InvalidInputError),
      );
    }
    await codes.issue(null as unknown as { subject: string; purpose: string }).then(
      () => assert.unreachable('issued for null'),
      (e: unknown) => assert.instance(e, InvalidInputError),
    );
    assert.is(ctx.roundTrips.count, 0);
  });
});

backendSuite('OneTimeCodes.verify', (test) => {
  test('accepts the right code once, in one round trip; a reused code fails', async (ctx) => {
    const codes = codesFor(ctx);
    const code = await issued(codes, 'alice', EMAIL);
    let first: unknown;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        first = await codes.verify({ subject: 'alice', purpose: EMAIL, code });
      }),
      1,
    );
    assert.equal(first, { ok: true });
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code }), {
      ok: false,
      reason: 'no_code',
    });
  });

  test('after 5 wrong attempts the right code fails', async (ctx) => {
    const events: SecurityEvent[] = [];
    const codes = codesFor(ctx, { onEvent: (e) => events.push(e) });
    const code = await issued(codes, 'alice', EMAIL);
    for (let i = 1; i <= 4; i++) {
      assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(code, i) }), {
        ok: false,
        reason: 'invalid',
      });
    }
    assert.is(events.length, 0);
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(code, 5) }), {
      ok: false,
      reason: 'exhausted',
    });
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code }), {
      ok: false,
      reason: 'exhausted',
    });
    assert.is(events.length, 1);
    const event = events[0];
    assert.is(event?.type, 'code.exhausted');
    if (event?.type !== 'code.exhausted') return;
    assert.is(event.scope, 'code');
    assert.is(event.purpose, EMAIL);
    assert.match(event.subjectDigest, /^[A-Za-z0-9_-]{43}$/);
    assert.is(event.at, ctx.clock.now());
    assert.not.ok(JSON.stringify(event).includes('alice'));
  });

  test('after 10 failures over two codes no third code is sent, and the right code fails', async (ctx) => {
    const events: SecurityEvent[] = [];
    const codes = codesFor(ctx, { onEvent: (e) => events.push(e) });
    const first = await issued(codes, 'alice', RESET);
    for (let i = 1; i <= 5; i++)
      await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(first, i) });
    await ctx.advance(MINUTE);
    const second = await issued(codes, 'alice', RESET);
    for (let i = 1; i <= 4; i++) {
      assert.equal(await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(second, i) }), {
        ok: false,
        reason: 'invalid',
      });
    }
    const tenth = await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(second, 5) });
    assert.is(tenth.ok, false);
    assert.is(!tenth.ok && tenth.reason, 'budget_exhausted');
    const right = await codes.verify({ subject: 'alice', purpose: RESET, code: second });
    assert.is(!right.ok && right.reason, 'budget_exhausted');
    await ctx.advance(MINUTE);
    const third = await codes.issue({ subject: 'alice', purpose: RESET });
    assert.is(!third.ok && third.reason, 'budget_exhausted');
    assert.equal(
      events.map((e) => e.type === 'code.exhausted' && e.scope),
      ['code', 'code', 'budget'],
    );
  });

  test("a resent third code's right answer fails once 10 failures are spent across codes", async (ctx) => {
    const codes = codesFor(ctx);
    const first = await issued(codes, 'alice', RESET);
    for (let i = 1; i <= 5; i++)
      await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(first, i) });
    await ctx.advance(MINUTE);
    const second = await issued(codes, 'alice', RESET);
    for (let i = 1; i <= 4; i++)
      await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(second, i) });
    await ctx.advance(MINUTE);
    // Nine failures so far: a resend is allowed, but it buys no fresh budget.
    const third = await issued(codes, 'alice', RESET);
    const tenth = await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(third) });
    assert.is(!tenth.ok && tenth.reason, 'budget_exhausted');
    const right = await codes.verify({ subject: 'alice', purpose: RESET, code: third });
    assert.is(right.ok, false);
    assert.is(!right.ok && right.reason, 'budget_exhausted');
    if (!right.ok && right.reason === 'budget_exhausted') {
      // The first failure leaves the 24-hour window first (it happened two minutes ago).
      assert.is(right.retryAfterMs, DAY - 2 * MINUTE);
    }
    // The budget is per subject and purpose.
    const other = await issued(codes, 'alice', EMAIL);
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: other }), { ok: true });
  });

  test('50 parallel verify() calls of the right code: exactly one is valid', async (ctx) => {
    const codes = codesFor(ctx);
    const code = await issued(codes, 'alice', EMAIL);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => codes.verify({ subject: 'alice', purpose: EMAIL, code })),
    );
    assert.is(results.filter((r) => r.ok).length, 1);
  });

  test('30 parallel wrong guesses get no more attempts than sequential ones', async (ctx) => {
    const codes = codesFor(ctx);
    const code = await issued(codes, 'alice', RESET);
    const guesses = Array.from({ length: 30 }, (_, i) => wrong(code, (i % 9) + 1));
    const results = await Promise.all(
      guesses.map((g) => codes.verify({ subject: 'alice', purpose: RESET, code: g })),
    );
    const reasons = results.map((r) => (r.ok ? 'ok' : r.reason));
    const count = (reason: string) => reasons.filter((r) => r === reason).length;
    // 4 compared and refused, the 5th burns the code, failures 6 to 9 meet a burned code, the 10th
    // spends the budget, and the remaining 20 are refused without a comparison.
    assert.equal(
      { invalid: count('invalid'), exhausted: count('exhausted'), budget: count('budget_exhausted') },
      { invalid: 4, exhausted: 5, budget: 21 },
    );
    const right = await codes.verify({ subject: 'alice', purpose: RESET, code });
    assert.is(!right.ok && right.reason, 'budget_exhausted');
  });

  test('a code expires after 10 minutes of the test clock', async (ctx) => {
    const codes = codesFor(ctx);
    const early = await issued(codes, 'alice', EMAIL);
    const late = await issued(codes, 'bob', EMAIL);
    await ctx.advance(10 * MINUTE - 1);
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: early }), { ok: true });
    await ctx.advance(1);
    assert.equal(await codes.verify({ subject: 'bob', purpose: EMAIL, code: late }), {
      ok: false,
      reason: 'expired',
    });
    assert.equal(await codes.verify({ subject: 'bob', purpose: EMAIL, code: late }), {
      ok: false,
      reason: 'no_code',
    });
  });

  test('purposes and subjects never cross: a reset code cannot verify an email', async (ctx) => {
    const codes = codesFor(ctx);
    const reset = await issued(codes, 'alice', RESET);
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: reset }), {
      ok: false,
      reason: 'no_code',
    });
    const email = await issued(codes, 'alice', EMAIL);
    if (email !== reset) {
      assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: reset }), {
        ok: false,
        reason: 'invalid',
      });
    }
    assert.equal(await codes.verify({ subject: 'bob', purpose: RESET, code: reset }), {
      ok: false,
      reason: 'no_code',
    });
    assert.equal(await codes.verify({ subject: 'alice', purpose: RESET, code: reset }), { ok: true });
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: email }), { ok: true });
  });

  test('garbage codes are invalid, never throw, and each counts as an attempt', async (ctx) => {
    const codes = codesFor(ctx, { maxAttempts: 50, failureBudget: { max: 50, windowMs: DAY } });
    const code = await issued(codes, 'alice', EMAIL);
    const garbage = [
      '',
      'x'.repeat(10 * 1024),
      '9'.repeat(10 * 1024),
      'abcdef',
      `${code} `,
      ` ${code}`,
      code.slice(0, 5),
      `${code}0`,
      '１２３４５６', // full-width digits
      '٣٤٥٦٧٨', // Arabic-Indic digits
      '💥💥💥💥💥💥',
      '💥💥💥',
      '\u0000'.repeat(6),
      '12345\u0000',
      '{a}:b*',
      '-1e308',
    ];
    for (const input of garbage) {
      assert.equal(
        await codes.verify({ subject: 'alice', purpose: EMAIL, code: input }),
        { ok: false, reason: 'invalid' },
        JSON.stringify(input.slice(0, 20)),
      );
    }
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code }), { ok: true });

    // With the default 5 attempts, five garbage inputs burn the code.
    const strict = codesFor(ctx);
    const next = await issued(strict, 'bob', EMAIL);
    for (const input of garbage.slice(0, 5))
      await strict.verify({ subject: 'bob', purpose: EMAIL, code: input });
    assert.equal(await strict.verify({ subject: 'bob', purpose: EMAIL, code: next }), {
      ok: false,
      reason: 'exhausted',
    });
  });

  test('a code that is not a string is InvalidInputError and counts nothing', async (ctx) => {
    const codes = codesFor(ctx, { maxAttempts: 1 });
    const code = await issued(codes, 'alice', EMAIL);
    ctx.roundTrips.reset();
    for (const input of [undefined, null, 123456, ['123456'], { code }]) {
      await codes.verify({ subject: 'alice', purpose: EMAIL, code: input as unknown as string }).then(
        () => assert.unreachable(String(input)),
        (e: unknown) => assert.instance(e, InvalidInputError),
      );
    }
    assert.is(ctx.roundTrips.count, 0);
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code }), { ok: true });
  });

  test('a valid code clears the failures counted before it', async (ctx) => {
    const codes = codesFor(ctx, { maxAttempts: 20 });
    const first = await issued(codes, 'alice', EMAIL);
    for (let i = 0; i < 9; i++) await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(first) });
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: first }), { ok: true });
    await ctx.advance(MINUTE);
    const second = await issued(codes, 'alice', EMAIL);
    for (let i = 0; i < 9; i++) {
      assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(second) }), {
        ok: false,
        reason: 'invalid',
      });
    }
    const tenth = await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(second) });
    assert.is(!tenth.ok && tenth.reason, 'budget_exhausted');
  });

  test('an absent code counts against the budget too', async (ctx) => {
    const codes = codesFor(ctx);
    for (let i = 0; i < 9; i++) {
      assert.equal(await codes.verify({ subject: 'carol', purpose: RESET, code: '000000' }), {
        ok: false,
        reason: 'no_code',
      });
    }
    const tenth = await codes.verify({ subject: 'carol', purpose: RESET, code: '000000' });
    assert.is(!tenth.ok && tenth.reason, 'budget_exhausted');
    const issue = await codes.issue({ subject: 'carol', purpose: RESET });
    assert.is(!issue.ok && issue.reason, 'budget_exhausted');
  });

  test('a throwing event listener does not break verify()', async (ctx) => {
    const codes = codesFor(ctx, {
      maxAttempts: 1,
      onEvent: () => {
        throw new Error('listener failed');
      },
    });
    const code = await issued(codes, 'alice', EMAIL);
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(code) }), {
      ok: false,
      reason: 'exhausted',
    });
  });
});

backendSuite('OneTimeCodes.revoke', (test) => {
  test('deletes the code in one round trip; the failure budget stays', async (ctx) => {
    const codes = codesFor(ctx, { maxAttempts: 10 });
    const code = await issued(codes, 'alice', RESET);
    for (let i = 0; i < 8; i++) await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(code) });
    assert.is(await ctx.roundTrips.measure(() => codes.revoke({ subject: 'alice', purpose: RESET })), 1);
    assert.equal(await codes.verify({ subject: 'alice', purpose: RESET, code }), {
      ok: false,
      reason: 'no_code',
    });
    // Nine failures survive the revocation: the next code has one attempt left in the budget.
    await ctx.advance(MINUTE);
    const next = await issued(codes, 'alice', RESET);
    const tenth = await codes.verify({ subject: 'alice', purpose: RESET, code: wrong(next) });
    assert.is(!tenth.ok && tenth.reason, 'budget_exhausted');
    // Revoking nothing is not an error.
    await codes.revoke({ subject: 'nobody', purpose: RESET });
  });
});

backendSuite('OneTimeCodes per client IP bucket', (test) => {
  const STRANGER = '198.51.100.7';
  const OWNER = '203.0.113.20';

  test("a stranger's 10 wrong codes from one address spend only that address's budget", async (ctx) => {
    const codes = codesFor(ctx);
    const first = await codes.issue({ subject: 'alice@example.com', purpose: RESET, ip: OWNER });
    assert.ok(first.ok);
    for (let i = 0; i < 10; i++) {
      const checked = await codes.verify({
        subject: 'alice@example.com',
        purpose: RESET,
        code: `x${i}`,
        ip: STRANGER,
      });
      assert.is(checked.ok, false);
    }
    // The stranger's bucket is spent (the same address with its port is the same bucket) ...
    const spent = await codes.verify({
      subject: 'alice@example.com',
      purpose: RESET,
      code: '000000',
      ip: `${STRANGER}:4711`,
    });
    assert.is(spent.ok ? 'ok' : spent.reason, 'budget_exhausted');
    await ctx.advance(MINUTE);
    const refused = await codes.issue({ subject: 'alice@example.com', purpose: RESET, ip: STRANGER });
    assert.is(refused.ok ? 'ok' : refused.reason, 'budget_exhausted');
    // ... the owner, from another address, still gets a code (the old one burned by the guesses) and uses it.
    const sent = await codes.issue({ subject: 'alice@example.com', purpose: RESET, ip: OWNER });
    assert.ok(sent.ok, 'the owner is sent a code');
    if (!sent.ok) return;
    assert.equal(
      await codes.verify({ subject: 'alice@example.com', purpose: RESET, code: sent.code, ip: OWNER }),
      { ok: true },
    );
    // An IPv6 client counts per /64: another host of the stranger's /64 shares his bucket.
    const v6 = codesFor(ctx, { failureBudget: { max: 2, windowMs: DAY } });
    for (const ip of ['2001:db8:1:2::1', '[2001:db8:1:2::99]:443']) {
      await v6.verify({ subject: 'bob', purpose: RESET, code: 'nope', ip });
    }
    const v6Spent = await v6.verify({ subject: 'bob', purpose: RESET, code: 'nope', ip: '2001:db8:1:2::5' });
    assert.is(v6Spent.ok ? 'ok' : v6Spent.reason, 'budget_exhausted');
    const other64 = await v6.verify({ subject: 'bob', purpose: RESET, code: 'nope', ip: '2001:db8:1:3::5' });
    assert.is(other64.ok ? 'ok' : other64.reason, 'no_code');
  });

  test('the budget across IPs (100 per 24 h by default) stops every address, and says when it recovers', async (ctx) => {
    const codes = codesFor(ctx);
    const start = ctx.clock.now();
    // Ten addresses, ten failures each: every bucket and the subject's budget are spent.
    for (let a = 0; a < 10; a++) {
      for (let i = 0; i < 10; i++) {
        await codes.verify({ subject: 'carol', purpose: RESET, code: 'wrong', ip: `192.0.2.${a + 1}` });
      }
      await ctx.advance(MINUTE);
    }
    const fresh = await codes.issue({ subject: 'carol', purpose: RESET, ip: OWNER });
    assert.equal(fresh, {
      ok: false,
      reason: 'budget_exhausted',
      retryAfterMs: start + DAY - ctx.clock.now(),
    });
    const checked = await codes.verify({ subject: 'carol', purpose: RESET, code: '123456', ip: OWNER });
    assert.equal(checked, {
      ok: false,
      reason: 'budget_exhausted',
      retryAfterMs: start + DAY - ctx.clock.now(),
    });
    await ctx.advance(start + DAY - ctx.clock.now());
    assert.ok((await codes.issue({ subject: 'carol', purpose: RESET, ip: OWNER })).ok);
  });

  test('a spent subject budget deletes the code; a spent bucket budget leaves it for the owner', async (ctx) => {
    const codes = codesFor(ctx, {
      maxAttempts: 100,
      failureBudget: { max: 3, windowMs: HOUR },
      failureBudgetAcrossIps: { max: 5, windowMs: HOUR },
    });
    const code = await issuedFrom(codes, 'dave', OWNER);
    for (let i = 0; i < 3; i++)
      await codes.verify({ subject: 'dave', purpose: RESET, code: 'bad', ip: STRANGER });
    assert.equal(await codes.verify({ subject: 'dave', purpose: RESET, code, ip: OWNER }), { ok: true });
    const next = await (async () => {
      await ctx.advance(MINUTE);
      return issuedFrom(codes, 'dave', OWNER);
    })();
    for (let i = 0; i < 2; i++)
      await codes.verify({ subject: 'dave', purpose: RESET, code: 'bad', ip: '192.0.2.9' });
    // 3 earlier failures were cleared by the success; 2 + 3 more from a third address spend the subject's.
    for (let i = 0; i < 3; i++)
      await codes.verify({ subject: 'dave', purpose: RESET, code: 'bad', ip: '192.0.2.10' });
    const after = await codes.verify({ subject: 'dave', purpose: RESET, code: next, ip: OWNER });
    assert.is(after.ok ? 'ok' : after.reason, 'budget_exhausted');
  });

  test('issue caps count per IP bucket (5/h, 10/day): a stranger spends his own, the owner still gets a code', async (ctx) => {
    const codes = codesFor(ctx);
    const start = ctx.clock.now();
    for (let i = 0; i < 5; i++) {
      assert.ok((await codes.issue({ subject: 'erin', purpose: RESET, ip: STRANGER })).ok, `issue ${i + 1}`);
      await ctx.advance(MINUTE);
    }
    assert.equal(await codes.issue({ subject: 'erin', purpose: RESET, ip: STRANGER }), {
      ok: false,
      reason: 'issue_limit',
      retryAfterMs: start + HOUR - ctx.clock.now(),
    });
    assert.ok(
      (await codes.issue({ subject: 'erin', purpose: RESET, ip: OWNER })).ok,
      'the owner is sent a code',
    );
    // The resend cooldown stays per subject and purpose, across addresses.
    await ctx.advance(1000);
    const cooldown = await codes.issue({ subject: 'erin', purpose: RESET, ip: '192.0.2.50' });
    assert.is(cooldown.ok ? 'ok' : cooldown.reason, 'cooldown');
  });

  test('issue caps across IPs (30 per day) stop mail bombing from many addresses', async (ctx) => {
    const codes = codesFor(ctx);
    const start = ctx.clock.now();
    for (let a = 0; a < 6; a++) {
      for (let i = 0; i < 5; i++) {
        const sent = await codes.issue({ subject: 'frank', purpose: RESET, ip: `192.0.2.${a + 1}` });
        assert.ok(sent.ok, `address ${a + 1}, issue ${i + 1}`);
        await ctx.advance(MINUTE);
      }
    }
    assert.equal(await codes.issue({ subject: 'frank', purpose: RESET, ip: OWNER }), {
      ok: false,
      reason: 'issue_limit',
      retryAfterMs: start + DAY - ctx.clock.now(),
    });
    await ctx.advance(start + DAY - ctx.clock.now());
    assert.ok((await codes.issue({ subject: 'frank', purpose: RESET, ip: OWNER })).ok);
  });

  test('without an ip every call shares one bucket (the per-subject rules of before)', async (ctx) => {
    const codes = codesFor(ctx);
    await issued(codes, 'gina', '2fa');
    for (let i = 0; i < 10; i++) await codes.verify({ subject: 'gina', purpose: '2fa', code: 'bad' });
    await ctx.advance(MINUTE);
    const refused = await codes.issue({ subject: 'gina', purpose: '2fa' });
    assert.is(refused.ok ? 'ok' : refused.reason, 'budget_exhausted');
  });

  test('issue and verify with an ip are one round trip each; every key has a TTL; none remain after the windows', async (ctx) => {
    const codes = codesFor(ctx);
    let code = '';
    assert.is(
      await ctx.roundTrips.measure(async () => {
        code = await issuedFrom(codes, 'hank', OWNER);
      }),
      1,
    );
    assert.is(
      await ctx.roundTrips.measure(async () => {
        await codes.verify({ subject: 'hank', purpose: RESET, code: wrong(code), ip: STRANGER });
      }),
      1,
    );
    await codes.verify({ subject: 'hank', purpose: RESET, code: 'x', ip: '2001:db8::1' });
    await codes.issue({ subject: 'ivy', purpose: RESET, ip: STRANGER });
    assert.equal(await ctx.keysWithoutTtl(), []);
    assert.ok((await ctx.keys()).length >= 5);
    await ctx.advance(DAY);
    assert.equal(await ctx.keys(), []);
  });
});

backendSuite('OneTimeCodes storage', (test) => {
  test('a Redis dump holds no code and no subject in clear', async (ctx) => {
    const long = codesFor(ctx, { length: 16 });
    const short = codesFor(ctx, { normalizeSubject: false });
    const email = 'Alice.Liddell@Example.com';
    const userId = 'user-4711';
    const ip = '203.0.113.77';
    const sent = await long.issue({ subject: email, purpose: RESET, ip });
    const longCode = sent.ok ? sent.code : '';
    const shortCode = await issued(short, userId, EMAIL);
    await long.verify({ subject: email, purpose: RESET, code: wrong(longCode), ip });
    await short.verify({ subject: userId, purpose: EMAIL, code: wrong(shortCode) });
    const dump = await ctx.dump();
    // Per subject: the code, the across-IPs record and one IP bucket's record (`-` without an IP).
    assert.is(dump.length, 6);
    for (const { key, type, content } of dump) {
      assert.is(type, 'hash');
      for (const secretText of [
        longCode,
        email,
        email.toLowerCase(),
        userId,
        'alice',
        'Liddell',
        ip,
        '203.0',
      ]) {
        assert.not.ok(key.includes(secretText), `${key} holds ${secretText}`);
        assert.not.ok(content.includes(secretText), `${key} holds ${secretText}`);
      }
      // A 6-digit code may occur inside a timestamp by chance; no stored value is the code itself.
      const values = Object.values(JSON.parse(content) as Record<string, string>).flatMap((v) =>
        String(v).split(','),
      );
      assert.not.ok(values.includes(shortCode), `${key} holds the code`);
      assert.match(
        key,
        /:(c:\{[A-Za-z0-9_-]{43}\}:(password-reset|verify-email)|cb:\{[A-Za-z0-9_-]{43}\}:(password-reset|verify-email)(:([A-Za-z0-9_-]{43}|-))?)$/,
      );
    }
  });

  test('a stored digest copied to another purpose or subject verifies nothing', async (ctx) => {
    const codes = codesFor(ctx, { maxAttempts: 10 });
    const reset = await issued(codes, 'alice', RESET);
    await issued(codes, 'alice', EMAIL);
    await issued(codes, 'bob', RESET);
    const codeKeys = (await ctx.keys()).filter((key) => key.includes(':c:'));
    assert.is(codeKeys.length, 3);
    // Alice's tag is the one that holds both purposes.
    const aliceEmail = codeKeys.find((key) => key.endsWith(`:${EMAIL}`)) ?? '';
    const aliceTag = /\{[^}]+\}/.exec(aliceEmail)?.[0] ?? '';
    const aliceReset = codeKeys.find((key) => key.includes(aliceTag) && key.endsWith(`:${RESET}`)) ?? '';
    const bobReset = codeKeys.find((key) => !key.includes(aliceTag)) ?? '';
    assert.ok(aliceTag !== '' && aliceReset !== '' && bobReset !== '');
    const digest = await ctx.redis.hget(aliceReset, 'd');
    assert.type(digest, 'string');
    await ctx.redis.hset(aliceEmail, 'd', digest ?? '');
    await ctx.redis.hset(bobReset, 'd', digest ?? '');
    assert.equal(await codes.verify({ subject: 'alice', purpose: EMAIL, code: reset }), {
      ok: false,
      reason: 'invalid',
    });
    assert.equal(await codes.verify({ subject: 'bob', purpose: RESET, code: reset }), {
      ok: false,
      reason: 'invalid',
    });
    assert.equal(await codes.verify({ subject: 'alice', purpose: RESET, code: reset }), { ok: true });
  });

  test('every key has a TTL, and no key remains once every lifetime and window has passed', async (ctx) => {
    const codes = codesFor(ctx);
    const a = await issued(codes, 'alice', EMAIL);
    await issued(codes, 'alice', RESET);
    await issued(codes, 'bob', EMAIL);
    assert.equal(await ctx.keysWithoutTtl(), []);
    for (let i = 1; i <= 5; i++) await codes.verify({ subject: 'bob', purpose: EMAIL, code: String(i) });
    await codes.verify({ subject: 'alice', purpose: EMAIL, code: wrong(a) });
    await codes.verify({ subject: 'alice', purpose: EMAIL, code: a });
    await codes.verify({ subject: 'nobody', purpose: EMAIL, code: '123456' });
    assert.equal(await ctx.keysWithoutTtl(), []);
    assert.ok((await ctx.keys()).length > 0);
    await ctx.advance(20 * MINUTE);
    assert.equal(await ctx.keysWithoutTtl(), []);
    // The codes are gone; the budgets and issue histories last their 24-hour windows.
    assert.ok((await ctx.keys()).every((key) => key.includes(':cb:')));
    await ctx.advance(DAY);
    assert.equal(await ctx.keys(), []);
  });
});

// MONITOR is per node: one real server shows every command (the fake has no MONITOR to watch).
backendSuite(
  'OneTimeCodes storage, seen by MONITOR',
  (test) => {
    test('codes and subjects never reach Redis: MONITOR sees digests only', async (ctx) => {
      const client = ctx.connect() as Redis;
      const monitor = await client.monitor();
      const seen: string[] = [];
      const marker = `marker-${ctx.prefix}`;
      const done = new Promise<void>((resolve) => {
        monitor.on('monitor', (_time: string, args: string[]) => {
          seen.push(args.join(' '));
          if (args.includes(marker)) resolve();
        });
      });
      const subject = 'Monitor.Me@Example.com';
      let code = '';
      try {
        const codes = codesFor(ctx, { length: 16 });
        code = await issued(codes, subject, RESET);
        await codes.verify({ subject, purpose: RESET, code: wrong(code) });
        await codes.verify({ subject, purpose: RESET, code });
        await codes.revoke({ subject, purpose: RESET });
        await ctx.redis.echo(marker);
        await done;
      } finally {
        monitor.disconnect();
      }
      const ours = seen.filter((line) => line.includes(ctx.prefix));
      assert.ok(ours.length >= 4, 'the scripts were seen');
      for (const line of ours) {
        assert.not.ok(/monitor\.me/i.test(line), line);
        assert.not.ok(line.includes(code) || line.includes(wrong(code)), line);
      }
    });
  },
  { backends: ['redis'] },
);

// The fake has no connection to lose.
backendSuite(
  'OneTimeCodes on a closed connection',
  (test) => {
    test('a closed connection raises StoreUnavailableError', async (ctx) => {
      const client = ctx.connect();
      const codes = new OneTimeCodes({
        redis: client,
        clock: ctx.clock,
        prefix: ctx.prefix,
        secret,
        commandTimeoutMs: 500,
      });
      const code = await issued(codes, 'alice', EMAIL);
      client.disconnect();
      for (const call of [
        () => codes.verify({ subject: 'alice', purpose: EMAIL, code }),
        () => codes.issue({ subject: 'bob', purpose: EMAIL }),
        () => codes.revoke({ subject: 'alice', purpose: EMAIL }),
      ]) {
        await call().then(
          () => assert.unreachable('must not succeed on a closed connection'),
          (e: unknown) => assert.instance(e, StoreUnavailableError),
        );
      }
    });
  },
  { backends: ['redis', 'cluster'] },
);

// ---------------------------------------------------------------------------------------------------
// A real outage: the server process stops, then comes back.

// Without redis-server the suite is not defined at all (a skip never counts as a pass).
realRedisSuite('OneTimeCodes while Redis is stopped', (outage) => {
  outage(
    'raises StoreUnavailableError while the server is down and works again once it is back',
    async () => {
      const { server, redis, close } = await startOwnRedis({
        maxRetriesPerRequest: 1,
        retryStrategy: () => 50,
      });
      try {
        const codes = new OneTimeCodes({ redis, secret, prefix: 'lkt-outage', commandTimeoutMs: 300 });
        const code = await issued(codes, 'alice', EMAIL);
        await server.stop();
        for (const call of [
          () => codes.verify({ subject: 'alice', purpose: EMAIL, code }),
          () => codes.issue({ subject: 'bob', purpose: EMAIL }),
        ]) {
          await call().then(
            () => assert.unreachable('must not succeed while Redis is down'),
            (e: unknown) => assert.instance(e, StoreUnavailableError),
          );
        }
        await server.start();
        // The client reconnects on its own (every 50 ms); the store needs no restart. Until it has,
        // calls fail at once (the runner queues nothing behind an outage): retry them in real time.
        let result: Awaited<ReturnType<OneTimeCodes['issue']>> | undefined;
        const failures: unknown[] = [];
        await eventually(async () => {
          result = await codes.issue({ subject: 'bob', purpose: EMAIL }).catch((e: unknown) => {
            failures.push(e);
            return undefined;
          });
          return result !== undefined;
        }, 'the store answers again');
        for (const e of failures) assert.instance(e, StoreUnavailableError);
        assert.ok(result?.ok, 'issues again after the server is back');
      } finally {
        await close();
      }
    },
  );
});
