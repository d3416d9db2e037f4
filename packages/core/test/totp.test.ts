import { createFakeRedis } from '@latchkey/testing';
import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import { Secret, TOTP, URI } from 'otpauth';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  MfaLogins,
  type SecurityEvent,
  ServerSecret,
  Totp,
  type TotpOptions,
} from '../src/index.js';
import { matchTotpStep, totpFor as totpOf } from '../src/internal/second-factor.js';
import { rejects } from './helpers/assertions.js';

const STEP = 30_000;
const DAY = 24 * 3600_000;
const secret = ServerSecret.generate();

function totpFor(ctx: BackendContext, extra: Partial<TotpOptions> = {}): Totp {
  const store = { redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix };
  return new Totp({ ...store, issuer: 'Latchkey Test', mfa: new MfaLogins({ ...store, secret }), ...extra });
}

function codeAt(totpSecret: string, now: number, offset = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(totpSecret), timestamp: now + offset * STEP });
}

function wrongCode(totpSecret: string, now: number): string {
  const valid = new Set([-1, 0, 1].map((k) => codeAt(totpSecret, now, k)));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

function alignToStep(ctx: BackendContext): void {
  ctx.clock.advance((STEP - (ctx.clock.now() % STEP) + 10_000) % STEP);
}

const unit = suite('Totp without Redis');
const fakeRedis = { defineCommand() {} } as unknown as TotpOptions['redis'];
const fakeMfa = new MfaLogins({ redis: fakeRedis, secret });

unit('generates distinct 160-bit base32 secrets', () => {
  const secrets = new Set(Array.from({ length: 50 }, () => Totp.generateSecret()));
  assert.is(secrets.size, 50);
  for (const s of secrets) {
    assert.match(s, /^[A-Z2-7]{32}$/);
    assert.is(Secret.fromBase32(s).bytes.length, 20);
  }
});

unit('builds an otpauth URI with the issuer, the account and the contract parameters', () => {
  const totp = new Totp({ redis: fakeRedis, issuer: 'Example Co', mfa: fakeMfa });
  const s = Totp.generateSecret();
  const uri = totp.uri({ secret: s, account: 'ada@example.com' });
  assert.ok(uri.startsWith('otpauth://totp/Example%20Co:ada%40example.com?'), uri);
  const parsed = URI.parse(uri);
  assert.ok(parsed instanceof TOTP);
  assert.is(parsed.issuer, 'Example Co');
  assert.is(parsed.secret.base32, s);
  assert.is((parsed as TOTP).period, 30);
  assert.is(parsed.digits, 6);
  assert.is(parsed.algorithm, 'SHA1');
  assert.throws(
    () => totp.uri({ secret: 'short', account: 'a' }),
    (e: unknown) => e instanceof InvalidInputError,
  );
  assert.throws(
    () => totp.uri({ secret: s, account: '' }),
    (e: unknown) => e instanceof InvalidInputError,
  );
});

unit('rejects a missing or malformed issuer, a missing mfa and a budget of its own', async () => {
  for (const issuer of ['', 'a:b', 'x'.repeat(101), 5]) {
    assert.throws(
      () => new Totp({ redis: fakeRedis, issuer: issuer as string, mfa: fakeMfa }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('issuer'),
    );
  }
  for (const mfa of [undefined, {}, { failureBudget: { max: 1, windowMs: DAY } }]) {
    assert.throws(
      () => new Totp({ redis: fakeRedis, issuer: 'x', mfa: mfa as MfaLogins }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('mfa'),
    );
  }
  // Under another prefix the budget and the last accepted step would be other records.
  assert.throws(
    () => new Totp({ redis: fakeRedis, issuer: 'x', mfa: fakeMfa, prefix: 'other' }),
    (e: unknown) =>
      e instanceof InvalidOptionError && e.message.startsWith('mfa must use the same key prefix'),
  );
  // On another Redis client (another server, another db) the records would split the same way.
  const otherRedis = { defineCommand() {} } as unknown as TotpOptions['redis'];
  assert.throws(
    () => new Totp({ redis: otherRedis, issuer: 'x', mfa: fakeMfa }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('mfa must use the same Redis'),
  );
  // The budget enforced is the one MfaLogins resolved, not whatever its public getter answers.
  class Lenient extends MfaLogins {
    override get failureBudget() {
      return { max: 1000, windowMs: 1000 };
    }
  }
  const redis = createFakeRedis();
  const lenient = new Lenient({ redis, secret, failureBudget: { max: 1, windowMs: DAY } });
  const guarded = new Totp({ redis, issuer: 'x', mfa: lenient });
  const s = Totp.generateSecret();
  assert.equal(await guarded.verify('eve', s, '000000'), { ok: false, reason: 'invalid' });
  const second = await guarded.verify('eve', s, '000000');
  assert.is(second.ok === false && second.reason, 'locked', 'the resolved budget of 1 locks the second try');
  redis.disconnect();
  // The budget is the MfaLogins' alone: a second one here is refused, not silently ignored.
  const own = { redis: fakeRedis, issuer: 'x', mfa: fakeMfa, failureBudget: { max: 3, windowMs: DAY } };
  assert.throws(
    () => new Totp(own as TotpOptions),
    (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('failureBudget'),
  );
});

unit('matches the RFC 6238 SHA-1 test vectors (6-digit truncation) at ±1 step, and nothing else', () => {
  const rfcSecret = Secret.fromLatin1('12345678901234567890').base32;
  const totp = totpOf(rfcSecret);
  const vectors: Array<[number, string]> = [
    [59, '287082'],
    [1111111109, '081804'],
    [1111111111, '050471'],
    [1234567890, '005924'],
    [2000000000, '279037'],
  ];
  for (const [seconds, code] of vectors) {
    const step = Math.floor(seconds / 30);
    assert.is(matchTotpStep(totp, code, seconds * 1000), step, `T=${seconds}`);
    assert.is(matchTotpStep(totp, code, seconds * 1000 + STEP), step, `T=${seconds}, one step later`);
    assert.is(matchTotpStep(totp, code, seconds * 1000 - STEP), step, `T=${seconds}, one step earlier`);
    const far = matchTotpStep(totp, code, seconds * 1000 + 2 * STEP);
    assert.ok(far === null || far !== step, `T=${seconds}, two steps later`);
    assert.is(matchTotpStep(totp, `${code} `, seconds * 1000), null);
  }
});

unit.run();

backendSuite('Totp.verify', (test) => {
  test('accepts a current code once in one round trip, with a TTL on the last-step record', async (ctx) => {
    alignToStep(ctx);
    const totp = totpFor(ctx);
    const s = Totp.generateSecret();
    const code = codeAt(s, ctx.clock.now());
    let first: Awaited<ReturnType<Totp['verify']>> | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        first = await totp.verify('ada', s, code);
      }),
      1,
    );
    assert.equal(first, { ok: true });
    assert.equal(await totp.verify('ada', s, code), { ok: false, reason: 'invalid' }, 'replayed');
    assert.equal(
      await totp.verify('ada', s, codeAt(s, ctx.clock.now(), -1)),
      { ok: false, reason: 'invalid' },
      'earlier',
    );
    assert.equal(await totp.verify('ada', s, codeAt(s, ctx.clock.now(), 1)), { ok: true }, 'next step');
    assert.equal(await ctx.keysWithoutTtl(), []);
    for (const { content } of await ctx.dump()) assert.not.ok(content.includes(s) || content.includes(code));
    await ctx.advance(DAY);
    assert.equal(await ctx.keys(), []);
  });

  test('a code accepted outside a login is not accepted by a login, and the other way round', async (ctx) => {
    alignToStep(ctx);
    const mfa = new MfaLogins({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret });
    const totp = totpFor(ctx, { mfa });
    const s = Totp.generateSecret();
    const now = ctx.clock.now();
    assert.ok((await totp.verify('ada', s, codeAt(s, now))).ok);
    const { mfaToken } = await mfa.begin({ userId: 'ada', authenticatedAt: now, methods: ['totp'] });
    const login = await mfa.verify(mfaToken, { method: 'totp', code: codeAt(s, now), secret: s });
    assert.is(login.ok ? 'ok' : login.reason, 'invalid_code');
    const next = await mfa.verify(mfaToken, { method: 'totp', code: codeAt(s, now, 1), secret: s });
    assert.ok(next.ok);
    assert.equal(await totp.verify('ada', s, codeAt(s, now, 1)), { ok: false, reason: 'invalid' });
  });

  test('twenty parallel checks of one code: exactly one succeeds, and the replays are not counted', async (ctx) => {
    alignToStep(ctx);
    const totp = totpFor(ctx);
    const s = Totp.generateSecret();
    const code = codeAt(s, ctx.clock.now());
    const results = await Promise.all(Array.from({ length: 20 }, () => totp.verify('ada', s, code)));
    assert.is(results.filter((r) => r.ok).length, 1);
    assert.equal(await totp.verify('ada', s, codeAt(s, ctx.clock.now(), 1)), { ok: true }, 'not locked');
  });

  test('counts malformed and wrong codes; the 10th locks, then nothing is compared until the window passes', async (ctx) => {
    alignToStep(ctx);
    const events: SecurityEvent[] = [];
    const totp = totpFor(ctx, { onEvent: (e) => events.push(e) });
    const s = Totp.generateSecret();
    const start = ctx.clock.now();
    const bad = ['abcdef', '1234567', '1'.repeat(10240), '١٢٣٤٥٦', '', wrongCode(s, start)];
    for (let i = 0; i < 10; i++) {
      assert.equal(await totp.verify('ada', s, bad[i % bad.length] as string), {
        ok: false,
        reason: 'invalid',
      });
      ctx.clock.advance(1000);
    }
    assert.ok(events.some((e) => e.type === 'mfa.locked'));
    assert.is(events.filter((e) => e.type === 'mfa.failed').length, 10);
    const locked = await totp.verify('ada', s, codeAt(s, ctx.clock.now()));
    assert.equal(locked, { ok: false, reason: 'locked', retryAfterMs: start + DAY - ctx.clock.now() });
    await ctx.advance(start + DAY - ctx.clock.now() + 1);
    assert.equal(await totp.verify('ada', s, codeAt(s, ctx.clock.now())), { ok: true });
  });

  test('throws InvalidInputError for a malformed user id, secret or code type, before any round trip', async (ctx) => {
    const totp = totpFor(ctx);
    const s = Totp.generateSecret();
    const trips = await ctx.roundTrips.measure(async () => {
      await rejects(totp.verify('', s, '123456'), (e) => e instanceof InvalidInputError, 'bad user');
      await rejects(
        totp.verify('ada', 'JBSWY3DP', '123456'),
        (e) => e instanceof InvalidInputError,
        'short secret',
      );
      await rejects(totp.verify('ada', '!!!', '123456'), (e) => e instanceof InvalidInputError, 'bad secret');
      await rejects(
        totp.verify('ada', s, 123456 as unknown as string),
        (e) => e instanceof InvalidInputError,
        'code',
      );
    });
    assert.is(trips, 0);
  });
});
