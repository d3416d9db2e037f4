import type { Redis, RedisOptions } from 'ioredis';
import RedisMock from 'ioredis-mock';
import type { TestClock } from './test-clock.js';

/** Options of {@link createFakeRedis}. */
export interface FakeRedisOptions {
  /**
   * A clock to drive key expiry: it is installed (see {@link TestClock.install}) so the fake expires
   * keys by the clock's time. Restore it when the test ends.
   */
  readonly clock?: TestClock;
  /** Extra ioredis options passed through (e.g. `keyPrefix`). */
  readonly redisOptions?: Omit<RedisOptions, 'host' | 'port'>;
}

let nextPort = 1;

/**
 * An in-memory, ioredis-compatible client on ioredis-mock, with its own isolated data: two calls never
 * see each other's keys (plain ioredis-mock instances on the same host and port would share), while
 * `client.duplicate()` shares data like a second connection to the same server. Everything latchkey
 * registers with `defineCommand` runs on it.
 *
 * It is not Redis: its Lua is fengari (32-bit integers, no cjson). latchkey's scripts stay inside the
 * subset that behaves the same, and its own suites prove that on real Redis as well.
 *
 * @example
 * const redis = createFakeRedis();
 * const sessions = new SessionStore({ redis });
 */
export function createFakeRedis(options: FakeRedisOptions = {}): Redis {
  options.clock?.install();
  const port = nextPort++;
  const client = new RedisMock({
    ...options.redisOptions,
    host: `latchkey-fake-${process.pid}-${port}`,
    port,
  });
  return client as unknown as Redis;
}
