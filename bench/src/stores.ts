// The store micro-benchmarks, run by bench/src/main.ts as a child process on the bench's redis-server:
// direct calls (no HTTP) of each store operation — throughput with many calls in flight, latency of
// one call alone, round trips and Redis commands per call —, the cost of a lookup with 10k vs 1M
// sessions stored, MEMORY USAGE of what a login stores, and zero keys after every lifetime.
// Every loop is bounded by a count and a time; the result goes back over IPC.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AccessTokens,
  generateDevelopmentKey,
  KeyRing,
  LoginLimiter,
  OneTimeCodes,
  RefreshTokens,
  ServerSecret,
  SessionStore,
} from '@latchkey/core';
import { countRoundTrips } from '@latchkey/testing';
import { Redis } from 'ioredis';
import { commandStats, diffStats, total } from './redis-stats.js';
import type { GrowthResult, LifetimeRow, MemoryRow, StoreOpResult, StoreResults } from './stores-types.js';

const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? '';
if (!REDIS_URL.startsWith('redis://127.0.0.1:')) throw new Error('run through bench/src/main.ts');
const OP_MS = Number(process.env['BENCH_STORE_OP_MS'] ?? 2000);
const GROWTH_KEYS = Number(process.env['BENCH_GROWTH_KEYS'] ?? 1_000_000);
const QUICK = process.env['BENCH_QUICK'] === '1';
const CONCURRENCY = 32;
const SOLO_MAX = QUICK ? 200 : 2000;
const USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

type Call = () => Promise<unknown>;
/** Hands out the next call, or null when a prepared pool is used up. */
type NextCall = () => Call | null;

interface Stores {
  readonly sessions: SessionStore<{ theme: string; locale: string }>;
  readonly refresh: RefreshTokens;
  readonly codes: OneTimeCodes;
}

interface OpSpec {
  readonly op: string;
  readonly what: string;
  /** Builds a call source for `size` calls at most (`size` may be ignored for unbounded ops). */
  prepare(stores: Stores, size: number): Promise<NextCall>;
}

const admin = new Redis(REDIS_URL);
const plain = new Redis(REDIS_URL);
const counted = new Redis(REDIS_URL);
const counter = countRoundTrips(counted);
const secret = ServerSecret.generate();
const notes: string[] = [];
const log = (line: string): void => console.log(`  stores: ${line}`);

function makeStores(redis: Redis, prefix: string): Stores {
  return {
    sessions: new SessionStore<{ theme: string; locale: string }>({ redis, prefix }),
    refresh: new RefreshTokens({ redis, prefix, secret }),
    codes: new OneTimeCodes({
      redis,
      prefix,
      secret,
      resendCooldownMs: 0,
      issueLimits: [],
    }),
  };
}

const DATA = { theme: 'dark', locale: 'en-GB' };
const META = { ip: '203.0.113.7', userAgent: USER_AGENT };

async function createMany(stores: Stores, users: number, perUser: number, tag: string): Promise<string[][]> {
  const out: string[][] = [];
  for (let u = 0; u < users; u++) {
    const created = await Promise.all(
      Array.from({ length: perUser }, () => stores.sessions.create(`${tag}-${u}`, DATA, META)),
    );
    out.push(created.map((c) => c.token));
  }
  return out;
}

