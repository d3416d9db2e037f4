import { seededRandom, TestClock } from '@latchkey/testing';
import { type BackendContext, backendSuite, realRedisSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  KeySpace,
  type LoginCheckResult,
  LoginLimiter,
  type LoginLimiterOptions,
  type LoginPolicyConfig,
  type LoginReservation,
  type RedisClient,
  type SecurityEvent,
  ServerSecret,
  StoreUnavailableError,
} from '../src/index.js';
import { eventually } from './helpers/assertions.js';
import { type OwnRedis, startOwnRedis } from './helpers/own-redis.js';

const HOUR = 3_600_000;
/** Limiter keys outlive their window by one second (clock skew between servers). */
const KEY_SLACK_MS = 1000;
const secret = ServerSecret.generate();

/** The entries of a stored limiter log (`<to>,<n>,<from>,<label>;` each), as [to, n] pairs. */
async function logEntries(ctx: BackendContext, key: string): Promise<Array<[number, number]>> {
  const value = (await ctx.redis.get(key)) ?? '';
  return [...value.matchAll(/(\d+),(\d+),(\d*),(\d+);/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** Attempts a stored limiter log counts (every entry it holds; a reservation rewrites it pruned). */
async function logCount(ctx: BackendContext, key: string): Promise<number> {
  return (await logEntries(ctx, key)).reduce((sum, [, n]) => sum + n, 0);
}

function limiterFor(ctx: BackendContext, options: Partial<LoginLimiterOptions> = {}): LoginLimiter {
  return new LoginLimiter({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, secret, ...options });
}

/** check + settle('failure'), asserting the attempt was allowed. */
async function fail(limiter: LoginLimiter, identifier: string, ip: string): Promise<LoginCheckResult> {
  const result = await limiter.check(identifier, ip);
  assert.ok(result.allowed, `expected an allowed attempt for ${identifier} from ${ip}`);
  await limiter.settle(result.reservation as LoginReservation, 'failure');
  return result;
}

async function succeed(limiter: LoginLimiter, identifier: string, ip: string): Promise<void> {
  const result = await limiter.check(identifier, ip);
  assert.ok(result.allowed, `expected an allowed attempt for ${identifier} from ${ip}`);
  await limiter.settle(result.reservation as LoginReservation, 'success');
}

/** Removes one reservation made at `at` from a model log, if it is there. */
function takeBack(log: number[], at: number): void {
  const i = log.indexOf(at);
  if (i >= 0) log.splice(i, 1);
}

/**
 * The reference model of the account+IP and IP policies: every reservation's instant, kept in plain
 * arrays; a policy counts the instants less than one window old. What a check answers follows the
 * documented rules (Retry-After until enough counted attempts are one window old, or the back-off).
 */
class SlidingLogModel {
  readonly #logs = new Map<string, number[]>();
  readonly #policies: readonly LoginPolicyConfig[];
  readonly #backoff: { initialMs: number; maxMs: number } | null;

  constructor(limiter: LoginLimiter, options: Partial<LoginLimiterOptions>) {
    this.#policies = limiter.policies;
    const backoff = options.accountIp?.backoff;
    this.#backoff = typeof backoff === 'object' ? (backoff as { initialMs: number; maxMs: number }) : null;
  }

  check(account: string, ip: string, now: number): unknown {
    const logs = [this.#log(`ai ${ip} ${account}`), this.#log(`ip ${ip}`)];
    const states = this.#policies.map((config, i) => {
      const live = (logs[i] as number[]).filter((t) => t > now - config.windowMs);
      let until: number | null = live.length === 0 ? null : (live[0] as number) + config.windowMs;
      let blocked = false;
      if (live.length >= config.limit) {
        blocked = true;
        until = (live[live.length - config.limit] as number) + config.windowMs;
      } else if (i === 0 && this.#backoff !== null && live.length > 0) {
        const wait = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (live.length - 1));
        const newest = live[live.length - 1] as number;
        if (newest > now - wait) {
          blocked = true;
          until = newest + wait;
        }
      }
      return { config, blocked, count: live.length, until };
    });
    const allowed = states.every((s) => !s.blocked);
    const policies = states.map(({ config, blocked, count, until }) => ({
      ...config,
      remaining: blocked ? 0 : Math.max(0, config.limit - count - (allowed ? 1 : 0)),
      blocked,
      resetAfterMs:
        until === null
          ? allowed
            ? config.windowMs
            : 0
          : Math.min(config.windowMs, Math.max(blocked ? 1 : 0, until - now)),
    }));
    if (allowed) {
      for (const log of logs) log.push(now);
      return {
        allowed,
        remaining: Math.min(...policies.map((p) => p.remaining)),
        retryAfterMs: 0,
        blockedBy: undefined,
        policies,
      };
    }
    let blocking = policies.find((p) => p.blocked) as (typeof policies)[number];
    for (const p of policies) if (p.blocked && p.resetAfterMs > blocking.resetAfterMs) blocking = p;
    return {
      allowed,
      remaining: 0,
      retryAfterMs: blocking.resetAfterMs,
      blockedBy: blocking.policy,
      policies,
    };
  }

  settle(account: string, ip: string, at: number, outcome: 'success' | 'failure' | 'release'): void {
    if (outcome === 'failure') return;
    const ai = this.#log(`ai ${ip} ${account}`);
    if (outcome === 'success') ai.length = 0;
    else takeBack(ai, at);
    takeBack(this.#log(`ip ${ip}`), at);
  }

  #log(key: string): number[] {
    let log = this.#logs.get(key);
    if (log === undefined) {
      log = [];
      this.#logs.set(key, log);
    }
    return log;
  }
}

/** A client whose every command fails the way a lost connection does. */
function unreachableRedis(): RedisClient {
  const client: Record<string, unknown> = {
    defineCommand(name: string) {
      client[name] = () => Promise.reject(new Error('Connection is closed.'));
    },
  };
  return client as unknown as RedisClient;
}

// ---------------------------------------------------------------------------------------------------

const options = suite('LoginLimiter options');

options('resolves the documented defaults: 5 per account+IP and 100 per IP per hour, no per-account', () => {
  const limiter = new LoginLimiter({ redis: unreachableRedis(), secret });
  assert.equal(
    limiter.policies.map((p) => ({ ...p })),
    [
      { policy: 'account-ip', limit: 5, windowMs: HOUR },
      { policy: 'ip', limit: 100, windowMs: HOUR },
    ],
  );
  const withAccount = new LoginLimiter({ redis: unreachableRedis(), secret, account: true });
  assert.equal({ ...withAccount.policies[2] }, { policy: 'account', limit: 100, windowMs: 24 * HOUR });
  assert.ok(Object.isFrozen(limiter.policies));
});

options('rejects broken options with InvalidOptionError naming the option', () => {
  const redis = unreachableRedis();
  const cases: Array<[Partial<LoginLimiterOptions>, RegExp]> = [
    [{ accountIp: { maxFailures: 0 } }, /accountIp\.maxFailures/],
    [{ accountIp: { windowMs: 1.5 } }, /accountIp\.windowMs/],
    [{ ip: { maxFailures: -1 } }, /ip\.maxFailures/],
    [{ ip: { windowMs: 2 ** 31 } }, /ip\.windowMs/],
    [{ account: { maxFailures: Number.NaN } }, /account\.maxFailures/],
    [{ accountIp: { backoff: { initialMs: 5000, maxMs: 1000 } } }, /backoff\.maxMs/],
    [{ accountIp: { windowMs: 10_000, backoff: { maxMs: 20_000 } } }, /backoff\.maxMs/],
    [{ failOpen: { maxEntries: 0 } }, /failOpen\.maxEntries/],
    [{ knownDeviceTtlMs: 0 }, /knownDeviceTtlMs/],
  ];
  for (const [extra, name] of cases) {
    assert.throws(
      () => new LoginLimiter({ redis, secret, ...extra } as LoginLimiterOptions),
      (e: unknown) => e instanceof InvalidOptionError && name.test(e.message),
      name.source,
    );
  }
  assert.throws(
    () => new LoginLimiter({ redis, secret: 'x'.repeat(64) } as unknown as LoginLimiterOptions),
    (e: unknown) => e instanceof InvalidOptionError && /secret/.test(e.message),
  );
});

options.run();

// ---------------------------------------------------------------------------------------------------

const devices = suite('LoginLimiter known-device tokens');

devices('a token verifies for the account it was minted for, whatever the spelling', () => {
  const limiter = new LoginLimiter({ redis: unreachableRedis(), secret, account: true });
  const token = limiter.issueKnownDevice('Alice@Example.com');
  assert.match(token, /^kd1\.\d+\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
  assert.ok(limiter.verifyKnownDevice(' alice@example.COM ', token));
  assert.not.ok(limiter.verifyKnownDevice('bob@example.com', token));
});

devices('tampered, foreign, expired and garbage tokens do not verify', () => {
  const clock = new TestClock();
  const limiter = new LoginLimiter({ redis: unreachableRedis(), secret, clock, knownDeviceTtlMs: 1000 });
  const other = new LoginLimiter({ redis: unreachableRedis(), secret: ServerSecret.generate(), clock });
  const token = limiter.issueKnownDevice('a@x.io');
  const [, at, nonce, mac] = token.split('.');
  assert.not.ok(limiter.verifyKnownDevice('a@x.io', `kd1.${Number(at) + 1}.${nonce}.${mac}`));
  assert.not.ok(limiter.verifyKnownDevice('a@x.io', `kd1.${at}.${nonce}.${mac?.slice(1)}A`));
  assert.not.ok(limiter.verifyKnownDevice('a@x.io', other.issueKnownDevice('a@x.io')));
  for (const bad of [undefined, '', 'kd1', 42, 'x'.repeat(10_000), `${token}.x`]) {
    assert.not.ok(limiter.verifyKnownDevice('a@x.io', bad), String(bad).slice(0, 20));
  }
  assert.not.ok(limiter.verifyKnownDevice('', token), 'an invalid identifier never verifies');
  clock.advance(999);
  assert.ok(limiter.verifyKnownDevice('a@x.io', token));
  clock.advance(1);
  assert.not.ok(limiter.verifyKnownDevice('a@x.io', token), 'expired');
});

devices.run();

// ---------------------------------------------------------------------------------------------------

const outage = suite('LoginLimiter when Redis is unreachable');

outage('fails closed by default: check throws StoreUnavailableError', async () => {
  const limiter = new LoginLimiter({ redis: unreachableRedis(), secret });
  await limiter.check('a@x.io', '192.0.2.1').then(
    () => assert.unreachable('must not allow'),
    (e: unknown) => assert.instance(e, StoreUnavailableError),
  );
  await limiter.hit('register', '192.0.2.1').then(
    () => assert.unreachable('must not allow'),
    (e: unknown) => assert.instance(e, StoreUnavailableError),
  );
});

outage('failOpen enforces the same policies in process memory, marked degraded', async () => {
  const clock = new TestClock();
  const limiter = new LoginLimiter({
    redis: unreachableRedis(),
    secret,
    clock,
    ip: { maxFailures: 8 },
    failOpen: true,
  });
  for (let i = 0; i < 5; i++) {
    const r = await limiter.check('a@x.io', '192.0.2.1');
    assert.ok(r.allowed && r.degraded);
    assert.is(r.reservation?.degraded, true);
    await limiter.settle(r.reservation as LoginReservation, 'failure');
  }
  const blocked = await limiter.check('a@x.io', '192.0.2.1');
  assert.is(blocked.allowed, false);
  assert.is(blocked.blockedBy, 'account-ip');
  assert.is(blocked.retryAfterMs, HOUR);
  // A success elsewhere clears that account's counter but never the IP's.
  const ok = await limiter.check('b@x.io', '192.0.2.1');
  await limiter.settle(ok.reservation as LoginReservation, 'success');
  for (let i = 0; i < 3; i++) await limiter.check('c@x.io', '192.0.2.1');
  const ipBlocked = await limiter.check('d@x.io', '192.0.2.1');
  assert.is(ipBlocked.blockedBy, 'ip');
  clock.advance(HOUR);
  assert.ok((await limiter.check('a@x.io', '192.0.2.1')).allowed, 'fixed windows end');
});

outage('failOpen lets at most maxPerWindow attempts through, then fails closed', async () => {
  const clock = new TestClock();
  const limiter = new LoginLimiter({
    redis: unreachableRedis(),
    secret,
    clock,
    failOpen: { maxPerWindow: 3 },
  });
  for (let i = 0; i < 3; i++) assert.ok((await limiter.check(`u${i}@x.io`, `192.0.2.${i}`)).allowed);
  await limiter.check('u9@x.io', '192.0.2.9').then(
    () => assert.unreachable('the allowance is spent'),
    (e: unknown) => assert.instance(e, StoreUnavailableError),
  );
  clock.advance(HOUR);
  assert.ok((await limiter.check('u9@x.io', '192.0.2.9')).allowed, 'a new window, a new allowance');
});

outage('failOpen keeps at most maxEntries counters and refuses new keys rather than evict', async () => {
  const limiter = new LoginLimiter({
    redis: unreachableRedis(),
    secret,
    clock: new TestClock(),
    failOpen: { maxEntries: 4 },
  });
  // Each new account+IP pair from a new IP needs two counters.
  assert.ok((await limiter.check('a@x.io', '192.0.2.1')).allowed);
  assert.ok((await limiter.check('b@x.io', '192.0.2.2')).allowed);
  await limiter.check('c@x.io', '192.0.2.3').then(
    () => assert.unreachable('the fallback is full'),
    (e: unknown) => assert.instance(e, StoreUnavailableError),
  );
  assert.ok((await limiter.check('a@x.io', '192.0.2.1')).allowed, 'known counters still work');
});

outage.run();

// ---------------------------------------------------------------------------------------------------

backendSuite('LoginLimiter.check', (test) => {
  test('30 parallel attempts with a limit of 5: exactly 5 are allowed, the rest refused', async (ctx) => {
    const limiter = limiterFor(ctx);
    const results = await Promise.all(
      Array.from({ length: 30 }, () => limiter.check('victim@example.com', '198.51.100.7')),
    );
    const allowed = results.filter((r) => r.allowed);
    assert.is(allowed.length, 5);
    for (const r of results.filter((x) => !x.allowed)) {
      assert.is(r.blockedBy, 'account-ip');
      assert.is(r.reservation, null);
      assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= HOUR);
    }
    // The unsettled reservations already count: a 31st attempt is refused too.
    assert.is((await limiter.check('victim@example.com', '198.51.100.7')).allowed, false);
  });

  test('parallel attempts on many accounts from one IP never pass the per-IP limit', async (ctx) => {
    const limiter = limiterFor(ctx, { ip: { maxFailures: 10 } });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => limiter.check(`user${i % 20}@example.com`, '198.51.100.8')),
    );
    assert.is(results.filter((r) => r.allowed).length, 10);
    assert.ok(results.filter((r) => !r.allowed).every((r) => r.blockedBy === 'ip'));
  });

  test('the 6th attempt is refused before any password check, even with the right password', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 0; i < 5; i++) {
      const r = await fail(limiter, 'alice@example.com', '192.0.2.10');
      assert.is(r.remaining, 4 - i);
    }
    const sixth = await limiter.check('alice@example.com', '192.0.2.10');
    assert.is(sixth.allowed, false);
    assert.is(sixth.remaining, 0);
    assert.is(sixth.blockedBy, 'account-ip');
  });

  test('an IPv4 client seen as ::ffff:a.b.c.d counts in the IPv4 bucket, not a shared IPv6 /64', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 0; i < 5; i++) await fail(limiter, 'bob@example.com', '::ffff:203.0.113.5');
    assert.is((await limiter.check('bob@example.com', '203.0.113.5')).allowed, false, 'same client');
    assert.ok(
      (await limiter.check('bob@example.com', '::ffff:203.0.113.6')).allowed,
      'its neighbour is its own',
    );
  });

  test('IPv6 clients count per /64: a host cannot escape by rotating its interface id', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 1; i <= 5; i++) await fail(limiter, 'ursula@example.com', `2001:db8:1:2::${i}`);
    assert.is((await limiter.check('ursula@example.com', '2001:db8:1:2:ffff::9')).blockedBy, 'account-ip');
    assert.ok((await limiter.check('ursula@example.com', '2001:db8:1:3::1')).allowed, 'the next /64');
  });

  test('another IP is not blocked by account+IP failures', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 0; i < 5; i++) await fail(limiter, 'carol@example.com', '192.0.2.20');
    assert.is((await limiter.check('carol@example.com', '192.0.2.20')).allowed, false);
    const elsewhere = await limiter.check('carol@example.com', '192.0.2.21');
    assert.ok(elsewhere.allowed);
    assert.is(elsewhere.remaining, 4);
  });

  test('the per-IP policy blocks across accounts', async (ctx) => {
    const limiter = limiterFor(ctx, { ip: { maxFailures: 10 } });
    for (let i = 0; i < 10; i++) await fail(limiter, `spray${i}@example.com`, '192.0.2.30');
    const next = await limiter.check('fresh@example.com', '192.0.2.30');
    assert.is(next.allowed, false);
    assert.is(next.blockedBy, 'ip');
    assert.ok((await limiter.check('fresh@example.com', '192.0.2.31')).allowed);
  });

  test('an unknown account and a known one are counted the same way (only the identifier matters)', async (ctx) => {
    const limiter = limiterFor(ctx);
    const trace = async (identifier: string) => {
      const out: Array<[boolean, number]> = [];
      for (let i = 0; i < 7; i++) {
        const r = await limiter.check(identifier, '192.0.2.40');
        out.push([r.allowed, r.remaining]);
        if (r.reservation !== null) await limiter.settle(r.reservation, 'failure');
      }
      return out;
    };
    assert.equal(await trace('exists@example.com'), await trace('no-such-user@example.com'));
  });

  test('Retry-After is the time until the oldest counted failure leaves the window', async (ctx) => {
    const limiter = limiterFor(ctx);
    const start = ctx.clock.now();
    for (let i = 0; i < 5; i++) {
      await fail(limiter, 'dave@example.com', '192.0.2.50');
      await ctx.advance(10 * 60_000);
    }
    // now = start + 50 min; the first failure (at start) leaves at start + 60 min.
    const blocked = await limiter.check('dave@example.com', '192.0.2.50');
    assert.is(blocked.retryAfterMs, start + HOUR - ctx.clock.now());
    assert.is(blocked.retryAfterMs, 10 * 60_000);
    await ctx.advance(blocked.retryAfterMs - 1);
    assert.is((await limiter.check('dave@example.com', '192.0.2.50')).allowed, false, '1 ms early');
    await ctx.advance(1);
    const again = await limiter.check('dave@example.com', '192.0.2.50');
    assert.ok(again.allowed, 'the sliding window admits one attempt');
    assert.is(again.remaining, 0);
  });

  test('windows expire through the clock and leave zero keys behind', async (ctx) => {
    const limiter = limiterFor(ctx, { account: true });
    for (let i = 0; i < 5; i++) await fail(limiter, 'erin@example.com', '192.0.2.60');
    await limiter.check('erin@example.com', '192.0.2.61'); // never settled
    await limiter.hit('register', '192.0.2.60', { limit: 3, windowMs: 60_000 });
    assert.equal(await ctx.keysWithoutTtl(), []);
    await ctx.advance(HOUR);
    assert.ok(
      (await limiter.check('erin@example.com', '192.0.2.60')).allowed,
      'the account+IP window passed',
    );
    await ctx.advance(24 * HOUR + KEY_SLACK_MS);
    assert.equal(await ctx.keys(), []);
  });

  test('the next check prunes exactly the failures that left the window, in every log', async (ctx) => {
    const limiter = limiterFor(ctx, { account: { windowMs: 45 * 60_000 } });
    const ip = '192.0.2.200';
    for (let i = 0; i < 3; i++) await fail(limiter, 'pru@example.com', ip);
    await ctx.advance(30 * 60_000);
    for (let i = 0; i < 2; i++) await fail(limiter, 'pru@example.com', ip);
    await ctx.advance(30 * 60_000); // the first three are exactly one account+IP and IP window old
    const r = await limiter.check('pru@example.com', ip);
    assert.ok(r.allowed);
    assert.equal(
      r.policies.map((p) => [p.policy, p.remaining, p.resetAfterMs]),
      [
        ['account-ip', 2, 30 * 60_000],
        ['ip', 97, 30 * 60_000],
        ['account', 97, 15 * 60_000],
      ],
    );
    const space = new KeySpace(ctx.prefix);
    const digest = limiter.accountDigest('pru@example.com');
    assert.is(await logCount(ctx, space.loginAccountIp(ip, digest)), 3, 'two live failures and this one');
    assert.is(await logCount(ctx, space.loginIp(ip)), 3);
    assert.is(await logCount(ctx, space.loginAccount(digest)), 3);
    assert.equal(await ctx.keysWithoutTtl(), []);
  });

  test('when one failure left the window, the next oldest sets the reset time and the count', async (ctx) => {
    const limiter = limiterFor(ctx);
    const ip = '192.0.2.201';
    await fail(limiter, 'one@example.com', ip);
    await ctx.advance(10 * 60_000);
    for (let i = 0; i < 2; i++) await fail(limiter, 'one@example.com', ip);
    await ctx.advance(50 * 60_000); // only the first is exactly one window old
    const r = await limiter.check('one@example.com', ip);
    assert.ok(r.allowed);
    assert.equal(
      r.policies.map((p) => [p.policy, p.remaining, p.resetAfterMs]),
      [
        ['account-ip', 2, 10 * 60_000],
        ['ip', 97, 10 * 60_000],
      ],
    );
    const space = new KeySpace(ctx.prefix);
    const digest = limiter.accountDigest('one@example.com');
    assert.is(await logCount(ctx, space.loginAccountIp(ip, digest)), 3);
    assert.is(await logCount(ctx, space.loginIp(ip)), 3);
  });

  test('short logs are pruned and counted exactly: one of two left, then both', async (ctx) => {
    const limiter = limiterFor(ctx);
    const ip = '192.0.2.202';
    await fail(limiter, 'two@example.com', ip);
    await ctx.advance(10 * 60_000);
    await fail(limiter, 'two@example.com', ip);
    await ctx.advance(50 * 60_000); // the first is exactly one window old, the second is not
    const r = await limiter.check('two@example.com', ip);
    assert.equal(
      r.policies.map((p) => [p.policy, p.remaining, p.resetAfterMs]),
      [
        ['account-ip', 3, 10 * 60_000],
        ['ip', 98, 10 * 60_000],
      ],
    );
    await limiter.settle(r.reservation as LoginReservation, 'release');
    await ctx.advance(HOUR); // now both are old
    const later = await limiter.check('two@example.com', ip);
    assert.equal(
      later.policies.map((p) => [p.policy, p.remaining, p.resetAfterMs]),
      [
        ['account-ip', 4, HOUR],
        ['ip', 99, HOUR],
      ],
    );
    const space = new KeySpace(ctx.prefix);
    assert.is(await logCount(ctx, space.loginIp(ip)), 1, 'only this reservation is left');
  });

  test('no 2x burst at a window edge: any span of one window admits at most the limit (the worst case)', async (ctx) => {
    const limiter = limiterFor(ctx);
    const ip = '192.0.2.203';
    const start = ctx.clock.now();
    // An attacker probes every 10 minutes and 1 ms either side of every hour edge for three hours,
    // failing as often as the limiter lets it each time. The clock starts at an arbitrary instant, so a
    // fixed (epoch-aligned) window would have an edge inside the first hour and admit a second burst there.
    const probes = new Set<number>();
    for (let at = 0; at <= 3 * HOUR; at += 10 * 60_000) probes.add(at);
    for (let k = 1; k <= 3; k++) for (const d of [-1, 0, 1]) probes.add(k * HOUR + d);
    const admitted: number[] = [];
    for (const at of [...probes].sort((a, b) => a - b)) {
      const delta = start + at - ctx.clock.now();
      if (delta > 0) await ctx.advance(delta);
      for (let i = 0; i < 10; i++) {
        const r = await limiter.check('edge@example.com', ip);
        if (!r.allowed) break;
        await limiter.settle(r.reservation as LoginReservation, 'failure');
        admitted.push(at);
      }
    }
    for (const t of admitted) {
      const inSpan = admitted.filter((u) => u >= t && u < t + HOUR).length;
      assert.ok(inSpan <= 5, `${inSpan} attempts admitted in the hour from +${t} ms`);
    }
    // Worst case pinned: the limit at once, then nothing until that burst is a whole window old
    // (not at the edge -1 ms), so two bursts are always a full window apart, never 2x in one span.
    const burst = (at: number) => Array.from({ length: 5 }, () => at);
    assert.equal(admitted, [...burst(0), ...burst(HOUR), ...burst(2 * HOUR), ...burst(3 * HOUR)]);
  });

  test('a log keeps at most 16 entries whatever the limit, and still counts every attempt', async (ctx) => {
    const limiter = limiterFor(ctx, { ip: { maxFailures: 100 } });
    const ip = '192.0.2.204';
    const start = ctx.clock.now();
    for (let i = 0; i < 100; i++) {
      await fail(limiter, `many${i}@example.com`, ip); // 100 distinct instants, 1 s apart
      await ctx.advance(1000);
    }
    const refused = await limiter.check('many@example.com', ip);
    assert.is(refused.blockedBy, 'ip', 'the 101st attempt in the window');
    // An exact log reopens when the first failure is one window old; a merged entry holds its
    // attempts until its newest is, at most one slot (1/15 window) later.
    const exact = start + HOUR - ctx.clock.now();
    assert.ok(
      refused.retryAfterMs >= exact && refused.retryAfterMs <= exact + HOUR / 15,
      `${refused.retryAfterMs}`,
    );
    const key = new KeySpace(ctx.prefix).loginIp(ip);
    const entries = await logEntries(ctx, key);
    assert.ok(entries.length <= 16, `${entries.length} entries`);
    assert.is(await logCount(ctx, key), 100);
    assert.ok(((await ctx.redis.get(key)) ?? '').length <= 16 * 45, 'bounded bytes');
  });

  test('past 16 live instants any span of one window still admits at most the limit, none held over a slot late', async (ctx) => {
    const limit = 40;
    const slot = HOUR / 15;
    const limiter = limiterFor(ctx, { accountIp: { maxFailures: 1000 }, ip: { maxFailures: limit } });
    const ip = '192.0.2.205';
    const admitted: number[] = [];
    // One attempt every 37 s for three hours: far more distinct instants than a log keeps entries.
    for (let step = 0; step < (3 * HOUR) / 37_000; step++) {
      if (step > 0) await ctx.advance(37_000);
      const now = ctx.clock.now();
      const r = await limiter.check('merge@example.com', ip);
      if (r.allowed) {
        await limiter.settle(r.reservation as LoginReservation, 'failure');
        admitted.push(now);
        continue;
      }
      assert.is(r.blockedBy, 'ip');
      // The exact sliding log reopens when its live count drops below the limit (it may already
      // have: a merged attempt counts up to one slot longer, never shorter).
      const live = admitted.filter((t) => t > now - HOUR);
      const exactReopen = live.length < limit ? now : (live[live.length - limit] as number) + HOUR;
      assert.ok(
        r.retryAfterMs >= exactReopen - now && r.retryAfterMs <= exactReopen - now + slot,
        `retry after ${r.retryAfterMs}, exact ${exactReopen - now}`,
      );
    }
    for (const t of admitted) {
      const inSpan = admitted.filter((u) => u >= t && u < t + HOUR).length;
      assert.ok(inSpan <= limit, `${inSpan} attempts admitted in the hour from ${t}`);
    }
    assert.ok(admitted.length >= 2 * limit, `${admitted.length} admitted: the log does reopen`);
    const entries = await logEntries(ctx, new KeySpace(ctx.prefix).loginIp(ip));
    assert.ok(entries.length <= 16, `${entries.length} entries`);
  });

  test('release takes a reservation back from inside a merged entry', async (ctx) => {
    const limiter = limiterFor(ctx, { ip: { maxFailures: 100 } });
    const ip = '192.0.2.206';
    const held = await limiter.check('held@example.com', ip);
    for (let i = 0; i < 30; i++) {
      await ctx.advance(1);
      await fail(limiter, `later${i}@example.com`, ip); // 30 more instants: the first ones merge
    }
    const key = new KeySpace(ctx.prefix).loginIp(ip);
    assert.ok((await logEntries(ctx, key)).length <= 16);
    await limiter.settle(held.reservation as LoginReservation, 'release');
    assert.is(await logCount(ctx, key), 30, 'the 30 failures stay, the reservation left');
    const next = await limiter.check('next@example.com', ip);
    assert.is(next.policies.find((p) => p.policy === 'ip')?.remaining, 69);
  });

  test('random sequences decide exactly as a plain sliding log of every attempt (fast and slow paths)', async (ctx) => {
    // At most 16 live instants per log (limits ≤ 16), so the bounded log must be exact: every check,
    // refusal, Retry-After and remaining count as a model that keeps each reservation's instant. The
    // steps mix new and old logs, same-millisecond attempts, pruning, refusals, back-off and settles.
    const configs: Array<Partial<LoginLimiterOptions>> = [
      { accountIp: { maxFailures: 4, windowMs: 60_000 }, ip: { maxFailures: 6, windowMs: 90_000 } },
      {
        accountIp: { maxFailures: 4, windowMs: 60_000, backoff: { initialMs: 1000, maxMs: 8000 } },
        ip: { maxFailures: 16, windowMs: 45_000 },
      },
    ];
    const advances = [0, 0, 1, 700, 3000, 15_000, 40_000];
    for (const [c, config] of configs.entries()) {
      const limiter = limiterFor(ctx, config);
      const model = new SlidingLogModel(limiter, config);
      const random = seededRandom(16 + c);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      for (let step = 0; step < 150; step++) {
        const advance = pick(advances);
        if (advance > 0) await ctx.advance(advance);
        const account = pick(['m1@example.com', 'm2@example.com', 'm3@example.com']);
        const ip = pick([`192.0.2.${210 + c * 2}`, `192.0.2.${211 + c * 2}`]);
        const now = Math.floor(ctx.clock.now());
        const result = await limiter.check(account, ip);
        const where = `config ${c}, step ${step}`;
        assert.equal(
          {
            allowed: result.allowed,
            remaining: result.remaining,
            retryAfterMs: result.retryAfterMs,
            blockedBy: result.blockedBy,
            policies: result.policies.map((p) => ({ ...p })),
          },
          model.check(account, ip, now),
          where,
        );
        if (result.reservation === null) continue;
        const outcome = pick(['failure', 'failure', 'failure', 'success', 'release'] as const);
        await limiter.settle(result.reservation, outcome);
        model.settle(account, ip, now, outcome);
      }
    }
  });

  test('a reservation never settled counts as a failure, then expires like one', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 0; i < 5; i++) assert.ok((await limiter.check('frank@example.com', '192.0.2.70')).allowed);
    assert.is((await limiter.check('frank@example.com', '192.0.2.70')).allowed, false);
    await ctx.advance(HOUR);
    assert.ok((await limiter.check('frank@example.com', '192.0.2.70')).allowed);
  });

  test('one round trip to check', async (ctx) => {
    const limiter = limiterFor(ctx);
    await limiter.check('warm@example.com', '192.0.2.80'); // registers the script
    assert.is(await ctx.roundTrips.measure(() => limiter.check('gina@example.com', '192.0.2.80')), 1);
    for (let i = 0; i < 5; i++) await limiter.check('gina@example.com', '192.0.2.80');
    assert.is(
      await ctx.roundTrips.measure(() => limiter.check('gina@example.com', '192.0.2.80')),
      1,
      'refused',
    );
  });

  test('garbage identifiers are refused with InvalidInputError before any Redis call', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (const bad of ['', '   ', 'x'.repeat(10 * 1024), undefined, null, 42, {}]) {
      const trips = await ctx.roundTrips.measure(() =>
        limiter.check(bad, '192.0.2.90').then(
          () => assert.unreachable('must refuse'),
          (e: unknown) => assert.instance(e, InvalidInputError),
        ),
      );
      assert.is(trips, 0);
    }
    assert.equal(await ctx.keys(), []);
  });

  test('unicode identifiers are normalized; a missing or garbage IP counts in the one unknown bucket', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 0; i < 5; i++) await fail(limiter, 'Jose\u0301@Ex.io', i % 2 === 0 ? '' : 'not-an-ip');
    const r = await limiter.check('jos\u00e9@ex.io', undefined);
    assert.is(r.allowed, false);
    const keys = await ctx.keys();
    assert.ok(keys.length > 0 && keys.every((k) => k.includes('{unknown}')), keys.join(' '));
  });

  test('no raw identifier reaches Redis: keys and values hold only its HMAC', async (ctx) => {
    const limiter = limiterFor(ctx, { account: true });
    await fail(limiter, 'Secret.Person@Example.com', '192.0.2.100');
    const dump = JSON.stringify(await ctx.dump());
    assert.not.match(dump.toLowerCase(), 'secret.person');
    assert.not.match(dump.toLowerCase(), 'example.com');
    assert.match(dump, limiter.accountDigest('secret.person@example.com'));
  });

  test('a refused attempt emits login.blocked with the policy and digests only', async (ctx) => {
    const events: SecurityEvent[] = [];
    const limiter = limiterFor(ctx, { onEvent: (e) => events.push(e) });
    for (let i = 0; i < 5; i++) await fail(limiter, 'hank@example.com', '192.0.2.110');
    await limiter.check('hank@example.com', '192.0.2.110');
    const blocked = events.filter((e) => e.type === 'login.blocked');
    assert.is(blocked.length, 1);
    assert.equal(blocked[0], {
      type: 'login.blocked',
      at: ctx.clock.now(),
      policy: 'account-ip',
      accountDigest: limiter.accountDigest('hank@example.com'),
      ipBucket: '192.0.2.110',
      retryAfterMs: HOUR,
    });
    assert.is(events.filter((e) => e.type === 'login.failed').length, 5);
    assert.not.match(JSON.stringify(events), 'hank');
  });

  test('optional back-off doubles the wait after each failure, up to its cap', async (ctx) => {
    const limiter = limiterFor(ctx, {
      accountIp: { maxFailures: 5, backoff: { initialMs: 1000, maxMs: 4000 } },
    });
    await fail(limiter, 'ivy@example.com', '192.0.2.120');
    let r = await limiter.check('ivy@example.com', '192.0.2.120');
    assert.is(r.allowed, false);
    assert.is(r.blockedBy, 'account-ip');
    assert.is(r.retryAfterMs, 1000);
    await ctx.advance(1000);
    await fail(limiter, 'ivy@example.com', '192.0.2.120');
    await ctx.advance(1999);
    assert.is((await limiter.check('ivy@example.com', '192.0.2.120')).retryAfterMs, 1);
    await ctx.advance(1);
    await fail(limiter, 'ivy@example.com', '192.0.2.120');
    r = await limiter.check('ivy@example.com', '192.0.2.120');
    assert.is(r.retryAfterMs, 4000);
    await ctx.advance(4000);
    await fail(limiter, 'ivy@example.com', '192.0.2.120');
    assert.is((await limiter.check('ivy@example.com', '192.0.2.120')).retryAfterMs, 4000, 'capped');
    // Parallel attempts serialize: the first reservation starts the back-off for the others.
    await ctx.advance(4000);
    const burst = await Promise.all(
      Array.from({ length: 5 }, () => limiter.check('ivy@example.com', '192.0.2.120')),
    );
    assert.is(burst.filter((x) => x.allowed).length, 1);
  });
});

