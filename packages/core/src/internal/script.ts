import { createHash } from 'node:crypto';
import type { CommandHook } from '../command-timing.js';
import { StoreFailedError, StoreUnavailableError } from '../errors.js';
import { assertSameSlot } from '../keys.js';
import type { RedisClient } from '../redis.js';
import { type Durability, durableConnection, runDurably } from './durability.js';

export type { RedisClient };

/** One Lua script, embedded from `src/lua/<name>-<numKeys>.lua` by the build step. */
export interface ScriptDefinition {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
}

/** A script ready to run: its versioned command name is derived from the source digest. */
export interface Script extends ScriptDefinition {
  readonly command: string;
}

/** Builds a {@link Script}; the command name changes whenever the source does. */
export function defineScript(definition: ScriptDefinition): Script {
  const version = createHash('sha1').update(definition.source).digest('hex').slice(0, 10);
  return Object.freeze({
    ...definition,
    command: `latchkey_${definition.name.replace(/[^A-Za-z0-9]/g, '_')}_${version}`,
  });
}

const registered = new WeakMap<object, Set<string>>();

type ScriptArg = string | number;

/** What a call is, beyond its script. */
export interface RunFlags {
  /** The call revokes something: with durability on, it returns only once replicas acknowledged it. */
  readonly revoking?: boolean;
}

/** Flags of a revoking call (destroy, revoke, revoke-all, rotation, code consumption, …). */
export const REVOKING: RunFlags = Object.freeze({ revoking: true });
type CustomCommand = (...args: ScriptArg[]) => Promise<unknown>;

/** Reply errors that mean "cannot serve now" rather than "the script is wrong". */
const UNAVAILABLE_REPLY =
  /^(CLUSTERDOWN|TRYAGAIN|LOADING|BUSY|READONLY|MASTERDOWN|OOM|NOREPLICAS|MOVED|ASK)\b/;

/** The default time a store waits for Redis before it gives up with {@link StoreUnavailableError}. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 1000;

/**
 * Runs latchkey's scripts on one client: registers each under its versioned name with a fixed key
 * count (`defineCommand`, so ioredis sends EVALSHA and falls back to EVAL), asserts that one call's
 * keys share a hash tag, bounds the wait by a timeout and turns every transport failure into
 * {@link StoreUnavailableError}.
 */
export class ScriptRunner {
  readonly redis: RedisClient;
  readonly timeoutMs: number;
  /** Replica acknowledgement of revoking calls, or null (off). */
  readonly durability: Durability | null;
  /** Receives each call's timing (`StoreOptions.onCommand`), or null (off: no timing work at all). */
  readonly onCommand: CommandHook | null;

  constructor(
    redis: RedisClient,
    timeoutMs: number = DEFAULT_COMMAND_TIMEOUT_MS,
    durability: Durability | null = null,
    onCommand: CommandHook | null = null,
  ) {
    this.redis = redis;
    this.timeoutMs = timeoutMs;
    this.durability = durability;
    this.onCommand = onCommand;
    if (durability !== null) durableConnection(redis);
  }

  /**
   * One round trip: the script with `keys` and `args`. A call flagged {@link REVOKING} on a runner with
   * durability also waits for the replicas' acknowledgement (same round trip, up to its timeout more).
   */
  run(
    script: Script,
    keys: readonly string[],
    args: readonly ScriptArg[],
    flags?: RunFlags,
  ): Promise<unknown> {
    if (this.onCommand === null) return this.#run(script, keys, args, flags);
    return timed(this.onCommand, script.name, () => this.#run(script, keys, args, flags));
  }

  #run(
    script: Script,
    keys: readonly string[],
    args: readonly ScriptArg[],
    flags?: RunFlags,
  ): Promise<unknown> {
    if (keys.length !== script.numberOfKeys) {
      throw new StoreFailedError(
        `script ${script.name} takes ${script.numberOfKeys} keys, got ${keys.length}`,
      );
    }
    assertSameSlot(keys, script.name);
    const durability = flags?.revoking === true ? this.durability : null;
    // The durable connection is checked too: it must not queue a rotation behind an outage either.
    if (!usable(this.redis) || (durability !== null && !usable(durableConnection(this.redis)))) {
      return Promise.reject(new StoreUnavailableError(`Redis connection is not ready (${script.name})`));
    }
    let pending: Promise<unknown>;
    try {
      pending =
        durability === null
          ? this.#command(script).call(this.redis, ...keys, ...args)
          : runDurably(durableConnection(this.redis), durability, script.name, script.source, keys, args);
    } catch (error) {
      return Promise.reject(translate(error, script));
    }
    const ms = this.timeoutMs + (durability === null ? 0 : durability.timeoutMs);
    if (!(ms > 0) || !Number.isFinite(ms)) {
      return pending.catch((error: unknown) => {
        throw translate(error, script);
      });
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { deadline: performance.now() + ms, reject, script, ms };
      watch(waiter);
      pending.then(
        (value) => {
          waiters.delete(waiter);
          resolve(value);
        },
        (error: unknown) => {
          waiters.delete(waiter);
          reject(translate(error, script));
        },
      );
    });
  }

  #command(script: Script): CustomCommand {
    const client = this.redis as unknown as Record<string, unknown> & {
      defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
    };
    let names = registered.get(client);
    if (names === undefined) {
      names = new Set();
      registered.set(client, names);
    }
    if (!names.has(script.command) || typeof client[script.command] !== 'function') {
      client.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.source });
      names.add(script.command);
    }
    return client[script.command] as CustomCommand;
  }
}

