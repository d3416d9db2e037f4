import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { createFakeRedis } from './fake-redis.js';
import {
  hasRedisServer,
  type RedisClusterHandle,
  type RedisServerHandle,
  startRedisCluster,
  startRedisServer,
} from './redis-server.js';
import { countRoundTrips, type RoundTripCounter } from './round-trips.js';
import { TestClock } from './test-clock.js';

// The three-backend harness without a test runner: what uvu's backendSuite, node:test and vitest
// suites all build on. Nothing here imports a runner.

/** The three backends every behaviour suite runs on. */
export type BackendKind = 'fake' | 'redis' | 'cluster';

export const ALL_BACKENDS: readonly BackendKind[] = Object.freeze(['fake', 'redis', 'cluster']);

/** What each test receives (fresh clock and key prefix per test). */
export interface BackendContext {
  readonly kind: BackendKind;
  /** The backend's connection, with a round-trip counter installed. */
  redis: Redis | Cluster;
  /** A fresh clock per test, starting at the real now; on the fake it also drives key expiry. */
  clock: TestClock;
  /** A fresh key prefix per test. */
  prefix: string;
  /** Counts the round trips of {@link BackendContext.redis} (reset at the start of each test). */
  roundTrips: RoundTripCounter;
  /**
   * Moves the clock by `ms` and the backend's TTLs with it: on the fake through the installed clock;
   * on real Redis by shortening the PTTL of every key under the test's prefix by `ms` (deleting those
   * that expire), which is what the server would show `ms` later.
   */
  advance(ms: number): Promise<void>;
  /** Every key under the test's prefix that still exists, sorted. */
  keys(): Promise<string[]>;
  /** Keys under the test's prefix that have no TTL (each one is a leak). */
  keysWithoutTtl(): Promise<string[]>;
  /** Every key under the prefix with its type and raw content, for "nothing in clear" checks. */
  dump(): Promise<Array<{ key: string; type: string; content: string }>>;
  /** Another connection to the same data (closed with the backend). */
  connect(): Redis | Cluster;
}

/**
 * One backend opened for a suite, with the per-test context factory. The lifecycle any runner maps
 * onto its hooks: {@link openBackend} once before the suite, {@link Backend.beginTest} before each
 * test, {@link Backend.endTest} after each test, {@link Backend.close} after the suite.
 */
export interface Backend {
  readonly kind: BackendKind;
  /** The suite's connection (round trips counted). */
  readonly redis: Redis | Cluster;
  /** A fresh context: a new key prefix, a new clock (installed as `Date.now` on the fake), the counter reset. */
  beginTest(): BackendContext;
  /** Ends a test: puts the real `Date.now` back. Call it also when the test failed. */
  endTest(context: BackendContext): void;
  /** Closes the suite's connection and every one `connect()` opened. */
  close(): Promise<void>;
}

const REQUIRE = process.env['LATCHKEY_REQUIRE_REDIS'] === '1';

/** `LATCHKEY_TEST_BACKENDS`, checked: a misspelled name would otherwise drop suites silently. */
function backendsFromEnv(): BackendKind[] | undefined {
  const text = process.env['LATCHKEY_TEST_BACKENDS'];
  if (text === undefined || text.trim() === '') return undefined;
  const names = text.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(ALL_BACKENDS as readonly string[]).includes(name)) {
      throw new Error(`LATCHKEY_TEST_BACKENDS: unknown backend "${name}" (use ${ALL_BACKENDS.join(', ')})`);
    }
  }
  return names as BackendKind[];
}

let sharedServer: Promise<{ port: number } | RedisServerHandle> | null = null;
let sharedCluster: Promise<{ nodes: Array<{ host: string; port: number }> } | RedisClusterHandle> | null =
  null;
let warnedSkip = false;
let backendCounter = 0;

/** The run-wide `redis-server` (from `LATCHKEY_TEST_REDIS_PORT`, else started once per process). */
export function sharedRedisServer(): Promise<{ port: number }> {
  sharedServer ??= (async () => {
    const fromEnv = process.env['LATCHKEY_TEST_REDIS_PORT'];
    return fromEnv ? { port: Number(fromEnv) } : startRedisServer();
  })();
  return sharedServer;
}

/** The run-wide 3-master cluster (from `LATCHKEY_TEST_CLUSTER_PORTS`, else started once per process). */
export function sharedRedisCluster(): Promise<{ nodes: ReadonlyArray<{ host: string; port: number }> }> {
  sharedCluster ??= (async () => {
    const fromEnv = process.env['LATCHKEY_TEST_CLUSTER_PORTS'];
    return fromEnv
      ? { nodes: fromEnv.split(',').map((port) => ({ host: '127.0.0.1', port: Number(port) })) }
      : startRedisCluster();
  })();
  return sharedCluster;
}

/** Whether the real backends can run here; prints the loud skip line once when they cannot. */
export function realBackendsAvailable(): boolean {
  if (process.env['LATCHKEY_TEST_REDIS_PORT'] || hasRedisServer()) return true;
  if (!REQUIRE && !warnedSkip) {
    warnedSkip = true;
    console.warn(
      '\n!!! latchkey: redis-server is not on PATH: the real Redis and Redis Cluster runs are SKIPPED.\n' +
        '!!! Only the fake ran. Install redis-server, or set LATCHKEY_REQUIRE_REDIS=1 to fail instead.\n',
    );
  }
  return false;
}

/**
 * The backends a suite should run on: `backends` (default all three), narrowed by
 * `LATCHKEY_TEST_BACKENDS`; without `redis-server` the real ones are left out with one loud line —
 * unless `LATCHKEY_REQUIRE_REDIS=1`, which keeps them so that opening them fails the run: a skipped
 * check never counts as passed.
 *
 * @example
 * for (const kind of testBackends()) describe(`SessionStore [${kind}]`, () => { … });
 */