backendSuite('LoginLimiter.settle', (test) => {
  test('the README quick start works as written', async (ctx) => {
    const { redis } = ctx;
    const users = {
      verify: async (email: string, password: string) =>
        email === 'a@x.io' && password === 'right' ? { email } : null,
    };
    // --- README ---
    const limiter = new LoginLimiter({ redis, secret, clock: ctx.clock, prefix: ctx.prefix });
    async function login(email: string, password: string, ip: string) {
      const attempt = await limiter.check(email, ip); // before any password check
      if (!attempt.allowed) return { status: 429, retryAfterMs: attempt.retryAfterMs };
      const user = await users.verify(email, password); // unknown emails too, in similar time
      await limiter.settle(attempt.reservation!, user ? 'success' : 'failure');
      return user ? { status: 200, user } : { status: 401 };
    }
    // --- end ---
    assert.is((await login('a@x.io', 'right', '192.0.2.1')).status, 200);
    for (let i = 0; i < 5; i++) assert.is((await login('a@x.io', 'wrong', '192.0.2.1')).status, 401);
    assert.equal(await login('a@x.io', 'right', '192.0.2.1'), { status: 429, retryAfterMs: HOUR });
  });

  test('success clears the account+IP failures', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (let i = 0; i < 4; i++) await fail(limiter, 'jack@example.com', '192.0.2.130');
    await succeed(limiter, 'jack@example.com', '192.0.2.130');
    const after = await limiter.check('jack@example.com', '192.0.2.130');
    assert.ok(after.allowed);
    assert.is(after.remaining, 4);
  });

  test('success does not clear the per-IP count, and is not counted as a failure there', async (ctx) => {
    const limiter = limiterFor(ctx, { ip: { maxFailures: 5 } });
    for (let i = 0; i < 4; i++) await fail(limiter, `other${i}@example.com`, '192.0.2.140');
    await succeed(limiter, 'kate@example.com', '192.0.2.140');
    const r = await limiter.check('kate@example.com', '192.0.2.140');
    assert.ok(r.allowed, 'the success released its own reservation');
    assert.is(r.policies.find((p) => p.policy === 'ip')?.remaining, 0, 'the 4 failures and this attempt');
    await limiter.settle(r.reservation as LoginReservation, 'failure');
    assert.is((await limiter.check('kate@example.com', '192.0.2.140')).blockedBy, 'ip');
  });

  test('release gives the attempt back to every policy', async (ctx) => {
    const limiter = limiterFor(ctx, { account: true });
    await fail(limiter, 'liam@example.com', '192.0.2.150');
    const r = await limiter.check('liam@example.com', '192.0.2.150');
    await limiter.settle(r.reservation as LoginReservation, 'release');
    const next = await limiter.check('liam@example.com', '192.0.2.150');
    assert.equal(
      next.policies.map((p) => p.remaining),
      [3, 98, 98],
    );
  });

  test('one round trip to settle a success, none for a failure', async (ctx) => {
    const limiter = limiterFor(ctx);
    await succeed(limiter, 'warm@example.com', '192.0.2.160'); // registers the scripts
    const a = await limiter.check('mia@example.com', '192.0.2.160');
    assert.is(
      await ctx.roundTrips.measure(() => limiter.settle(a.reservation as LoginReservation, 'success')),
      1,
    );
    const b = await limiter.check('mia@example.com', '192.0.2.160');
    assert.is(
      await ctx.roundTrips.measure(() => limiter.settle(b.reservation as LoginReservation, 'failure')),
      0,
    );
  });

  test('a reservation settles once, and only on the limiter that made it', async (ctx) => {
    const limiter = limiterFor(ctx);
    const other = limiterFor(ctx);
    const r = await limiter.check('noah@example.com', '192.0.2.170');
    const reservation = r.reservation as LoginReservation;
    await other.settle(reservation, 'success').then(
      () => assert.unreachable('foreign'),
      (e: unknown) => assert.instance(e, InvalidInputError),
    );
    for (const forged of [
      { ...reservation },
      Object.create(reservation),
      JSON.parse(JSON.stringify(reservation)),
    ]) {
      await limiter.settle(forged, 'success').then(
        () => assert.unreachable('forged'),
        (e: unknown) => assert.instance(e, InvalidInputError),
      );
    }
    await limiter.settle(reservation, 'bogus' as 'success').then(
      () => assert.unreachable('unknown outcome'),
      (e: unknown) => assert.instance(e, InvalidInputError),
    );
    await limiter.settle(reservation, 'failure');
    await limiter.settle(reservation, 'success').then(
      () => assert.unreachable('twice'),
      (e: unknown) => assert.instance(e, InvalidInputError),
    );
  });

  test('a success emits login.succeeded with digests only', async (ctx) => {
    const events: SecurityEvent[] = [];
    const limiter = limiterFor(ctx, { onEvent: (e) => events.push(e) });
    await succeed(limiter, 'olga@example.com', '::ffff:192.0.2.180');
    assert.equal(events, [
      {
        type: 'login.succeeded',
        at: ctx.clock.now(),
        accountDigest: limiter.accountDigest('olga@example.com'),
        ipBucket: '192.0.2.180',
      },
    ]);
  });
});

