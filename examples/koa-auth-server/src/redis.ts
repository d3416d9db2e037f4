import type { RedisClient } from '@latchkey/core';
import { createFakeRedis } from '@latchkey/testing';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisTarget } from './config.js';

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions {
  /** Receives connection errors (ioredis emits them while it reconnects); rate-limited by the caller. */
  readonly onError?: (error: Error) => void;
}

/**
 * The ioredis settings that keep the server alive and honest through an outage:
 * - no offline queue: while disconnected, commands fail at once (the app answers 503) instead of
 *   piling up and running minutes later, after the client was told they failed;
 * - a command timeout, so a hung server also ends in 503 within the contract's 2 s;
 * - reconnection forever with a capped back-off, so the app serves again by itself;
 * - an `error` listener always attached, so a refused connection never crashes the process.
 */
export const RESILIENT_OPTIONS = Object.freeze({
  enableOfflineQueue: false,
  commandTimeout: 1000,
  connectTimeout: 2000,
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
}) satisfies RedisOptions;

/** Opens the client for a target: the embedded fake, one server, a cluster, or a Sentinel-managed master. */
export function createRedisClient(target: RedisTarget, options: RedisClientOptions = {}): RedisClient {
  const onError = options.onError ?? (() => undefined);
  if (target.kind === 'fake') return createFakeRedis();
  if (target.kind === 'sentinel') {
    const client = new Redis({
      ...RESILIENT_OPTIONS,
      sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: target.name,
      lazyConnect: true,
      // No failoverDetector: in ioredis 5.11 its disconnect can land while a reconnect is resolving the
      // master, which ends the client for good (status "end"; seen under load). The master's death closes
      // the connection anyway, and the reconnect asks the Sentinels for the new one.
      sentinelRetryStrategy: RESILIENT_OPTIONS.retryStrategy,
      sentinelCommandTimeout: RESILIENT_OPTIONS.commandTimeout,
    });
    client.on('error', onError);
    client.connect().catch(() => undefined);
    return client;
  }
  if (target.kind === 'url') {
    const client = new Redis(target.url, { ...RESILIENT_OPTIONS, lazyConnect: true });
    client.on('error', onError);
    client.connect().catch(() => undefined); // failures reach onError; reconnection continues
    return client;
  }
  const cluster = new Cluster(
    target.nodes.map((node) => ({ host: node.host, port: node.port })),
    {
      enableOfflineQueue: false,
      lazyConnect: true,
      slotsRefreshTimeout: 1000,
      clusterRetryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
      redisOptions: {
        commandTimeout: RESILIENT_OPTIONS.commandTimeout,
        connectTimeout: RESILIENT_OPTIONS.connectTimeout,
        maxRetriesPerRequest: RESILIENT_OPTIONS.maxRetriesPerRequest,
      },
    },
  );
  cluster.on('error', onError);
  cluster.on('node error', onError);
  cluster.connect().catch(() => undefined);
  return cluster;
}

/** Resolves true once the client is ready, false after `timeoutMs` (the client keeps trying). */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if ((client as { status?: string }).status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}

/** A short human description of the target for the start-up line (no credentials). */
export function describeTarget(target: RedisTarget): string {
  if (target.kind === 'fake') return 'the embedded fake Redis (in memory: all data is lost on exit)';
  if (target.kind === 'sentinel') {
    return `the Redis master "${target.name}" of the Sentinels at ${target.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
  if (target.kind === 'cluster') {
    return `the Redis Cluster at ${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
  try {
    const url = new URL(target.url);
    return `the Redis server at ${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return 'the Redis server of REDIS_URL';
  }
}

/** Closes a client, waiting at most `timeoutMs` for a clean QUIT. */
export async function closeRedis(client: RedisClient, timeoutMs = 1000): Promise<void> {
  try {
    await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  } catch {
    // already closed
  }
  client.disconnect();
}