let uniq = 0;
const OPS: OpSpec[] = [
  {
    op: 'session create',
    what: 'a new user each call (cap and index pruning included)',
    async prepare(stores) {
      return () => () => stores.sessions.create(`create-${uniq++}`, DATA, META);
    },
  },
  {
    op: 'session get',
    what: '100 live sessions, sliding renewal',
    async prepare(stores) {
      const tokens = (await createMany(stores, 100, 1, `get-${uniq++}`)).flat();
      let i = 0;
      return () => {
        const token = tokens[i++ % tokens.length]!;
        return () => stores.sessions.get(token);
      };
    },
  },
  {
    op: 'session update',
    what: 'one data field of one of 100 sessions',
    async prepare(stores) {
      const tokens = (await createMany(stores, 100, 1, `update-${uniq++}`)).flat();
      let i = 0;
      return () => {
        const n = i++;
        const token = tokens[n % tokens.length]!;
        return () => stores.sessions.update(token, { theme: n % 2 === 0 ? 'light' : 'dark' });
      };
    },
  },
  {
    op: 'refresh rotate',
    what: '64 sessions, each its own rotation chain (reuse detection, idle renewal)',
    async prepare(stores) {
      const run = uniq++;
      const free: string[] = [];
      for (let u = 0; u < 64; u++) {
        const { session } = await stores.sessions.create(`rotate-${run}-${u}`, DATA, META);
        const token = await stores.refresh.issue(session);
        if (token === null) throw new Error('refresh issue failed');
        free.push(token);
      }
      // A chain is never rotated twice at once: that would be reuse and revoke the session.
      return () => {
        const token = free.pop();
        if (token === undefined) return null;
        return async () => {
          const rotated = await stores.refresh.rotate(token);
          if (rotated === null) throw new Error('refresh rotate failed');
          free.push(rotated.token);
        };
      };
    },
  },
  {
    op: 'code verify',
    what: 'the right code, consumed (one code per subject, issued beforehand)',
    async prepare(stores, size) {
      const pool: Array<{ subject: string; code: string }> = [];
      const run = uniq++;
      for (let start = 0; start < size; start += 500) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(500, size - start) }, async (_, j) => {
            const subject = `code-${run}-${start + j}@example.com`;
            const issued = await stores.codes.issue({ subject, purpose: 'verify-email' });
            if (!issued.ok) throw new Error(`code issue refused: ${issued.reason}`);
            return { subject, code: issued.code };
          }),
        );
        pool.push(...batch);
      }
      let i = 0;
      return () => {
        const next = pool[i++];
        if (next === undefined) return null;
        return async () => {
          const result = await stores.codes.verify({ ...next, purpose: 'verify-email' });
          if (!result.ok) throw new Error(`code verify failed: ${result.reason}`);
        };
      };
    },
  },
  {
    op: 'revokeAllForUser',
    what: 'a user with 10 live sessions',
    async prepare(stores, size) {
      const run = uniq++;
      const users = Math.max(1, Math.min(size, QUICK ? 300 : 2000));
      await createMany(stores, users, 10, `revoke-${run}`);
      let i = 0;
      return () => {
        const u = i++;
        if (u >= users) return null;
        return async () => {
          const n = await stores.sessions.revokeAllForUser(`revoke-${run}-${u}`);
          if (n !== 10) throw new Error(`revokeAllForUser ended ${n} sessions, expected 10`);
        };
      };
    },
  },
];

/** Runs calls from `next` with `concurrency` in flight until `ms` pass or the pool is used up. */
async function throughput(next: NextCall, concurrency: number, ms: number): Promise<number> {
  const start = performance.now();
  const deadline = start + ms;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const call = next();
      if (call === null) return;
      await call();
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / ((performance.now() - start) / 1000);
}

/** Mean µs of one call alone (sequential), bounded by count and by a quarter of `ms`. */
async function solo(next: NextCall, ms: number): Promise<number> {
  const deadline = performance.now() + ms / 4;
  let n = 0;
  const start = performance.now();
  while (n < SOLO_MAX && performance.now() < deadline) {
    const call = next();
    if (call === null) break;
    await call();
    n++;
  }
  return n === 0 ? Number.NaN : ((performance.now() - start) * 1000) / n;
}

/** One of each per store of a growth row: the one seeded small (10k) and the one seeded large. */
type BySize<T> = Record<'small' | 'large', T>;

/**
 * The measured part of a growth row: ten paired rounds of solo and throughput runs of `next`, the order
 * alternating (small large, large small, …): each round's large/small ratio compares two measurements
 * a second apart, so a burst of load elsewhere hits both. `calls` is what the sources count as they
 * hand out calls (for the Redis CPU per call). Medians over the rounds.
 */