/**
 * Runs `call` and reports its duration and outcome to `hook` once it settled (the hook sees the call
 * before the caller does; its errors are swallowed). The caller gets `call`'s own promise.
 */
function timed(hook: CommandHook, operation: string, call: () => Promise<unknown>): Promise<unknown> {
  const started = performance.now();
  const report = (error?: unknown): void => {
    const durationMs = performance.now() - started;
    try {
      if (error === undefined) hook({ operation, durationMs, outcome: 'ok' });
      else {
        const outcome = error instanceof StoreUnavailableError ? 'unavailable' : 'failed';
        hook({
          operation,
          durationMs,
          outcome,
          error: error instanceof Error ? error : new Error(String(error)),
        });
      }
    } catch {
      // A metrics hook must never turn a completed call into an error.
    }
  };
  let pending: Promise<unknown>;
  try {
    pending = call();
  } catch (error) {
    report(error);
    throw error;
  }
  return pending.then(
    (value) => {
      report();
      return value;
    },
    (error: unknown) => {
      report(error);
      throw error;
    },
  );
}

const everReady = new WeakSet<object>();
const watched = new WeakSet<object>();

/**
 * False while a connection that has been ready once is down (reconnecting). ioredis would hold a
 * command in its offline queue and run it when Redis returns — after the caller was told "unavailable"
 * and may have acted on that (a client that retries a refresh would then present a token that was
 * rotated in its absence). So once a client has been ready, nothing is queued behind an outage: the
 * call fails at once. Before the first ready (start-up, lazy connect) commands wait for it as usual.
 */
function usable(redis: RedisClient): boolean {
  const status = (redis as { status?: unknown }).status;
  if (typeof status !== 'string') return true; // ioredis-mock has no connection
  if (status === 'ready') {
    everReady.add(redis);
    return true;
  }
  if (!watched.has(redis)) {
    watched.add(redis);
    redis.on('ready', () => everReady.add(redis));
  }
  if (status === 'wait') return true;
  return !everReady.has(redis) && status !== 'reconnecting' && status !== 'close' && status !== 'end';
}

/**
 * One shared watchdog instead of a timer per command: pending calls sit in a set with a deadline and
 * a coarse interval (unref'd, only while something is pending) rejects the overdue ones. A per-call
 * setTimeout/clearTimeout pair is measurable on the request path; this costs a set insert and delete.
 * Deadlines use the monotonic `performance.now()`, which a test clock patching `Date.now` cannot move.
 */
interface Waiter {
  readonly deadline: number;
  readonly reject: (error: Error) => void;
  readonly script: Script;
  readonly ms: number;
}

const WATCHDOG_TICK_MS = 20;
const waiters = new Set<Waiter>();
let watchdog: ReturnType<typeof setInterval> | null = null;

function watch(waiter: Waiter): void {
  waiters.add(waiter);
  if (watchdog === null) {
    watchdog = setInterval(sweep, WATCHDOG_TICK_MS);
    watchdog.unref();
  }
}

function sweep(): void {
  const now = performance.now();
  for (const waiter of waiters) {
    if (now >= waiter.deadline) {
      waiters.delete(waiter);
      waiter.reject(
        new StoreUnavailableError(`Redis did not answer ${waiter.script.name} within ${waiter.ms} ms`),
      );
    }
  }
  if (waiters.size === 0 && watchdog !== null) {
    clearInterval(watchdog);
    watchdog = null;
  }
}

function translate(error: unknown, script: Script): Error {
  if (error instanceof StoreUnavailableError || error instanceof StoreFailedError) return error;
  const name = error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : String(error);
  if (name === 'ReplyError' && !UNAVAILABLE_REPLY.test(message)) {
    return new StoreFailedError(`Redis rejected script ${script.name}`, { cause: error });
  }
  return new StoreUnavailableError(`Redis is unavailable (${script.name})`, { cause: error });
}

/** Replies from Redis are numbers; from ioredis-mock sometimes numeric strings. Parse both. */
export function toInt(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^-?\d+(\.0+)?$/.test(value)) return Number.parseInt(value, 10);
  throw new StoreFailedError('unexpected reply from Redis');
}

/** An optional string field of a reply (`false`/`null`/empty → undefined). */
export function toOptionalString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** A flat array reply. */
export function toArray(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  throw new StoreFailedError('unexpected reply from Redis');
}
