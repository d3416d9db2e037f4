import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { suite, type Test } from 'uvu';
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

/** The three backends every behaviour suite runs on. */
export type BackendKind = 'fake' | 'redis' | 'cluster';

export const ALL_BACKENDS: readonly BackendKind[] = Object.freeze(['fake', 'redis', 'cluster']);

/** What each test of a backend suite receives (fresh clock and key prefix per test). */
export interface BackendContext {
  readonly kind: BackendKind;
  /** The suite's connection, with a round-trip counter installed. */
  redis: Redis | Cluster;
  /** A fresh clock per test, starting at the real now; on the fake it also drives key expiry. */
  clock: TestClock;
  /** A fresh key prefix per test. */
  prefix: string;
  /** Counts the round trips of {@link BackendContext.redis}. */
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
  /** Another connection to the same data (closed when the suite ends). */
  connect(): Redis | Cluster;
}

/** Options of {@link backendSuite}. */
export interface BackendSuiteOptions {
  /** Which backends to run on. @default all three, or `LATCHKEY_TEST_BACKENDS` (comma-separated) */
  readonly backends?: readonly BackendKind[];
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
let suiteCounter = 0;

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
 * Defines one uvu suite per backend — the fake, a real `redis-server`, a real 3-master Cluster — with
 * the same tests, and runs them. Each test gets a fresh {@link BackendContext}: its own key prefix and
 * clock. Servers are started once per run (or taken from the test runner's environment) and killed by
 * pid at exit. Without `redis-server` on PATH the real runs are skipped with one loud line, unless
 * `LATCHKEY_REQUIRE_REDIS=1`, which turns that into a failing test.
 *
 * @example
 * backendSuite('SessionStore.get', (test) => {
 *   test('returns null for an unknown token', async ({ redis, clock, prefix }) => { … });
 * });
 */
export function backendSuite(
  title: string,
  define: (test: Test<BackendContext>) => void,
  options: BackendSuiteOptions = {},
): void {
  const fromEnv = backendsFromEnv();
  // A suite's own list says where it can run; the environment narrows that further, never widens it.
  const kinds = (options.backends ?? ALL_BACKENDS).filter(
    (kind) => fromEnv === undefined || fromEnv.includes(kind),
  );
  for (const kind of kinds) {
    if (kind !== 'fake' && !realBackendsAvailable()) {
      if (REQUIRE) failRequired(`${title} [${kind}]`);
      continue;
    }
    defineFor(kind, title, define);
  }
}

/**
 * A plain uvu suite for tests that need a real `redis-server` of their own (outage tests, server
 * configuration). Where `redis-server` is missing it is not defined at all (one loud line says so), or,
 * with `LATCHKEY_REQUIRE_REDIS=1`, replaced by one failing test: a skipped check never counts as passed.
 */
export function realRedisSuite(title: string, define: (test: Test) => void): void {
  if (!realBackendsAvailable()) {
    if (REQUIRE) failRequired(title);
    return;
  }
  const test = suite(title);
  define(test);
  test.run();
}

/** Stands in for a suite that could not run: one failing test, so a skip never counts as a pass. */
function failRequired(title: string): void {
  const failing = suite(title);
  failing('real Redis is required (LATCHKEY_REQUIRE_REDIS=1)', () => {
    throw new Error('redis-server is not on PATH, and LATCHKEY_REQUIRE_REDIS=1 forbids skipping');
  });
  failing.run();
}

function defineFor(kind: BackendKind, title: string, define: (test: Test<BackendContext>) => void): void {
  const suiteId = ++suiteCounter;
  let testCounter = 0;
  const extra: Array<Redis | Cluster> = [];
  const ctx = { kind } as BackendContext;
  const test = suite<BackendContext>(`${title} [${kind}]`, ctx);

  let clusterNodes: Array<{ host: string; port: number }> = [];
  test.before(async (context) => {
    if (kind === 'cluster') clusterNodes = (await sharedRedisCluster()).nodes.map((n) => ({ ...n }));
    context.redis = await openBackendClient(kind);
    context.roundTrips = countRoundTrips(context.redis);
  });

  test.before.each((context) => {
    const clock = new TestClock();
    if (kind === 'fake') clock.install();
    const prefix = `lkt:${process.pid}.${suiteId}.${++testCounter}.${randomBytes(3).toString('hex')}`;
    context.clock = clock;
    context.prefix = prefix;
    context.roundTrips.reset();
    context.keys = () => scanKeys(context.redis, prefix);
    context.keysWithoutTtl = async () => {
      const out: string[] = [];
      for (const key of await scanKeys(context.redis, prefix)) {
        if ((await context.redis.pttl(key)) === -1) out.push(key);
      }
      return out;
    };
    context.advance = async (ms: number) => {
      clock.advance(ms);
      if (kind === 'fake') return;
      for (const key of await scanKeys(context.redis, prefix)) {
        const pttl = await context.redis.pttl(key);
        if (pttl === -1 || pttl === -2) continue;
        if (pttl <= ms) await context.redis.del(key);
        else await context.redis.pexpire(key, pttl - ms);
      }
    };
    context.dump = async () => {
      const out: Array<{ key: string; type: string; content: string }> = [];
      for (const key of await scanKeys(context.redis, prefix)) {
        out.push({ key, ...(await readKey(context.redis, key)) });
      }
      return out;
    };
    context.connect = () => {
      const client =
        kind === 'fake'
          ? (context.redis as Redis).duplicate()
          : kind === 'redis'
            ? new Redis((context.redis as Redis).options.port ?? 6379, '127.0.0.1', {
                maxRetriesPerRequest: 3,
              })
            : new Cluster(clusterNodes);
      extra.push(client);
      return client;
    };
  });

  test.after.each((context) => {
    context.clock.restore();
  });

  test.after(async (context) => {
    await Promise.all(extra.splice(0).map(closeClient));
    if (context.redis !== undefined) await closeClient(context.redis);
  });

  define(test);
  test.run();
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