export function testBackends(backends: readonly BackendKind[] = ALL_BACKENDS): BackendKind[] {
  const fromEnv = backendsFromEnv();
  // A suite's own list says where it can run; the environment narrows that further, never widens it.
  return backends
    .filter((kind) => fromEnv === undefined || fromEnv.includes(kind))
    .filter((kind) => kind === 'fake' || REQUIRE || realBackendsAvailable());
}

/** Opens a client to a backend. */
export async function openBackendClient(kind: BackendKind): Promise<Redis | Cluster> {
  if (kind === 'fake') return createFakeRedis();
  if (kind === 'redis') {
    const { port } = await sharedRedisServer();
    const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 3 });
    await client.connect();
    return client;
  }
  const { nodes } = await sharedRedisCluster();
  const cluster = new Cluster(
    nodes.map((n) => ({ host: n.host, port: n.port })),
    { lazyConnect: true, redisOptions: { maxRetriesPerRequest: 3 } },
  );
  await cluster.connect();
  return cluster;
}

/** Closes a client opened by {@link openBackendClient} or {@link BackendContext.connect}. */
export async function closeClient(client: Redis | Cluster): Promise<void> {
  try {
    await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 500))]);
  } catch {
    // already closed
  }
  client.disconnect();
}

/**
 * Opens one backend for a suite — the fake, the run-wide `redis-server`, or the run-wide 3-master
 * Cluster (started on first use, or taken from `LATCHKEY_TEST_REDIS_PORT` /
 * `LATCHKEY_TEST_CLUSTER_PORTS`, killed by pid when the process exits) — and returns the per-test
 * context factory. Runner-agnostic: map it onto `before` / `beforeEach` / `afterEach` / `after`.
 *
 * @example
 * // node:test
 * for (const kind of testBackends()) {
 *   describe(`SessionStore [${kind}]`, () => {
 *     let backend: Backend;
 *     let t: BackendContext;
 *     before(async () => { backend = await openBackend(kind); });
 *     after(() => backend.close());
 *     beforeEach(() => { t = backend.beginTest(); });
 *     afterEach(() => backend.endTest(t));
 *     it('leaves no key behind', async () => { … assert.deepEqual(await t.keys(), []); });
 *   });
 * }
 */
export async function openBackend(kind: BackendKind): Promise<Backend> {
  if (!(ALL_BACKENDS as readonly string[]).includes(kind)) {
    throw new Error(`unknown backend "${String(kind)}" (use ${ALL_BACKENDS.join(', ')})`);
  }
  const backendId = ++backendCounter;
  let testCounter = 0;
  const clusterNodes =
    kind === 'cluster' ? (await sharedRedisCluster()).nodes.map((n) => ({ host: n.host, port: n.port })) : [];
  const redis = await openBackendClient(kind);
  const roundTrips = countRoundTrips(redis);
  const extra: Array<Redis | Cluster> = [];

  const beginTest = (): BackendContext => {
    const clock = new TestClock();
    if (kind === 'fake') clock.install();
    const prefix = `lkt:${process.pid}.${backendId}.${++testCounter}.${randomBytes(3).toString('hex')}`;
    roundTrips.reset();
    return {
      kind,
      redis,
      clock,
      prefix,
      roundTrips,
      keys: () => scanKeys(redis, prefix),
      keysWithoutTtl: async () => {
        const out: string[] = [];
        for (const key of await scanKeys(redis, prefix)) {
          if ((await redis.pttl(key)) === -1) out.push(key);
        }
        return out;
      },
      advance: async (ms: number) => {
        clock.advance(ms);
        if (kind === 'fake') return;
        for (const key of await scanKeys(redis, prefix)) {
          const pttl = await redis.pttl(key);
          if (pttl === -1 || pttl === -2) continue;
          if (pttl <= ms) await redis.del(key);
          else await redis.pexpire(key, pttl - ms);
        }
      },
      dump: async () => {
        const out: Array<{ key: string; type: string; content: string }> = [];
        for (const key of await scanKeys(redis, prefix)) out.push({ key, ...(await readKey(redis, key)) });
        return out;
      },
      connect: () => {
        const client =
          kind === 'fake'
            ? (redis as Redis).duplicate()
            : kind === 'redis'
              ? new Redis((redis as Redis).options.port ?? 6379, '127.0.0.1', { maxRetriesPerRequest: 3 })
              : new Cluster(clusterNodes);
        extra.push(client);
        return client;
      },
    };
  };

  return Object.freeze({
    kind,
    redis,
    beginTest,
    endTest: (context: BackendContext) => context.clock.restore(),
    close: async () => {
      await Promise.all(extra.splice(0).map(closeClient));
      await closeClient(redis);
    },
  });
}

/** Every key under `prefix` (SCAN on each master of a cluster), sorted. */
export async function scanKeys(client: Redis | Cluster, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`;
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client as Redis];
  const found = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = String(next);
      for (const key of keys) {
        // ioredis-mock may list a key whose TTL has passed until it is touched.
        if ((await client.exists(key)) === 1) found.add(key);
      }
    } while (cursor !== '0');
  }
  return [...found].sort();
}

async function readKey(client: Redis | Cluster, key: string): Promise<{ type: string; content: string }> {
  const type = await client.type(key);
  const read: Record<string, () => Promise<unknown>> = {
    hash: () => client.hgetall(key),
    zset: () => client.zrange(key, 0, -1, 'WITHSCORES'),
    set: () => client.smembers(key),
    list: () => client.lrange(key, 0, -1),
    string: () => client.get(key),
  };
  const value = await (read[type] ?? (async () => ''))();
  return { type, content: JSON.stringify(value) };
}
