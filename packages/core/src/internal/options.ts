import { type Clock, systemClock } from '../clock.js';
import type { CommandHook } from '../command-timing.js';
import { InvalidOptionError } from '../errors.js';
import type { SecurityEventHook } from '../events.js';
import { DEFAULT_PREFIX, KeySpace } from '../keys.js';
import { ServerSecret } from '../secret.js';
import { type DurabilityOptions, resolveDurability } from './durability.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, type RedisClient, ScriptRunner } from './script.js';

/** Options every store shares. */
export interface StoreOptions {
  /** The ioredis client (single node or Cluster), or the testing package's fake. */
  readonly redis: RedisClient;
  /**
   * Prefix of every key. Letters, digits, `_ . : -`; never a hash tag.
   * @default 'lk'
   */
  readonly prefix?: string;
  /**
   * The clock that decides validity.
   * @default systemClock
   */
  readonly clock?: Clock;
  /** Receives security events. */
  readonly onEvent?: SecurityEventHook;
  /**
   * How long to wait for Redis before failing with `ERR_STORE_UNAVAILABLE`, in ms.
   * @default 1000
   */
  readonly commandTimeoutMs?: number;
  /**
   * Replica acknowledgement of revoking writes — destroy, revoke, revoke-all (logout-all, password
   * reset and change, the revoke-before mark), refresh rotation and reuse revocation, code consumption,
   * revocation-list adds: each returns only after `replicas` replicas of the node that took it
   * acknowledged it (`WAIT` in the same pipeline: one round trip of latency, on Cluster and Sentinel
   * too), and throws `ERR_STORE_UNAVAILABLE` when they did not within `timeoutMs`. Read paths are
   * unchanged. Off by default: a revocation acknowledged just before a failover can then be lost.
   * @default undefined (off)
   * @example { redis, durability: { replicas: 1, timeoutMs: 250 } }
   */
  readonly durability?: DurabilityOptions;
  /**
   * Receives the timing of every Redis call the store makes — the operation (its script's name), the
   * duration in ms and the outcome (`ok`, `unavailable`, `failed`) — for metrics or tracing. Must not
   * throw. Unset (the default), no timing work is done.
   * @default undefined (off)
   * @example { redis, onCommand: (t) => histogram.observe({ operation: t.operation, outcome: t.outcome }, t.durationMs / 1000) }
   */
  readonly onCommand?: CommandHook;
}

/** @internal What every store resolves its shared options into. */
export interface StoreContext {
  readonly runner: ScriptRunner;
  readonly keys: KeySpace;
  readonly clock: Clock;
  readonly onEvent: SecurityEventHook | undefined;
}

/** @internal */
export function resolveStoreOptions(options: StoreOptions): StoreContext {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionError('options must be an object');
  const { redis } = options;
  if (
    redis === null ||
    typeof redis !== 'object' ||
    typeof (redis as { defineCommand?: unknown }).defineCommand !== 'function'
  ) {
    throw new InvalidOptionError('redis must be an ioredis client (Redis or Cluster)');
  }
  const clock = options.clock ?? { now: systemClock.now };
  if (typeof clock.now !== 'function') throw new InvalidOptionError('clock must have a now() method');
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new InvalidOptionError('onEvent must be a function');
  }
  if (options.onCommand !== undefined && typeof options.onCommand !== 'function') {
    throw new InvalidOptionError('onCommand must be a function');
  }
  const timeout = positiveInt('commandTimeoutMs', options.commandTimeoutMs, DEFAULT_COMMAND_TIMEOUT_MS);
  const durability = resolveDurability(options.durability);
  return Object.freeze({
    runner: new ScriptRunner(redis, timeout, durability, options.onCommand ?? null),
    keys: new KeySpace(options.prefix ?? DEFAULT_PREFIX),
    clock,
    onEvent: options.onEvent,
  });
}

/** @internal The `secret` option of the stores that derive keys from it. */
export function requireSecret(secret: unknown): ServerSecret {
  if (!(secret instanceof ServerSecret)) throw new InvalidOptionError('secret must be a ServerSecret');
  return secret;
}

/** @internal A whole number ≥ `min` (default 1), or the default when undefined. */
export function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < min) {
    throw new InvalidOptionError(`${name} must be a whole number ≥ ${min}, got ${String(value)}`);
  }
  return resolved;
}