async function pairedRounds(
  next: BySize<NextCall>,
  calls: BySize<number>,
): Promise<Omit<GrowthResult, 'small' | 'large' | 'seedSeconds' | 'usedMemoryLargeMiB'>> {
  const samples = {
    small: { ops: [] as number[], micros: [] as number[], redis: [] as number[] },
    large: { ops: [] as number[], micros: [] as number[], redis: [] as number[] },
  };
  const costRatios: number[] = [];
  const opsRatios: number[] = [];
  for (let round = 0; round < 10; round++) {
    const order = round % 2 === 0 ? (['small', 'large'] as const) : (['large', 'small'] as const);
    for (const size of order) {
      samples[size].micros.push(await solo(next[size], OP_MS / 4));
      const cpuBefore = await redisCpuMicros();
      const callsBefore = calls[size];
      samples[size].ops.push(await throughput(next[size], CONCURRENCY, OP_MS / 4));
      const cpu = (await redisCpuMicros()) - cpuBefore;
      samples[size].redis.push(cpu / Math.max(1, calls[size] - callsBefore));
    }
    costRatios.push(samples.large.redis.at(-1)! / samples.small.redis.at(-1)!);
    opsRatios.push(samples.large.ops.at(-1)! / samples.small.ops.at(-1)!);
  }
  const med = (values: number[]): number => {
    const sorted = [...values].sort((p, q) => p - q);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  return {
    smallOpsPerSecond: med(samples.small.ops),
    largeOpsPerSecond: med(samples.large.ops),
    smallSoloMicros: med(samples.small.micros),
    largeSoloMicros: med(samples.large.micros),
    smallRedisMicros: med(samples.small.redis),
    largeRedisMicros: med(samples.large.redis),
    costRatio: med(costRatios),
    opsRatio: med(opsRatios),
  };
}

/** A growth row's connections: a seeder and a reader on each of its two databases of the bench's server. */
function growthClients(dbs: BySize<number>): { seeders: BySize<Redis>; readers: BySize<Redis> } {
  const client = (db: number): Redis => new Redis(REDIS_URL, { db });
  return {
    seeders: { small: client(dbs.small), large: client(dbs.large) },
    readers: { small: client(dbs.small), large: client(dbs.large) },
  };
}

/** The server's used_memory in MiB (read once a growth row has seeded both of its stores). */
async function usedMemoryMiB(): Promise<number> {
  const memory = await admin.info('memory');
  return Number(/used_memory:(\d+)/.exec(memory)?.[1] ?? 0) / 2 ** 20;
}

/** Ends a growth row: the bench's own server keeps nothing of the seeded keys; the connections close. */
async function endGrowth(seeders: BySize<Redis>, readers: BySize<Redis>): Promise<void> {
  await admin.flushall();
  await Promise.all([...Object.values(seeders), ...Object.values(readers)].map((r) => r.quit()));
}

async function countOne(spec: OpSpec, stores: Stores): Promise<{ roundTrips: number; commands: number }> {
  const next = await spec.prepare(stores, 1);
  const call = next();
  if (call === null) throw new Error(`${spec.op}: nothing to count`);
  const before = await commandStats(admin);
  const roundTrips = await counter.measure(call);
  const after = await commandStats(admin);
  return { roundTrips, commands: total(diffStats(before, after)) };
}

async function storeOps(): Promise<StoreOpResult[]> {
  const results: StoreOpResult[] = [];
  const timed = makeStores(plain, 'op');
  const countedStores = makeStores(counted, 'opc');
  for (const spec of OPS) {
    // Enough prepared calls for the solo pass and the timed pass at a generous rate.
    const size = Math.min(10_000, Math.round((OP_MS / 1000) * (QUICK ? 4000 : 12_000)));
    // Warm-up (JIT, script cache), then one call at a time, then many in flight.
    await throughput(await spec.prepare(timed, 200), CONCURRENCY, OP_MS / 4);
    const soloNext = await spec.prepare(timed, SOLO_MAX);
    const soloMicros = await solo(soloNext, OP_MS);
    const next = await spec.prepare(timed, size);
    const opsPerSecond = await throughput(next, CONCURRENCY, OP_MS);
    const { roundTrips, commands } = await countOne(spec, countedStores);
    results.push({
      op: spec.op,
      what: spec.what,
      opsPerSecond,
      concurrency: CONCURRENCY,
      soloMicros,
      roundTrips,
      commands,
      target: 1,
    });
    log(
      `${spec.op}: ${opsPerSecond.toFixed(0)} ops/s, ${soloMicros.toFixed(0)} µs alone, ${roundTrips} trip(s)`,
    );
    await admin.flushall();
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Growth: SessionStore.get over a pool of sessions spread across 10k, then GROWTH_KEYS stored.

const SEED = `
local prefix, from, to, ttl, score = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
for i = from, to do
  local tag = string.format('%043d', i)
  local sid = string.format('%022d', i)
  local k = prefix .. ':s:{' .. tag .. '}:' .. sid
  redis.call('HSET', k, unpack(fields))
  redis.call('PEXPIRE', k, ttl)
  local ix = prefix .. ':ix:{' .. tag .. '}'
  redis.call('ZADD', ix, score, sid)
  redis.call('PEXPIRE', ix, ttl)
end
return to - from + 1
`;

async function growth(): Promise<GrowthResult> {
  // Two databases of the bench's server: db 1 holds 10k sessions, db 2 holds GROWTH_KEYS, so the two
  // sizes can be measured alternately (small, large, small, large, …) and the machine's drift cancels.
  const prefix = 'g';
  const small = 10_000;
  const { seeders, readers } = growthClients({ small: 1, large: 2 });
  const stores = {
    small: new SessionStore({ redis: readers.small, prefix }),
    large: new SessionStore({ redis: readers.large, prefix }),
  };
  const template = await stores.small.create('growth-template', DATA, META);
  const [, tag, sid, tokenSecret] = template.token.split('.') as [string, string, string, string];
  const hash = await seeders.small.hgetall(`${prefix}:s:{${tag}}:${sid}`);
  const fields = Object.entries(hash).flat();
  const ttl = String(3_600_000);
  const score = hash['m:ae'] ?? '0';
  const batch = 20_000;
  const seed = async (redis: Redis, count: number): Promise<void> => {
    for (let start = 0; start < count; start += batch) {
      const end = Math.min(count, start + batch) - 1;
      await redis.eval(SEED, 0, prefix, String(start), String(end), ttl, score, ...fields);
    }
  };
  const tokenOf = (i: number): string =>
    `v1.${String(i).padStart(43, '0')}.${String(i).padStart(22, '0')}.${tokenSecret}`;
  const t0 = performance.now();
  await seed(seeders.small, small);
  await seed(seeders.large, GROWTH_KEYS);
  const seedSeconds = (performance.now() - t0) / 1000;
  const usedMemoryLargeMiB = await usedMemoryMiB();
  log(`growth: seeded ${small} + ${GROWTH_KEYS} sessions in ${seedSeconds.toFixed(1)} s`);

  const calls = { small: 0, large: 0 };
  const sources = (size: 'small' | 'large'): NextCall => {
    const stored = size === 'small' ? small : GROWTH_KEYS;
    // 1000 sessions spread over the whole store, so the lookups touch all of its hash table.
    const pool = Array.from({ length: 1000 }, () => tokenOf(Math.floor(Math.random() * stored)));
    let i = 0;
    return () => {
      const token = pool[i++ % pool.length]!;
      calls[size]++;
      return () => stores[size].get(token);
    };
  };
  const next = { small: sources('small'), large: sources('large') };
  for (const size of ['small', 'large'] as const) {
    const call = next[size]();
    if (call === null || (await call()) === null) throw new Error('a seeded session did not load');
    await throughput(next[size], CONCURRENCY, Math.min(OP_MS, 1000)); // warm-up and first renewals
  }
  const result: GrowthResult = {
    small,
    large: GROWTH_KEYS,
    seedSeconds,
    ...(await pairedRounds(next, calls)),
    usedMemoryLargeMiB,
  };
  log(
    `growth: ${result.smallOpsPerSecond.toFixed(0)} vs ${result.largeOpsPerSecond.toFixed(0)} get/s, ` +
      `${result.smallRedisMicros.toFixed(1)} vs ${result.largeRedisMicros.toFixed(1)} Redis µs/get`,
  );
  await endGrowth(seeders, readers);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Limiter growth: LoginLimiter.check with 10k vs GROWTH_KEYS distinct attempt keys stored.

async function limiterGrowth(): Promise<GrowthResult> {
  // Two more databases of the bench's server: db 3 holds 10k attempt logs, db 4 GROWTH_KEYS. Seeded by
  // pipelined SETs (no Lua) in the format the limiter writes, each with its window's TTL; bounded in
  // time: a slow machine measures what it seeded in 90 s and says so.
  const prefix = 'lg';
  const small = 10_000;
  const { seeders, readers } = growthClients({ small: 3, large: 4 });
  const options = { prefix, secret, accountIp: { maxFailures: 100_000 }, ip: { maxFailures: 100_000 } };
  const limiters = {
    small: new LoginLimiter({ ...options, redis: readers.small }),
    large: new LoginLimiter({ ...options, redis: readers.large }),
  };
  // Client i: account `a<i>@example.com` at IP 198.18.<i / 256 % 256>.<i % 256>; a stored pair is one
  // account+IP log, and every 256th client also stores its IP's log.
  const ipOf = (i: number): string => `198.18.${(i >> 8) & 255}.${i & 255}`;
  const accountOf = (i: number): string => `a${i}@example.com`;
  const HOUR = 3_600_000;
  const deadline = performance.now() + 90_000;
  const seed = async (redis: Redis, count: number): Promise<number> => {
    const now = Date.now();
    const value = `${now},1,,${Math.floor(now / Math.ceil(HOUR / 15)) % 1_000_000};`;
    const batch = 10_000;
    let seeded = 0;
    for (let start = 0; start < count && performance.now() < deadline; start += batch) {
      const pipeline = redis.pipeline();
      const end = Math.min(count, start + batch);
      for (let i = start; i < end; i++) {
        // A digest-shaped id: the measured pool below uses real digests, the filler needs only the shape.
        const digest = `${String(i).padStart(12, '0')}${'x'.repeat(31)}`;
        pipeline.set(`${prefix}:l2:ai:{${ipOf(i)}}:${digest}`, value, 'PX', HOUR);
        if ((i & 255) === 0) pipeline.set(`${prefix}:l2:ip:{${ipOf(i)}}`, value, 'PX', HOUR);
      }
      await pipeline.exec();
      seeded = end;
    }
    return seeded;
  };
  const t0 = performance.now();
  await seed(seeders.small, small);
  const large = await seed(seeders.large, GROWTH_KEYS);
  const seedSeconds = (performance.now() - t0) / 1000;
  if (large < GROWTH_KEYS) notes.push(`limiter growth: seeded ${large} of ${GROWTH_KEYS} keys within 90 s`);
  const usedMemoryLargeMiB = await usedMemoryMiB();
  log(`limiter growth: seeded ${small} + ${large} attempt logs in ${seedSeconds.toFixed(1)} s`);

  // 1000 clients spread over each store: their account+IP logs are written for real (with the
  // digests the limiter computes), so every measured check reads and rewrites two stored logs.
  const calls = { small: 0, large: 0 };
  const sources = async (size: 'small' | 'large'): Promise<NextCall> => {
    const stored = size === 'small' ? small : large;
    const pool = Array.from({ length: 1000 }, () => Math.floor(Math.random() * stored));
    for (const i of pool) await limiters[size].check(accountOf(i), ipOf(i));
    let k = 0;
    return () => {
      const i = pool[k++ % pool.length]!;
      calls[size]++;
      return () => limiters[size].check(accountOf(i), ipOf(i));
    };
  };
  const next = { small: await sources('small'), large: await sources('large') };
  for (const size of ['small', 'large'] as const) {
    await throughput(next[size], CONCURRENCY, Math.min(OP_MS, 1000)); // warm-up
  }
  const result: GrowthResult = {
    small,
    large,
    seedSeconds,
    ...(await pairedRounds(next, calls)),
    usedMemoryLargeMiB,
  };
  log(
    `limiter growth: ${result.smallOpsPerSecond.toFixed(0)} vs ${result.largeOpsPerSecond.toFixed(0)} checks/s, ` +
      `${result.smallRedisMicros.toFixed(1)} vs ${result.largeRedisMicros.toFixed(1)} Redis µs/check`,
  );
  await endGrowth(seeders, readers);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Memory: MEMORY USAGE of what one login stores.

async function redisCpuMicros(): Promise<number> {
  const info = await admin.info('cpu');
  const read = (name: string): number =>
    Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return (read('used_cpu_user_main_thread') + read('used_cpu_sys_main_thread')) * 1e6;
}

async function usage(key: string): Promise<{ bytes: number; encoding: string }> {
  const bytes = await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
  if (typeof bytes !== 'number') throw new Error(`no key ${key}`);
  const encoding = await admin.call('OBJECT', 'ENCODING', key);
  return { bytes, encoding: String(encoding) };
}

async function memory(): Promise<MemoryRow[]> {
  const prefix = 'm';
  const sessions = new SessionStore<{ theme: string; locale: string }>({ redis: plain, prefix });
  const keysOf = (token: string): { session: string; index: string } => {
    const [, tag, sid] = token.split('.') as [string, string, string];
    return { session: `${prefix}:s:{${tag}}:${sid}`, index: `${prefix}:ix:{${tag}}` };
  };
  const typical = keysOf((await sessions.create('user-1234567', DATA, META)).token);
  const short = keysOf((await sessions.create('user-7654321', DATA, { ip: META.ip })).token);
  const rows: MemoryRow[] = [
    {
      what: `session hash: user id, token digest, instants, ip, a ${USER_AGENT.length}-character user agent, data {theme, locale}`,
      key: `${prefix}:s:{T}:<sid>`,
      ...(await usage(typical.session)),
    },
    {
      what: "the user's index holding this one session",
      key: `${prefix}:ix:{T}`,
      ...(await usage(typical.index)),
    },
    {
      what: 'the same session without a user agent',
      key: `${prefix}:s:{T}:<sid>`,
      ...(await usage(short.session)),
    },
  ];
  // For comparison: what koa-redis stores for the same login (koa-session's JSON, one string key).
  const peerKey = `${prefix}:koa-redis:3f0c8a2e-8a0e-4f1e-9a55-0d9f1c2b7e41`;
  await admin.set(
    peerKey,
    JSON.stringify({
      userId: 'user-1234567',
      ...DATA,
      _expire: Date.now() + 86_400_000,
      _maxAge: 86_400_000,
    }),
    'PX',
    86_400_000,
  );
  rows.push({
    what: 'for comparison: koa-session + koa-redis, same user id and data (no metadata)',
    key: 'koa:sess:<uuid>',
    ...(await usage(peerKey)),
  });
  rows.push(...(await limiterMemory(prefix)));
  await admin.flushall();
  return rows;
}

/** Bytes per limiter key: one attempt, five (the account+IP default limit), a full log (any limit). */
async function limiterMemory(prefix: string): Promise<MemoryRow[]> {
  let now = Date.now();
  const limiter = new LoginLimiter({
    redis: plain,
    prefix,
    secret,
    clock: { now: () => now },
    ip: { maxFailures: 100 },
  });
  const ip = '198.18.0.1';
  const attempt = async (account: string): Promise<void> => {
    const r = await limiter.check(account, ip);
    if (r.reservation === null) throw new Error('a memory probe attempt was refused');
    await limiter.settle(r.reservation, 'failure');
    now += 1000;
  };
  const aiKey = (account: string): string => `${prefix}:l2:ai:{${ip}}:${limiter.accountDigest(account)}`;
  await attempt('one@example.com');
  const one = await usage(aiKey('one@example.com'));
  for (let i = 0; i < 5; i++) await attempt('five@example.com');
  const five = await usage(aiKey('five@example.com'));
  for (let i = 0; i < 90; i++) await attempt(`spray${i}@example.com`);
  const full = await usage(`${prefix}:l2:ip:{${ip}}`);
  return [
    { what: 'login limiter: account+IP log after one failure', key: `${prefix}:l2:ai:{IP}:A`, ...one },
    {
      what: 'login limiter: account+IP log after five failures (the default limit)',
      key: `${prefix}:l2:ai:{IP}:A`,
      ...five,
    },
    {
      what: 'login limiter: IP log after 97 failures 1 s apart (full: 16 entries, whatever the limit)',
      key: `${prefix}:l2:ip:{IP}`,
      ...full,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Lifetimes: use each store with short lifetimes, then wait (bounded) until no key is left.

async function keysUnder(prefix: string): Promise<{ count: number; withoutTtl: number }> {
  let cursor = '0';
  let count = 0;
  let withoutTtl = 0;
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const ttl = await admin.pttl(key);
      if (ttl === -2) continue;
      count++;
      if (ttl === -1) withoutTtl++;
    }
  } while (cursor !== '0');
  return { count, withoutTtl };
}

async function waitForZero(prefix: string, boundMs: number): Promise<{ left: number; waitedMs: number }> {
  const start = performance.now();
  for (;;) {
    const { count } = await keysUnder(prefix);
    const waitedMs = performance.now() - start;
    if (count === 0 || waitedMs > boundMs) return { left: count, waitedMs };
    await sleep(250);
  }
}

async function lifetimes(): Promise<LifetimeRow[]> {
  const rows: LifetimeRow[] = [];
  const bound = QUICK ? 8000 : 15_000;
  const scenarios: Array<{ what: string; prefix: string; use: (prefix: string) => Promise<void> }> = [
    {
      what: 'sessions (idle 1 s, absolute 2 s): create ×30 over 3 users, get, update, refresh issue and rotate ×3, revokeAll of one',
      prefix: 'lt-s',
      async use(prefix) {
        const sessions = new SessionStore<{ theme: string }>({
          redis: plain,
          prefix,
          idleTimeoutMs: 1000,
          absoluteTimeoutMs: 2000,
          lastSeenResolutionMs: 100,
          clockSkewMs: 0,
        });
        const created = await Promise.all(
          Array.from({ length: 30 }, (_, i) => sessions.create(`lt-user-${i % 3}`, { theme: 'dark' })),
        );
        await Promise.all(created.slice(0, 10).map((c) => sessions.get(c.token)));
        await Promise.all(created.slice(10, 20).map((c) => sessions.update(c.token, { theme: 'light' })));
        const refresh = new RefreshTokens({ redis: plain, prefix, secret });
        await Promise.all(
          created.slice(20, 30).map(async (c) => {
            let token = await refresh.issue(c.session);
            for (let i = 0; i < 3 && token !== null; i++)
              token = (await refresh.rotate(token))?.token ?? null;
          }),
        );
        await sessions.revokeAllForUser('lt-user-2');
      },
    },
    {
      what: 'access tokens (2 s): issue ×10, verify, revoke ×5 (revocation records: tolerance 0.5 s, margin 0.5 s)',
      prefix: 'lt-a',
      async use(prefix) {
        const dev = await generateDevelopmentKey();
        const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });
        const sessions = new SessionStore({
          redis: plain,
          prefix,
          idleTimeoutMs: 1000,
          absoluteTimeoutMs: 2000,
          lastSeenResolutionMs: 100,
          clockSkewMs: 0,
        });
        const tokens = new AccessTokens({
          redis: plain,
          prefix,
          keyRing,
          ttlMs: 2000,
          clockToleranceMs: 500,
          skewMarginMs: 500,
        });
        const { session } = await sessions.create('lt-bearer', {});
        const issued = await Promise.all(
          Array.from({ length: 10 }, () => tokens.issue({ userId: 'lt-bearer', sessionId: session.id })),
        );
        await Promise.all(issued.map((t) => tokens.verify(t.token)));
        await Promise.all(issued.slice(0, 5).map((t) => tokens.revoke(t.token)));
      },
    },
    {
      what: 'login limiter (windows 1 s): 40 checks over 4 IPs, half settled as failures, a quarter as successes',
      prefix: 'lt-l',
      async use(prefix) {
        const limiter = new LoginLimiter({
          redis: plain,
          prefix,
          secret,
          accountIp: { maxFailures: 5, windowMs: 1000 },
          ip: { maxFailures: 100, windowMs: 1000 },
        });
        const checks = await Promise.all(
          Array.from({ length: 40 }, (_, i) => limiter.check(`lt${i % 8}@example.com`, `192.0.2.${i % 4}`)),
        );
        await Promise.all(
          checks.map((c, i) =>
            c.reservation === null || i % 4 === 3
              ? null
              : limiter.settle(c.reservation, i % 4 === 2 ? 'success' : 'failure'),
          ),
        );
      },
    },
    {
      what: 'one-time codes (code 1 s, budget and across-IP windows 2 s): issue ×10, one wrong and one right verify each',
      prefix: 'lt-c',
      async use(prefix) {
        const codes = new OneTimeCodes({
          redis: plain,
          prefix,
          secret,
          ttlMs: 1000,
          resendCooldownMs: 0,
          issueLimits: [{ max: 5, windowMs: 2000 }],
          failureBudget: { max: 10, windowMs: 2000 },
          // The across-IP caps default to 24 h windows: give them the short window too, or their keys
          // (rightly) outlive the measurement.
          issueLimitsAcrossIps: [{ max: 30, windowMs: 2000 }],
          failureBudgetAcrossIps: { max: 100, windowMs: 2000 },
        });
        await Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const target = { subject: `lt-${i}@example.com`, purpose: 'verify-email' };
            const issued = await codes.issue(target);
            if (!issued.ok) return;
            await codes.verify({ ...target, code: issued.code === '000000' ? '111111' : '000000' });
            if (i % 2 === 0) await codes.verify({ ...target, code: issued.code });
          }),
        );
      },
    },
  ];
  for (const s of scenarios) {
    try {
      await s.use(s.prefix);
      const alive = await keysUnder(s.prefix);
      const { left, waitedMs } = await waitForZero(s.prefix, bound);
      rows.push({
        what: s.what,
        keysWhileAlive: alive.count,
        keysWithoutTtl: alive.withoutTtl,
        keysAfter: left,
        waitedMs,
      });
      log(`lifetimes ${s.prefix}: ${alive.count} keys → ${left} after ${(waitedMs / 1000).toFixed(1)} s`);
    } catch (error) {
      notes.push(
        `lifetimes of ${s.prefix} not measured: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return rows;
}

async function main(): Promise<void> {
  process.send?.({ type: 'ready' });
  await admin.flushall();
  const ops = await storeOps();
  const mem = await memory();
  const life = await lifetimes();
  const grow = await growth();
  const limiterGrow = await limiterGrowth();
  notes.push(
    `Throughput with ${CONCURRENCY} calls in flight on one ioredis connection; "alone" = one call at a time.`,
  );
  const result: StoreResults = {
    ops,
    growth: grow,
    limiterGrowth: limiterGrow,
    memory: mem,
    lifetimes: life,
    notes,
  };
  process.send?.({ type: 'result', result });
  await Promise.all([admin.quit(), plain.quit(), counted.quit()]);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
