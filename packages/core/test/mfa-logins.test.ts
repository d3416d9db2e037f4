import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import { Secret, TOTP } from 'otpauth';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  MfaLogins,
  type MfaLoginsOptions,
  type MfaMethod,
  type MfaVerifyResult,
  OneTimeCodes,
  RecoveryCodes,
  type SecurityEvent,
  ServerSecret,
  SessionStore,
  StaleAuthenticationError,
  Totp,
  userTag,
} from '../src/index.js';
import { rejects } from './helpers/assertions.js';

const secret = ServerSecret.generate();
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const STEP = 30_000;
const ALL: MfaMethod[] = ['totp', 'recovery-code', 'email'];

type Extra = Partial<Omit<MfaLoginsOptions, 'redis' | 'clock' | 'prefix' | 'secret'>>;

function mfaFor(ctx: BackendContext, extra: Extra = {}): MfaLogins {
  return new MfaLogins({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret, ...extra });
}

/** Recovery codes that count failures against `mfa`'s budget. */
function recoveryFor(ctx: BackendContext, mfa: MfaLogins, extra: { count?: number } = {}): RecoveryCodes {
  return new RecoveryCodes({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret, mfa, ...extra });
}

function codesFor(ctx: BackendContext): OneTimeCodes {
  return new OneTimeCodes({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret });
}

/** The TOTP code of the step `offset` steps from now. */
function codeAt(totpSecret: string, now: number, offset = 0): string {
  return TOTP.generate({
    secret: Secret.fromBase32(totpSecret),
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    timestamp: now + offset * STEP,
  });
}

