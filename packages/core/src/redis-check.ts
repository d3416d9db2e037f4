import type { Cluster, Redis } from 'ioredis';
import { EvictionPolicyError, InvalidOptionError } from './errors.js';
import type { RedisClient } from './redis.js';

/** Options of {@link checkRedis}. */
export interface CheckRedisOptions {
  /**
   * Throw {@link EvictionPolicyError} instead of warning when a node may evict keys.
   * @default false
   */
  readonly refuseEviction?: boolean;
  /**
   * Receives each warning line.
   * @default console.warn
   */
  readonly warn?: (message: string) => void;
}

/** What {@link checkRedis} found on each node. */
export interface RedisCheckResult {
  /** `maxmemory-policy` per node address (`unknown` when `CONFIG GET` is not allowed). */
  readonly policies: Readonly<Record<string, string>>;
  /** True when every node answered `noeviction`. */
  readonly ok: boolean;
}

/**
 * Reads `maxmemory-policy` on every (master) node and warns unless it is `noeviction`. Under an
 * eviction policy Redis may drop a revoked-jti record or a login counter under memory pressure and so
 * re-open what latchkey closed. Call it once at start-up.
 *
 * @throws {EvictionPolicyError} with `refuseEviction` when a node may evict.
 * @example
 * await checkRedis(redis, { refuseEviction: process.env.NODE_ENV === 'production' });
 */
export async function checkRedis(
  redis: RedisClient,
  options: CheckRedisOptions = {},
): Promise<RedisCheckResult> {
  const warn = options.warn ?? ((message: string) => console.warn(message));
  if (typeof warn !== 'function') throw new InvalidOptionError('warn must be a function');
  const nodes: Array<{ name: string; client: Redis }> = isCluster(redis)
    ? redis
        .nodes('master')
        .map((node) => ({ name: `${node.options.host}:${node.options.port}`, client: node }))
    : [{ name: `${redis.options.host ?? 'redis'}:${redis.options.port ?? ''}`, client: redis }];
  const policies: Record<string, string> = {};
  for (const { name, client } of nodes) {
    let policy = 'unknown';
    try {
      const reply: unknown = await client.config('GET', 'maxmemory-policy');
      if (Array.isArray(reply) && typeof reply[1] === 'string') policy = reply[1];
    } catch {
      // Managed services often disable CONFIG; say so rather than guess.
    }
    policies[name] = policy;
  }
  const bad = Object.entries(policies).filter(([, policy]) => policy !== 'noeviction');
  for (const [name, policy] of bad) {
    const message =
      policy === 'unknown'
        ? `latchkey: could not read maxmemory-policy on ${name}; make sure it is noeviction`
        : `latchkey: maxmemory-policy is ${policy} on ${name}; use noeviction, or Redis may evict revocation records and counters`;
    if (options.refuseEviction === true && policy !== 'unknown') throw new EvictionPolicyError(message);
    warn(message);
  }
  return Object.freeze({ policies: Object.freeze(policies), ok: bad.length === 0 });
}

function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}
