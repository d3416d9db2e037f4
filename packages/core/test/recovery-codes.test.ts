import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  MfaLogins,
  RecoveryCodes,
  type RecoveryCodesOptions,
  type SecurityEvent,
  ServerSecret,
} from '../src/index.js';
import { rejects } from './helpers/assertions.js';

const secret = ServerSecret.generate();
const DAY = 24 * 3600_000;

function recoveryFor(ctx: BackendContext, extra: Partial<RecoveryCodesOptions> = {}): RecoveryCodes {
  const store = { redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret };
  return new RecoveryCodes({ ...store, mfa: new MfaLogins(store), ...extra });
}

const unit = suite('RecoveryCodes options');
const fakeRedis = { defineCommand() {} } as unknown as RecoveryCodesOptions['redis'];
const fakeMfa = new MfaLogins({ redis: fakeRedis, secret });

unit('rejects each broken option with InvalidOptionError naming it', () => {
  const cases: Array<[Partial<RecoveryCodesOptions>, string]> = [
    [{ count: 0 }, 'count'],
    [{ count: 101 }, 'count'],
    // The set's TTL is the MfaLogins' too (recoveryCodeTtlMs): MfaLogins refreshes the same set.
    [{ ttlMs: DAY } as Partial<RecoveryCodesOptions>, 'ttlMs is set once, on the MfaLogins'],
    [{ mfa: undefined as unknown as MfaLogins }, 'mfa'],
    [{ mfa: { failureBudget: { max: 1, windowMs: DAY } } as MfaLogins }, 'mfa'],
    [{ prefix: 'other' }, 'mfa must use the same key prefix'],
    // The budget is the MfaLogins' alone: a second one here is refused, not silently ignored.
    [{ failureBudget: { max: 3, windowMs: DAY } } as Partial<RecoveryCodesOptions>, 'failureBudget'],
  ];
  for (const [extra, name] of cases) {
    assert.throws(
      () => new RecoveryCodes({ redis: fakeRedis, secret, mfa: fakeMfa, ...extra }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith(name),
      name,
    );
  }
});

unit.run();

backendSuite('RecoveryCodes', (test) => {
  test('replace() makes 10 distinct 80-bit codes in one round trip, stored only as keyed digests with a TTL', async (ctx) => {
    const recovery = recoveryFor(ctx);
    let codes: string[] = [];
    assert.is(
      await ctx.roundTrips.measure(async () => {
        codes = await recovery.replace('ada');
      }),
      1,
    );
    assert.is(new Set(codes).size, 10);
    for (const code of codes) assert.match(code, /^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    const dump = await ctx.dump();
    assert.is(dump.length, 1);
    for (const { content } of dump) {
      for (const code of codes) {
        assert.not.ok(content.includes(code) || content.includes(code.replace(/-/g, '')), 'a code in clear');
      }
    }
    const pttl = await ctx.redis.pttl((dump[0] as { key: string }).key);
    assert.ok(pttl > 364 * DAY && pttl <= 365 * DAY, `pttl ${pttl}`);
    assert.is(await recovery.remaining('ada'), 10);
  });

  test("the set lives for the mfa's recoveryCodeTtlMs, the TTL its second-factor logins refresh", async (ctx) => {
    const store = { redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret };
    const mfa = new MfaLogins({ ...store, recoveryCodeTtlMs: 2 * DAY });
    await new RecoveryCodes({ ...store, mfa }).replace('ada');
    const dump = await ctx.dump();
    const pttl = await ctx.redis.pttl((dump[0] as { key: string }).key);
    assert.ok(pttl > DAY && pttl <= 2 * DAY, `pttl ${pttl}`);
  });

  test('replace() invalidates the old set at once', async (ctx) => {
    const recovery = recoveryFor(ctx);
    const old = await recovery.replace('ada');
    const fresh = await recovery.replace('ada');
    assert.equal(await recovery.consume('ada', old[0] as string), { ok: false, reason: 'invalid' });
    assert.equal(await recovery.consume('ada', fresh[0] as string), { ok: true, remaining: 9 });
  });

  test('consume() takes a code once, case-insensitively and ignoring dashes, and emits recovery-code.used', async (ctx) => {
    const events: SecurityEvent[] = [];
    const recovery = recoveryFor(ctx, { onEvent: (e) => events.push(e) });
    const codes = await recovery.replace('ada');
    const code = codes[2] as string;
    assert.equal(await recovery.consume('ada', code.replace(/-/g, '').toLowerCase()), {
      ok: true,
      remaining: 9,
    });
    assert.equal(await recovery.consume('ada', code), { ok: false, reason: 'invalid' });
    assert.equal(
      await recovery.consume('bob', codes[3] as string),
      { ok: false, reason: 'invalid' },
      "ada's code for bob",
    );
    for (const bad of ['', 'x'.repeat(10240), '١٢٣٤', `${code}A`]) {
      assert.equal(await recovery.consume('ada', bad), { ok: false, reason: 'invalid' });
    }
    assert.ok(events.some((e) => e.type === 'recovery-code.used' && e.userId === 'ada' && e.remaining === 9));
  });

  test('twenty parallel uses of one code: exactly one succeeds', async (ctx) => {
    const mfa = new MfaLogins({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      secret,
      failureBudget: { max: 100, windowMs: DAY },
    });
    const recovery = recoveryFor(ctx, { mfa });
    const [code] = await recovery.replace('ada');
    const results = await Promise.all(
      Array.from({ length: 20 }, () => recovery.consume('ada', code as string)),
    );
    assert.is(results.filter((r) => r.ok).length, 1);
    assert.is(await recovery.remaining('ada'), 9);
  });

  test('the 10th miss locks: a right code is then not compared', async (ctx) => {
    const recovery = recoveryFor(ctx);
    const [code] = await recovery.replace('ada');
    for (let i = 0; i < 10; i++) await recovery.consume('ada', 'AAAA-AAAA-AAAA-AAAA');
    const locked = await recovery.consume('ada', code as string);
    assert.equal(locked, { ok: false, reason: 'locked', retryAfterMs: DAY });
    assert.is(await recovery.remaining('ada'), 10);
  });

  test('remove() deletes the set; the last use and the TTL leave zero keys', async (ctx) => {
    const recovery = recoveryFor(ctx, { count: 2 });
    await recovery.replace('ada');
    await recovery.remove('ada');
    assert.is(await recovery.remaining('ada'), 0);
    assert.equal(await ctx.keys(), []);
    const codes = await recovery.replace('ada');
    await recovery.consume('ada', codes[0] as string);
    await recovery.consume('ada', codes[1] as string);
    assert.equal(await ctx.keys(), []);
    await recovery.replace('bob');
    await ctx.advance(365 * DAY);
    assert.equal(await ctx.keys(), []);
  });

  test('throws InvalidInputError for a malformed user id or a code that is not a string', async (ctx) => {
    const recovery = recoveryFor(ctx);
    await rejects(recovery.replace(''), (e) => e instanceof InvalidInputError, 'replace');
    await rejects(
      recovery.consume('ada', 5 as unknown as string),
      (e) => e instanceof InvalidInputError,
      'consume',
    );
    await rejects(recovery.remaining('x'.repeat(2000)), (e) => e instanceof InvalidInputError, 'remaining');
  });
});
