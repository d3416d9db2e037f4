import { type RedisServerHandle, startRedisServer } from '@latchkey/testing';
import { closeClient } from '@latchkey/testing/backends';
import { Redis, type RedisOptions } from 'ioredis';

/** A redis-server of a test's own and a client connected to it. */
export interface OwnRedis {
  /** Stop and start it to simulate an outage (a restarted server is empty unless it was saved). */
  readonly server: RedisServerHandle;
  readonly redis: Redis;
  /** Closes the client and stops the server. */
  close(): Promise<void>;
}

/**
 * Starts a redis-server for an outage test (never the shared one: it will be stopped) and connects a
 * client with the test's own `options` (retry and offline-queue behaviour are what such tests are
 * about). The client ignores its connection errors: while the server is down they are expected, and
 * the store under test reports them.
 */
export async function startOwnRedis(options: RedisOptions = {}): Promise<OwnRedis> {
  const server = await startRedisServer();
  const redis = new Redis(server.port, '127.0.0.1', { ...options, lazyConnect: true });
  redis.on('error', () => {});
  const close = async () => {
    await closeClient(redis);
    await server.stop();
  };
  try {
    await redis.connect();
  } catch (error) {
    await close();
    throw error;
  }
  return { server, redis, close };
}