backendSuite('LoginLimiter per-account policy', (test) => {
  test('blocks an account across IPs once it is on', async (ctx) => {
    const limiter = limiterFor(ctx, { account: { maxFailures: 6 } });
    for (let i = 0; i < 6; i++) await fail(limiter, 'pat@example.com', `192.0.2.${i + 1}`);
    const r = await limiter.check('pat@example.com', '192.0.2.99');
    assert.is(r.allowed, false);
    assert.is(r.blockedBy, 'account');
    assert.is(r.retryAfterMs, 24 * HOUR);
  });

  test('a valid known-device token is exempt; a token of another account is not', async (ctx) => {
    const limiter = limiterFor(ctx, { account: { maxFailures: 3 } });
    const device = limiter.issueKnownDevice('quinn@example.com');
    for (let i = 0; i < 3; i++) await fail(limiter, 'quinn@example.com', `198.51.100.${i + 1}`);
    assert.is((await limiter.check('quinn@example.com', '192.0.2.1')).blockedBy, 'account');
    const own = await limiter.check('quinn@example.com', '192.0.2.1', { knownDevice: device });
    assert.ok(own.allowed, 'the owner on a known device is not locked out');
    assert.equal(
      own.policies.map((p) => p.policy),
      ['account-ip', 'ip'],
    );
    const foreign = limiterFor(ctx, { account: { maxFailures: 3 } }).issueKnownDevice('someone@example.com');
    const r = await limiter.check('quinn@example.com', '192.0.2.1', { knownDevice: foreign });
    assert.is(r.blockedBy, 'account');
  });

  test('parallel attempts from many IPs never pass the per-account limit', async (ctx) => {
    const limiter = limiterFor(ctx, { account: { maxFailures: 7 } });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => limiter.check('rose@example.com', `203.0.113.${i + 1}`)),
    );
    assert.is(results.filter((r) => r.allowed).length, 7);
    // A refused attempt gave back what the pair script had reserved: the IPs are not charged.
    const anIp = results.findIndex((r) => !r.allowed);
    const again = await limiterFor(ctx).check('x@example.com', `203.0.113.${anIp + 1}`);
    assert.is(again.policies.find((p) => p.policy === 'ip')?.remaining, 99);
  });

  test('success clears the account failures too', async (ctx) => {
    const limiter = limiterFor(ctx, { account: { maxFailures: 3 } });
    for (let i = 0; i < 2; i++) await fail(limiter, 'sam@example.com', `198.51.100.${i + 1}`);
    await succeed(limiter, 'sam@example.com', '198.51.100.50');
    const r = await limiter.check('sam@example.com', '198.51.100.51');
    assert.is(r.policies.find((p) => p.policy === 'account')?.remaining, 2);
  });

  test('a success on an exempt known device still clears the account failures', async (ctx) => {
    const limiter = limiterFor(ctx, { account: { maxFailures: 3 } });
    const device = limiter.issueKnownDevice('una@example.com');
    for (let i = 0; i < 2; i++) await fail(limiter, 'una@example.com', `198.51.100.${i + 1}`);
    const own = await limiter.check('una@example.com', '192.0.2.1', { knownDevice: device });
    assert.equal(
      own.policies.map((p) => p.policy),
      ['account-ip', 'ip'],
      'exempt',
    );
    await limiter.settle(own.reservation as LoginReservation, 'success');
    const elsewhere = await limiter.check('una@example.com', '203.0.113.1');
    assert.is(
      elsewhere.policies.find((p) => p.policy === 'account')?.remaining,
      2,
      'the run of failures ended',
    );
  });

  test('check and a successful settle are two concurrent round trips', async (ctx) => {
    const limiter = limiterFor(ctx, { account: true });
    await succeed(limiter, 'warm@example.com', '192.0.2.1');
    let r: LoginCheckResult | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        r = await limiter.check('tom@example.com', '192.0.2.2');
      }),
      2,
    );
    assert.is(
      await ctx.roundTrips.measure(() => limiter.settle(r?.reservation as LoginReservation, 'success')),
      2,
    );
    const device = limiter.issueKnownDevice('tom@example.com');
    assert.is(
      await ctx.roundTrips.measure(() =>
        limiter.check('tom@example.com', '192.0.2.2', { knownDevice: device }),
      ),
      1,
      'a known device skips the per-account script',
    );
  });
});

