import { InvalidOptionError, StoreFailedError, StoreUnavailableError } from '../errors.js';
import type { RedisClient } from '../redis.js';

/**
 * Replica acknowledgement of revoking writes (`StoreOptions.durability`). Off by default: Redis
 * replication is asynchronous, and a revocation acknowledged just before a failover may be lost.
 */
export interface DurabilityOptions {
  /**
   * How many replicas must have acknowledged a revoking write (`WAIT replicas timeoutMs`) before the
   * store reports it done. Fewer in time → `ERR_STORE_UNAVAILABLE` (the write may still have happened;
   * nothing reports success).
   */
  readonly replicas: number;
  /**
   * How long Redis waits for the acknowledgements, in ms; added to `commandTimeoutMs` for the call.
   * @default 250
   */
  readonly timeoutMs?: number;
  /**
   * Also wait until the master and `replicas` replicas have fsynced the write to their AOF
   * (`WAITAOF 1 replicas timeoutMs`). Needs Redis ≥ 7.2 with `appendonly yes` on every node; on Redis
   * 7.0 every revoking call fails with `ERR_STORE_FAILED` saying so.
   * @default false
   */
  readonly fsync?: boolean;
}

/** @internal Resolved {@link DurabilityOptions}. */
export interface Durability {
  readonly replicas: number;
  readonly timeoutMs: number;
  readonly fsync: boolean;
}

/** @internal */
export const DEFAULT_DURABILITY_TIMEOUT_MS = 250;

/** @internal Validates `durability`; `undefined` → null (off). */
export function resolveDurability(value: DurabilityOptions | undefined): Durability | null {
  if (value === undefined) return null;
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionError('durability must be an object like { replicas: 1 }');
  }
  const { replicas } = value;
  if (!Number.isSafeInteger(replicas) || replicas < 1) {
    throw new InvalidOptionError(`durability.replicas must be a whole number ≥ 1, got ${String(replicas)}`);
  }
  const timeoutMs = value.timeoutMs ?? DEFAULT_DURABILITY_TIMEOUT_MS;
  // WAIT 0 would block forever; a bound is the point.
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new InvalidOptionError(`durability.timeoutMs must be a whole number ≥ 1, got ${String(timeoutMs)}`);
  }
  const fsync = value.fsync ?? false;
  if (typeof fsync !== 'boolean') throw new InvalidOptionError('durability.fsync must be a boolean');
  return Object.freeze({ replicas, timeoutMs, fsync });
}

/**
 * Revoking writes go over a second connection of their own (`duplicate()`, one per client, closed when
 * the client ends): `WAIT` blocks its connection for up to `timeoutMs`, and on the shared connection it
 * would hold every read queued behind it.
 */
const dedicated = new WeakMap<object, RedisClient>();

/** @internal The connection for revoking writes of `redis` (created once, eagerly). */
export function durableConnection(redis: RedisClient): RedisClient {
  let connection = dedicated.get(redis);
  if (connection === undefined) {
    connection = redis.duplicate() as RedisClient;
    const own = connection;
    own.on('error', () => undefined); // failures reach the caller as StoreUnavailableError
    // A lazy client's copy is lazy too; without an offline queue its first command would fail.
    if ((own as { status?: string }).status === 'wait') own.connect().catch(() => undefined);
    redis.once('end', () => own.disconnect());
    dedicated.set(redis, own);
  }
  return connection;
}

/**
 * One round trip of latency: the script (as EVAL, so a `NOSCRIPT` fallback can never run it after the
 * WAIT) and `WAIT` in one pipeline. On a Cluster the pipeline goes to the node of the script's keys,
 * so WAIT counts the replicas of the node that took the write. Resolves with the script's reply only
 * when enough replicas acknowledged it.
 */
export async function runDurably(
  connection: RedisClient,
  durability: Durability,
  name: string,
  source: string,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  const { replicas, timeoutMs, fsync } = durability;
  const pipeline = connection.pipeline();
  pipeline.eval(source, keys.length, ...keys, ...args);
  if (fsync) pipeline.call('waitaof', 1, replicas, timeoutMs);
  else pipeline.wait(replicas, timeoutMs);
  const results = await pipeline.exec();
  const [scriptResult, waitResult] = results ?? [];
  if (scriptResult === undefined || waitResult === undefined) {
    throw new StoreUnavailableError(`Redis did not answer ${name}`);
  }
  if (scriptResult[0] !== null) {
    // A pipeline that hit MOVED is not retried (WAIT is not read-only): refresh the slots for the next call.
    if (/^(MOVED|ASK)\b/.test(scriptResult[0].message) && 'refreshSlotsCache' in connection) {
      connection.refreshSlotsCache();
    }
    throw scriptResult[0];
  }
  if (waitResult[0] !== null) {
    const message = waitResult[0].message;
    if (fsync && /unknown command/i.test(message)) {
      throw new StoreFailedError(
        'durability.fsync needs WAITAOF, which Redis 7.2 added; this server does not have it (Redis 7.0 ' +
          'has no fsync acknowledgement: turn fsync off, or upgrade)',
        { cause: waitResult[0] },
      );
    }
    throw waitResult[0];
  }
  const reply = waitResult[1];
  const acknowledged = fsync
    ? Array.isArray(reply) && Number(reply[0]) >= 1
      ? Number(reply[1])
      : -1
    : Number(reply);
  if (!(acknowledged >= replicas)) {
    throw new StoreUnavailableError(
      `${fsync ? 'fsync' : 'replication'} of ${name} not acknowledged in time: ` +
        `${Math.max(acknowledged, 0)} of ${replicas} replicas within ${timeoutMs} ms`,
    );
  }
  return scriptResult[1];
}