/** A well-formed code that matches none of the steps now - 1 … now + 1. */
function wrongCode(totpSecret: string, now: number): string {
  const valid = new Set([-1, 0, 1].map((k) => codeAt(totpSecret, now, k)));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

/** Moves the clock to 10 s into a step, so that "the previous / next step" is unambiguous. */
function alignToStep(ctx: BackendContext): void {
  const into = ctx.clock.now() % STEP;
  ctx.clock.advance((STEP - into + 10_000) % STEP);
}

async function begin(mfa: MfaLogins, ctx: BackendContext, userId = 'ada', methods = ALL): Promise<string> {
  const { mfaToken } = await mfa.begin({ userId, authenticatedAt: ctx.clock.now(), methods });
  return mfaToken;
}

function assertInvalidToken(result: MfaVerifyResult, detail: string, what: string): void {
  assert.equal(result, { ok: false, reason: 'invalid_token', detail }, what);
}

// ---------------------------------------------------------------------------------------------------
// Unit tier: options (no Redis).

const options = suite('MfaLogins options');
const fakeRedis = { defineCommand() {} } as unknown as MfaLoginsOptions['redis'];

options('rejects each broken option with InvalidOptionError naming it', () => {
  const cases: Array<[Extra, string]> = [
    [{ ttlMs: 0 }, 'ttlMs'],
    [{ ttlMs: 2 * 60 * MINUTE }, 'ttlMs'],
    [{ maxAttempts: 0 }, 'maxAttempts'],
    [{ maxAttempts: 1.5 }, 'maxAttempts'],
    [{ failureBudget: { max: 0, windowMs: DAY } }, 'failureBudget.max'],
    [{ failureBudget: { max: 10, windowMs: 10 } }, 'failureBudget.windowMs'],
    [{ recoveryCodeTtlMs: 1 }, 'recoveryCodeTtlMs'],
    [{ codes: {} as OneTimeCodes }, 'codes'],
  ];
  for (const [extra, name] of cases) {
    assert.throws(
      () => new MfaLogins({ redis: fakeRedis, secret, ...extra }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith(name),
      name,
    );
  }
  assert.throws(
    () => new MfaLogins({ redis: fakeRedis, secret: 'x' as unknown as ServerSecret }),
    (e: unknown) => e instanceof InvalidOptionError,
  );
});

options('exposes the resolved failure budget that its Totp and RecoveryCodes enforce', () => {
  assert.equal(new MfaLogins({ redis: fakeRedis, secret }).failureBudget, { max: 10, windowMs: DAY });
  const budget = { max: 3, windowMs: HOUR };
  assert.equal(new MfaLogins({ redis: fakeRedis, secret, failureBudget: budget }).failureBudget, budget);
});

options.run();

// ---------------------------------------------------------------------------------------------------

backendSuite('MfaLogins.begin', (test) => {
  test('hands out an m1 token for 5 minutes in one round trip, storing only its digest', async (ctx) => {
    const mfa = mfaFor(ctx);
    const now = ctx.clock.now();
    let begun: Awaited<ReturnType<MfaLogins['begin']>> | undefined;
    const trips = await ctx.roundTrips.measure(async () => {
      begun = await mfa.begin({ userId: 'ada', authenticatedAt: now, methods: ['totp'] });
    });
    assert.is(trips, 1);
    if (begun === undefined) return assert.unreachable('no token');
    assert.match(begun.mfaToken, /^m1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    assert.is(begun.mfaToken.split('.')[1], userTag('ada'));
    assert.is(begun.expiresAt, now + 5 * MINUTE);
    const secretPart = begun.mfaToken.split('.')[2] as string;
    const dump = await ctx.dump();
    assert.is(dump.length, 1);
    for (const { key, content } of dump) {
      assert.not.ok(key.includes(secretPart) || content.includes(secretPart), 'the secret reaches Redis');
      assert.ok(key.includes(`{${userTag('ada')}}`), 'keyed under the user tag');
    }
    assert.equal(await ctx.keysWithoutTtl(), []);
    const pttl = await ctx.redis.pttl((dump[0] as { key: string }).key);
    assert.ok(pttl > 0 && pttl <= 5 * MINUTE, `pttl ${pttl}`);
  });

  test('refuses a password check that began before the revoke-all mark (StaleAuthenticationError)', async (ctx) => {
    const mfa = mfaFor(ctx);
    const sessions = new SessionStore({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const authenticatedAt = ctx.clock.now();
    ctx.clock.advance(5);
    await sessions.revokeAllForUser('ada'); // a password reset lands during the login
    await rejects(
      mfa.begin({ userId: 'ada', authenticatedAt, methods: ['totp'] }),
      (e) => e instanceof StaleAuthenticationError && e.revokedBefore === ctx.clock.now() + 1,
      'StaleAuthenticationError',
    );
    // A password check that began after the reset gets a token.
    ctx.clock.advance(1);
    await mfa.begin({ userId: 'ada', authenticatedAt: ctx.clock.now(), methods: ['totp'] });
  });

  test('rejects malformed input with InvalidInputError before any round trip', async (ctx) => {
    const mfa = mfaFor(ctx);
    const now = ctx.clock.now();
    const bad: unknown[] = [
      { userId: '', authenticatedAt: now, methods: ['totp'] },
      { userId: 'ada', authenticatedAt: now + 60_000, methods: ['totp'] },
      { userId: 'ada', authenticatedAt: 'now', methods: ['totp'] },
      { userId: 'ada', authenticatedAt: now, methods: [] },
      { userId: 'ada', authenticatedAt: now, methods: ['sms'] },
      { userId: 'ada', authenticatedAt: now, methods: 'totp' },
      { userId: 'ada', authenticatedAt: now, methods: ['totp'], amr: ['PWD!'] },
      null,
    ];
    const trips = await ctx.roundTrips.measure(async () => {
      for (const input of bad) {
        await rejects(
          mfa.begin(input as Parameters<MfaLogins['begin']>[0]),
          (e) => e instanceof InvalidInputError,
          `InvalidInputError for ${JSON.stringify(input)}`,
        );
      }
    });
    assert.is(trips, 0);
  });
});

backendSuite('MfaLogins.peek', (test) => {
  test('reads the user and methods in one round trip without spending the token', async (ctx) => {
    const mfa = mfaFor(ctx);
    const totpSecret = Totp.generateSecret();
    const authenticatedAt = ctx.clock.now();
    const { mfaToken, id, expiresAt } = await mfa.begin({
      userId: 'ada',
      authenticatedAt,
      methods: ['totp', 'email'],
    });
    let login: Awaited<ReturnType<MfaLogins['peek']>> = null;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        login = await mfa.peek(mfaToken);
      }),
      1,
    );
    assert.equal(login, { id, userId: 'ada', methods: ['totp', 'email'], authenticatedAt, expiresAt });
    assert.ok(await mfa.peek(mfaToken), 'a second peek still finds it');
    const result = await mfa.verify(mfaToken, {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.ok(result.ok);
    assert.is(await mfa.peek(mfaToken), null, 'spent');
  });

  test('returns null for malformed, unknown, expired and stale tokens', async (ctx) => {
    const mfa = mfaFor(ctx);
    const sessions = new SessionStore({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const token = await begin(mfa, ctx);
    const trips = await ctx.roundTrips.measure(async () => {
      for (const garbage of [
        '',
        'm1..',
        `${token}x`,
        token.replace('m1.', 'm2.'),
        42,
        null,
        'é'.repeat(90),
      ]) {
        assert.is(await mfa.peek(garbage as string), null);
      }
    });
    assert.is(trips, 0, 'garbage never reaches Redis');
    assert.is(await mfa.peek(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`), null, 'unknown');
    ctx.clock.advance(1);
    await sessions.revokeAllForUser('ada');
    assert.is(await mfa.peek(token), null, 'issued before the mark');
    ctx.clock.advance(1); // the mark covers the revocation's own millisecond
    const later = await begin(mfa, ctx);
    assert.ok(await mfa.peek(later));
    await ctx.advance(5 * MINUTE);
    assert.is(await mfa.peek(later), null, 'expired');
  });
});

backendSuite('MfaLogins.verify with TOTP', (test) => {
  test('accepts the current code once in one round trip and reports amr and instants', async (ctx) => {
    alignToStep(ctx);
    const events: SecurityEvent[] = [];
    const mfa = mfaFor(ctx, { onEvent: (e) => events.push(e) });
    const totpSecret = Totp.generateSecret();
    const firstFactorAt = ctx.clock.now();
    const { mfaToken: token, id } = await mfa.begin({
      userId: 'ada',
      authenticatedAt: firstFactorAt,
      methods: ALL,
    });
    ctx.clock.advance(2000);
    const code = codeAt(totpSecret, ctx.clock.now());
    let result: MfaVerifyResult | undefined;
    const trips = await ctx.roundTrips.measure(async () => {
      result = await mfa.verify(token, { method: 'totp', code, secret: totpSecret });
    });
    assert.is(trips, 1);
    assert.equal(result, {
      ok: true,
      userId: 'ada',
      method: 'totp',
      amr: ['pwd', 'otp', 'mfa'],
      authenticatedAt: ctx.clock.now(),
      firstFactorAt,
    });
    assertInvalidToken(
      await mfa.verify(token, { method: 'totp', code, secret: totpSecret }),
      'unknown',
      'the token is spent',
    );
    assert.equal(events, [
      { type: 'mfa.succeeded', at: ctx.clock.now(), userId: 'ada', method: 'totp', loginId: id },
    ]);
  });

  test('a login begun at the revoke-all mark (1 ms ahead) completes into a session that is not stale', async (ctx) => {
    // Issue 19: a login right after a reset shares its millisecond and is begun at the mark itself;
    // the second factor in that same millisecond must not hand back an earlier authenticatedAt.
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    const sessions = new SessionStore({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    await sessions.revokeAllForUser('ada');
    const mark = ctx.clock.now() + 1;
    const { mfaToken: token } = await mfa.begin({ userId: 'ada', authenticatedAt: mark, methods: ['totp'] });
    const totpSecret = Totp.generateSecret();
    const result = await mfa.verify(token, {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.ok(result.ok);
    assert.is(result.authenticatedAt, mark, 'never before the first factor');
    assert.is(result.firstFactorAt, mark);
    const created = await sessions.create(
      'ada',
      {},
      { authenticatedAt: result.authenticatedAt, amr: result.amr },
    );
    assert.is(created.session.userId, 'ada');
  });

  test('accepts the previous and the next step, refuses two steps away', async (ctx) => {
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    for (const offset of [-1, 1]) {
      const totpSecret = Totp.generateSecret();
      const user = `u${offset}`;
      const token = await begin(mfa, ctx, user);
      const r = await mfa.verify(token, {
        method: 'totp',
        code: codeAt(totpSecret, ctx.clock.now(), offset),
        secret: totpSecret,
      });
      assert.ok(r.ok, `offset ${offset}`);
    }
    for (const offset of [-2, 2]) {
      const totpSecret = Totp.generateSecret();
      const token = await begin(mfa, ctx, `far${offset}`);
      const code = codeAt(totpSecret, ctx.clock.now(), offset);
      if ([-1, 0, 1].some((k) => codeAt(totpSecret, ctx.clock.now(), k) === code)) continue; // 1e-6
      const r = await mfa.verify(token, { method: 'totp', code, secret: totpSecret });
      assert.is(r.ok ? 'ok' : r.reason, 'invalid_code', `offset ${offset}`);
    }
  });

  test('never accepts a code twice, nor an earlier step after a later one, through another token', async (ctx) => {
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    const totpSecret = Totp.generateSecret();
    const now = ctx.clock.now();
    const current = codeAt(totpSecret, now);
    const first = await mfa.verify(await begin(mfa, ctx), {
      method: 'totp',
      code: current,
      secret: totpSecret,
    });
    assert.ok(first.ok);
    const replay = await mfa.verify(await begin(mfa, ctx), {
      method: 'totp',
      code: current,
      secret: totpSecret,
    });
    assert.equal(replay, { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: false });
    const earlier = codeAt(totpSecret, now, -1);
    const r = await mfa.verify(await begin(mfa, ctx), { method: 'totp', code: earlier, secret: totpSecret });
    assert.is(r.ok, false, 'the previous step after the current one');
    const next = await mfa.verify(await begin(mfa, ctx), {
      method: 'totp',
      code: codeAt(totpSecret, now, 1),
      secret: totpSecret,
    });
    assert.ok(next.ok, 'a later step is still accepted');
  });

  test('counts malformed codes (letters, 7 digits, 10 KiB, Unicode digits) as wrong codes', async (ctx) => {
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    const totpSecret = Totp.generateSecret();
    const code = codeAt(totpSecret, ctx.clock.now());
    const malformed = [
      'abcdef',
      `${code}0`,
      code.slice(0, 5),
      '1'.repeat(10 * 1024),
      '١٢٣٤٥٦', // Arabic-Indic digits
      code.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d))), // full-width digits of the right code
      ` ${code}`,
      '',
    ];
    for (const bad of malformed) {
      const token = await begin(mfa, ctx);
      const r = await mfa.verify(token, { method: 'totp', code: bad, secret: totpSecret });
      assert.equal(
        r,
        { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: false },
        bad,
      );
    }
  });

  test('twenty parallel submissions of one valid code: exactly one succeeds (one token and twenty tokens), and the replays lock nothing', async (ctx) => {
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    const totpSecret = Totp.generateSecret();
    const now = ctx.clock.now();
    const one = await begin(mfa, ctx);
    const sameToken = await Promise.all(
      Array.from({ length: 20 }, () =>
        mfa.verify(one, { method: 'totp', code: codeAt(totpSecret, now), secret: totpSecret }),
      ),
    );
    assert.is(sameToken.filter((r) => r.ok).length, 1, 'one token');
    const tokens = await Promise.all(Array.from({ length: 20 }, () => begin(mfa, ctx)));
    const code = codeAt(totpSecret, now, 1);
    const manyTokens = await Promise.all(
      tokens.map((t) => mfa.verify(t, { method: 'totp', code, secret: totpSecret })),
    );
    assert.is(manyTokens.filter((r) => r.ok).length, 1, 'twenty tokens');
    for (const r of manyTokens) {
      if (!r.ok)
        assert.equal(r, { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: false });
    }
    await ctx.advance(STEP);
    const later = await mfa.verify(await begin(mfa, ctx), {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now(), 1),
      secret: totpSecret,
    });
    assert.ok(later.ok, 'nineteen replays did not spend the failure budget');
  });

  test('the 5th wrong code burns the token; the 6th finds no token', async (ctx) => {
    alignToStep(ctx);
    const events: SecurityEvent[] = [];
    const mfa = mfaFor(ctx, { onEvent: (e) => events.push(e) });
    const totpSecret = Totp.generateSecret();
    const token = await begin(mfa, ctx);
    const wrong = wrongCode(totpSecret, ctx.clock.now());
    for (let i = 1; i <= 4; i++) {
      const r = await mfa.verify(token, { method: 'totp', code: wrong, secret: totpSecret });
      assert.equal(
        r,
        { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: false },
        `#${i}`,
      );
    }
    const fifth = await mfa.verify(token, { method: 'totp', code: wrong, secret: totpSecret });
    assert.equal(fifth, { ok: false, reason: 'invalid_code', userId: 'ada', burned: true, locked: false });
    const sixth = await mfa.verify(token, {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assertInvalidToken(sixth, 'unknown', 'even the right code after the burn');
    assert.is(events.filter((e) => e.type === 'mfa.failed').length, 5);
    assert.is(events.filter((e) => e.type === 'mfa.token-burned').length, 1);
  });

  test('the 10th failure across tokens locks second-factor checks for the rest of the window', async (ctx) => {
    alignToStep(ctx);
    const events: SecurityEvent[] = [];
    const onEvent = (e: SecurityEvent) => events.push(e);
    const mfa = mfaFor(ctx, { onEvent });
    const totpSecret = Totp.generateSecret();
    const start = ctx.clock.now();
    let last: MfaVerifyResult | undefined;
    for (let i = 1; i <= 10; i++) {
      const token = await begin(mfa, ctx); // a fresh token each time: only the account budget adds up
      last = await mfa.verify(token, {
        method: 'totp',
        code: wrongCode(totpSecret, ctx.clock.now()),
        secret: totpSecret,
      });
      ctx.clock.advance(MINUTE);
    }
    assert.equal(last, { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: true });
    const token = await begin(mfa, ctx);
    const eleventh = await mfa.verify(token, {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.equal(eleventh, {
      ok: false,
      reason: 'locked',
      userId: 'ada',
      retryAfterMs: start + DAY - ctx.clock.now(),
    });
    assert.ok(await mfa.peek(token), 'a locked check spends nothing');
    assert.ok(events.some((e) => e.type === 'mfa.locked'));
    // The lock holds for Totp and RecoveryCodes checks too (one record).
    const totp = new Totp({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, issuer: 'Test', mfa });
    const checked = await totp.verify('ada', totpSecret, codeAt(totpSecret, ctx.clock.now()));
    assert.is(checked.ok ? 'ok' : checked.reason, 'locked');
    // Another user is not affected.
    const other = await mfa.verify(await begin(mfa, ctx, 'bob'), {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.ok(other.ok);
    // Once the oldest failure leaves the window, one more check is allowed.
    await ctx.advance(start + DAY - ctx.clock.now() + 1);
    const after = await mfa.verify(await begin(mfa, ctx), {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.ok(after.ok, 'unlocked after the window');
  });

  test("one budget, set once: Totp and RecoveryCodes enforce their MfaLogins' budget, locked alike", async (ctx) => {
    alignToStep(ctx);
    const events: SecurityEvent[] = [];
    const mfa = mfaFor(ctx, { failureBudget: { max: 3, windowMs: HOUR }, onEvent: (e) => events.push(e) });
    const totp = new Totp({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, issuer: 'Test', mfa });
    const recovery = recoveryFor(ctx, mfa);
    const totpSecret = Totp.generateSecret();
    const [recoveryCode] = await recovery.replace('ada');
    const start = ctx.clock.now();
    // One failure through each of the three: the third spends the budget of 3, whichever counts it.
    assert.equal(await totp.verify('ada', totpSecret, wrongCode(totpSecret, start)), {
      ok: false,
      reason: 'invalid',
    });
    ctx.clock.advance(MINUTE);
    assert.equal(await recovery.consume('ada', 'AAAA-AAAA-AAAA-AAAA'), { ok: false, reason: 'invalid' });
    ctx.clock.advance(MINUTE);
    const third = await mfa.verify(await begin(mfa, ctx), {
      method: 'totp',
      code: wrongCode(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.equal(third, { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: true });
    ctx.clock.advance(MINUTE);
    // All three now refuse right codes without comparing, with one Retry-After: the budget's window
    // from the first failure.
    const retryAfterMs = start + HOUR - ctx.clock.now();
    const code = codeAt(totpSecret, ctx.clock.now());
    assert.equal(await totp.verify('ada', totpSecret, code), { ok: false, reason: 'locked', retryAfterMs });
    assert.equal(await recovery.consume('ada', recoveryCode as string), {
      ok: false,
      reason: 'locked',
      retryAfterMs,
    });
    assert.equal(await mfa.verify(await begin(mfa, ctx), { method: 'totp', code, secret: totpSecret }), {
      ok: false,
      reason: 'locked',
      userId: 'ada',
      retryAfterMs,
    });
    assert.equal(
      events.filter((e) => e.type === 'mfa.locked').map((e) => e.type === 'mfa.locked' && e.retryAfterMs),
      [start + HOUR - (start + 2 * MINUTE)],
      'one lock, when the budget was spent',
    );
    // The window passes for all three at once.
    await ctx.advance(retryAfterMs + 1);
    assert.equal(await recovery.consume('ada', recoveryCode as string), { ok: true, remaining: 9 });
    assert.equal(await totp.verify('ada', totpSecret, codeAt(totpSecret, ctx.clock.now())), { ok: true });
  });

  test('refuses an expired token, a token issued before a reset or a password change, and a forged tag', async (ctx) => {
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    const sessions = new SessionStore({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix });
    const totpSecret = Totp.generateSecret();
    const attempt = () => ({
      method: 'totp' as const,
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });

    const expiring = await begin(mfa, ctx);
    await ctx.advance(5 * MINUTE);
    const late = await mfa.verify(expiring, attempt());
    // The record's TTL is its lifetime: Redis has usually dropped it ('unknown') by then.
    assert.ok(!late.ok && late.reason === 'invalid_token', 'after 5 minutes');

    const beforeReset = await begin(mfa, ctx);
    ctx.clock.advance(1);
    await sessions.revokeAllForUser('ada');
    assertInvalidToken(await mfa.verify(beforeReset, attempt()), 'stale', 'after a reset');
    assertInvalidToken(await mfa.verify(beforeReset, attempt()), 'unknown', 'deleted with the refusal');

    ctx.clock.advance(1);
    const { token: current } = await sessions.create('ada', {});
    const beforeChange = await begin(mfa, ctx);
    ctx.clock.advance(1);
    const kept = await sessions.get(current);
    await sessions.revokeAllForUser('ada', { except: kept?.id as string, setMark: true });
    assertInvalidToken(await mfa.verify(beforeChange, attempt()), 'stale', 'after a password change');

    ctx.clock.advance(1);
    const adas = await begin(mfa, ctx, 'ada');
    const forged = adas.replace(userTag('ada'), userTag('bob'));
    await begin(mfa, ctx, 'bob');
    assertInvalidToken(await mfa.verify(forged, attempt()), 'unknown', "ada's secret under bob's tag");
    assert.ok((await mfa.verify(adas, attempt())).ok, "ada's own token still works");
  });

  test('counts a method the login does not allow; a bad secret throws and counts nothing', async (ctx) => {
    alignToStep(ctx);
    const mfa = mfaFor(ctx);
    const totpSecret = Totp.generateSecret();
    const token = await begin(mfa, ctx, 'ada', ['recovery-code']);
    const r = await mfa.verify(token, {
      method: 'totp',
      code: codeAt(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.equal(r, { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: false });
    const other = await begin(mfa, ctx);
    const trips = await ctx.roundTrips.measure(async () => {
      for (const bad of ['not base32!', '', 'JBSWY3DP', 42]) {
        await rejects(
          mfa.verify(other, { method: 'totp', code: '123456', secret: bad as string }),
          (e) => e instanceof InvalidInputError,
          `InvalidInputError for secret ${String(bad)}`,
        );
      }
      await rejects(
        mfa.verify(other, { method: 'sms', code: '1' } as unknown as Parameters<MfaLogins['verify']>[1]),
        (e) => e instanceof InvalidInputError,
        'InvalidInputError for an unknown method',
      );
    });
    assert.is(trips, 0);
    assert.ok(
      (
        await mfa.verify(other, {
          method: 'totp',
          code: codeAt(totpSecret, ctx.clock.now()),
          secret: totpSecret,
        })
      ).ok,
    );
  });

  test('leaves zero keys after every lifetime and nothing secret in clear', async (ctx) => {
    alignToStep(ctx);
    const codes = codesFor(ctx);
    const mfa = mfaFor(ctx, { codes });
    const recovery = recoveryFor(ctx, mfa);
    const totpSecret = Totp.generateSecret();
    const recoveryCodes = await recovery.replace('ada');
    const tokens = [
      await begin(mfa, ctx),
      await begin(mfa, ctx),
      await begin(mfa, ctx),
      await begin(mfa, ctx),
    ];
    const [t0, t1, t2, t3] = tokens as [string, string, string, string];
    const code = codeAt(totpSecret, ctx.clock.now());
    assert.ok((await mfa.verify(t0, { method: 'totp', code, secret: totpSecret })).ok);
    await mfa.verify(t1, {
      method: 'totp',
      code: wrongCode(totpSecret, ctx.clock.now()),
      secret: totpSecret,
    });
    assert.ok((await mfa.verify(t1, { method: 'recovery-code', code: recoveryCodes[0] as string })).ok);
    const sent = await mfa.issueEmailCode(t2);
    if (!sent.ok) return assert.unreachable('no email code');
    const dump = await ctx.dump();
    const secrets = [
      totpSecret,
      code,
      sent.code,
      ...recoveryCodes,
      ...recoveryCodes.map((c) => c.replace(/-/g, '')),
      ...tokens,
      ...tokens.map((t) => t.split('.')[2] as string),
    ];
    for (const { key, content } of dump) {
      for (const s of secrets) {
        assert.not.ok(key.includes(s) || content.includes(s), `${key} holds a secret`);
      }
    }
    assert.equal(await ctx.keysWithoutTtl(), []);
    assert.ok(await mfa.peek(t3));
    await ctx.advance(DAY + MINUTE);
    const left = await ctx.keys();
    assert.is(left.length, 1, 'only the recovery codes outlive a day');
    assert.match(left[0] as string, /:mr:\{/);
    await ctx.advance(366 * DAY);
    assert.equal(await ctx.keys(), []);
  });
});

backendSuite('MfaLogins.verify with recovery codes', (test) => {
  test('accepts an unused code once, ignoring case and dashes, and reports how many are left', async (ctx) => {
    const events: SecurityEvent[] = [];
    const mfa = mfaFor(ctx, { onEvent: (e) => events.push(e) });
    const recovery = recoveryFor(ctx, mfa);
    const codes = await recovery.replace('ada');
    const typed = (codes[3] as string).toLowerCase().replace(/-/g, ' ');
    let result: MfaVerifyResult | undefined;
    const token = await begin(mfa, ctx);
    assert.is(
      await ctx.roundTrips.measure(async () => {
        result = await mfa.verify(token, { method: 'recovery-code', code: typed });
      }),
      1,
    );
    assert.equal(result, {
      ok: true,
      userId: 'ada',
      method: 'recovery-code',
      amr: ['pwd', 'otp', 'mfa'],
      authenticatedAt: ctx.clock.now(),
      firstFactorAt: ctx.clock.now(),
      remainingRecoveryCodes: 9,
    });
    assert.ok(events.some((e) => e.type === 'recovery-code.used' && e.remaining === 9));
    const again = await mfa.verify(await begin(mfa, ctx), {
      method: 'recovery-code',
      code: codes[3] as string,
    });
    assert.is(again.ok ? 'ok' : again.reason, 'invalid_code', 'used');
    const bobs = await mfa.verify(await begin(mfa, ctx, 'bob'), {
      method: 'recovery-code',
      code: codes[4] as string,
    });
    assert.is(bobs.ok ? 'ok' : bobs.reason, 'invalid_code', "ada's code does not work for bob");
    assert.is(await recovery.remaining('ada'), 9);
  });

  test('twenty parallel logins with one recovery code: exactly one succeeds', async (ctx) => {
    const mfa = mfaFor(ctx, { failureBudget: { max: 100, windowMs: DAY } });
    const recovery = recoveryFor(ctx, mfa);
    const [code] = await recovery.replace('ada');
    const tokens = await Promise.all(Array.from({ length: 20 }, () => begin(mfa, ctx)));
    const results = await Promise.all(
      tokens.map((t) => mfa.verify(t, { method: 'recovery-code', code: code as string })),
    );
    assert.is(results.filter((r) => r.ok).length, 1);
    assert.is(await recovery.remaining('ada'), 9);
  });

  test('the last code empties the set (no key left)', async (ctx) => {
    const mfa = mfaFor(ctx);
    const recovery = recoveryFor(ctx, mfa, { count: 1 });
    const [code] = await recovery.replace('ada');
    const r = await mfa.verify(await begin(mfa, ctx), { method: 'recovery-code', code: code as string });
    assert.is(r.ok && r.remainingRecoveryCodes, 0);
    assert.equal(await ctx.keys(), []);
  });
});

backendSuite('MfaLogins email codes', (test) => {
  test('issues a 2fa code bound to the token (2 round trips) and completes only that login', async (ctx) => {
    const codes = codesFor(ctx);
    const mfa = mfaFor(ctx, { codes });
    const a = await begin(mfa, ctx);
    const b = await begin(mfa, ctx);
    let sent: Awaited<ReturnType<MfaLogins['issueEmailCode']>> | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        sent = await mfa.issueEmailCode(a, { ip: '203.0.113.7' });
      }),
      2,
    );
    if (sent === undefined || !sent.ok) return assert.unreachable('expected a code');
    assert.is(sent.login.userId, 'ada');
    assert.match(sent.code, /^\d{6}$/);
    const onB = await mfa.verify(b, { method: 'email', code: sent.code });
    assert.is(onB.ok ? 'ok' : onB.reason, 'invalid_code', "a's code does not complete b");
    let result: MfaVerifyResult | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        result = await mfa.verify(a, { method: 'email', code: sent?.ok ? sent.code : '', ip: '203.0.113.7' });
      }),
      2,
    );
    assert.ok(result?.ok);
    assert.equal(result?.ok && result.amr, ['pwd', 'otp', 'mfa']);
    const again = await mfa.verify(a, { method: 'email', code: sent.code });
    assertInvalidToken(again, 'unknown', 'spent');
  });

  test('refuses to issue for unknown tokens and logins without the email method; a wrong code counts', async (ctx) => {
    const codes = codesFor(ctx);
    const mfa = mfaFor(ctx, { codes });
    assert.equal(await mfa.issueEmailCode('m1.nope'), { ok: false, reason: 'invalid_token' });
    const totpOnly = await begin(mfa, ctx, 'ada', ['totp']);
    assert.equal(await mfa.issueEmailCode(totpOnly), { ok: false, reason: 'invalid_token' });
    const token = await begin(mfa, ctx);
    const sent = await mfa.issueEmailCode(token);
    if (!sent.ok) return assert.unreachable('expected a code');
    const cooldown = await mfa.issueEmailCode(token);
    assert.is(cooldown.ok ? 'ok' : cooldown.reason, 'cooldown');
    const wrong = sent.code === '000000' ? '000001' : '000000';
    const r = await mfa.verify(token, { method: 'email', code: wrong });
    assert.equal(r, { ok: false, reason: 'invalid_code', userId: 'ada', burned: false, locked: false });
    assert.ok((await mfa.verify(token, { method: 'email', code: sent.code })).ok);
  });

  test('the email method without the codes option is a configuration error', async (ctx) => {
    const mfa = mfaFor(ctx);
    const token = await begin(mfa, ctx);
    await rejects(mfa.issueEmailCode(token), (e) => e instanceof InvalidOptionError, 'InvalidOptionError');
    await rejects(
      mfa.verify(token, { method: 'email', code: '123456' }),
      (e) => e instanceof InvalidOptionError,
      'InvalidOptionError',
    );
  });
});