backendSuite('LoginLimiter.hit', (test) => {
  test('throttles an action per IP: every hit counts, refused hits do not', async (ctx) => {
    const limiter = limiterFor(ctx);
    const policy = { limit: 3, windowMs: 60_000 };
    for (let i = 0; i < 3; i++) {
      const r = await limiter.hit('password-reset', '::ffff:192.0.2.1', policy);
      assert.ok(r.allowed);
      assert.is(r.remaining, 2 - i);
      await ctx.advance(1000);
    }
    const refused = await limiter.hit('password-reset', '192.0.2.1', policy);
    assert.is(refused.allowed, false);
    assert.is(refused.retryAfterMs, 57_000);
    assert.ok((await limiter.hit('register', '192.0.2.1', policy)).allowed, 'another action');
    assert.ok((await limiter.hit('password-reset', '192.0.2.2', policy)).allowed, 'another IP');
    await ctx.advance(57_000);
    assert.ok((await limiter.hit('password-reset', '192.0.2.1', policy)).allowed);
  });

  test('a short hit log is pruned and counted exactly as its hits leave the window', async (ctx) => {
    const limiter = limiterFor(ctx);
    const policy = { limit: 3, windowMs: 60_000 };
    await limiter.hit('signup', '192.0.2.3', policy);
    await ctx.advance(10_000);
    await limiter.hit('signup', '192.0.2.3', policy);
    await ctx.advance(50_000); // the first hit is exactly one window old
    const r = await limiter.hit('signup', '192.0.2.3', policy);
    assert.equal([r.allowed, r.remaining, r.resetAfterMs], [true, 1, 10_000]);
    await ctx.advance(60_000); // both left
    const later = await limiter.hit('signup', '192.0.2.3', policy);
    assert.equal([later.allowed, later.remaining, later.resetAfterMs], [true, 2, 60_000]);
  });

  test('parallel hits never pass the limit, in one round trip each', async (ctx) => {
    const limiter = limiterFor(ctx);
    const results = await Promise.all(
      Array.from({ length: 25 }, () => limiter.hit('register', '192.0.2.3', { limit: 10 })),
    );
    assert.is(results.filter((r) => r.allowed).length, 10);
    assert.is(await ctx.roundTrips.measure(() => limiter.hit('register', '192.0.2.3', { limit: 10 })), 1);
  });

  test('throttle() resolves a policy once and counts with hit() on the same key', async (ctx) => {
    const limiter = limiterFor(ctx);
    const reset = limiter.throttle('password-reset', { limit: 2 });
    assert.equal([reset.action, reset.limit, reset.windowMs], ['password-reset', 2, HOUR]);
    assert.ok((await reset.hit('192.0.2.4')).allowed);
    assert.ok((await limiter.hit('password-reset', '192.0.2.4', { limit: 2 })).allowed);
    const refused = await reset.hit('192.0.2.4');
    assert.is(refused.allowed, false);
    assert.is(refused.retryAfterMs, HOUR);
    assert.throws(
      () => limiter.throttle('Bad Name'),
      (e: unknown) => e instanceof InvalidOptionError && /action/.test(e.message),
    );
    assert.throws(
      () => limiter.throttle('ok', { limit: 0 }),
      (e: unknown) => e instanceof InvalidOptionError && /limit/.test(e.message),
    );
  });

  test('refuses a malformed action name', async (ctx) => {
    const limiter = limiterFor(ctx);
    for (const bad of ['', 'Reset', 'a b', 'x'.repeat(33), '{tag}']) {
      await limiter.hit(bad, '192.0.2.1').then(
        () => assert.unreachable(bad),
        (e: unknown) => assert.instance(e, InvalidInputError),
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------------

realRedisSuite('LoginLimiter with Redis stopped and restarted', (test) => {
  let own: OwnRedis;

  test.before(async () => {
    own = await startOwnRedis({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
  });

  test.after(() => own.close());

  test('fails closed while Redis is down and recovers without a restart', async () => {
    const limiter = new LoginLimiter({
      redis: own.redis,
      secret,
      prefix: 'lkt-outage',
      commandTimeoutMs: 300,
    });
    assert.ok((await limiter.check('a@x.io', '192.0.2.1')).allowed);
    await own.server.stop();
    await limiter.check('a@x.io', '192.0.2.1').then(
      () => assert.unreachable('must fail closed'),
      (e: unknown) => assert.instance(e, StoreUnavailableError),
    );
    await own.server.start();
    await eventually(() => limiter.check('a@x.io', '192.0.2.1').then(() => true), 'Redis answers again');
    assert.ok((await limiter.check('a@x.io', '192.0.2.1')).allowed);
  });

  test('fails open onto the bounded fallback when told to, and back to Redis once it returns', async () => {
    const limiter = new LoginLimiter({
      redis: own.redis,
      secret,
      prefix: 'lkt-outage-open',
      commandTimeoutMs: 300,
      failOpen: { maxPerWindow: 2 },
    });
    await own.server.stop();
    const first = await limiter.check('a@x.io', '192.0.2.1');
    assert.ok(first.allowed && first.degraded);
    await limiter.settle(first.reservation as LoginReservation, 'success'); // in memory, no Redis
    assert.ok((await limiter.check('b@x.io', '192.0.2.1')).allowed);
    await limiter.check('c@x.io', '192.0.2.1').then(
      () => assert.unreachable('allowance spent'),
      (e: unknown) => assert.instance(e, StoreUnavailableError),
    );
    await own.server.start();
    await eventually(
      async () => (await limiter.check('d@x.io', '192.0.2.1')).degraded === false,
      'checks go to Redis again',
    );
  });
});
