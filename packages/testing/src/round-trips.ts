import type { Cluster, Redis } from 'ioredis';

/** Counts the round trips a client makes. */
export interface RoundTripCounter {
  /** Round trips since creation or the last {@link RoundTripCounter.reset}. */
  readonly count: number;
  /** The command names sent, in order (`evalsha` for a script call). */
  readonly commands: readonly string[];
  /** Zeroes the count. */
  reset(): void;
  /** Runs `fn` and returns how many round trips it made (the counter is reset first). */
  measure(fn: () => Promise<unknown>): Promise<number>;
}

const NOT_COMMANDS = new Set([
  'connect',
  'disconnect',
  'duplicate',
  'defineCommand',
  'pipeline',
  'multi',
  'createBuiltinCommand',
  'customCommand',
  '_signalModifiedKey',
]);

/**
 * Starts counting the Redis round trips `client` makes: every command sent counts once, and a script
 * call counts once even when ioredis retries an EVALSHA as EVAL after `NOSCRIPT`. Works on ioredis
 * (single node and Cluster) and on {@link createFakeRedis}.
 *
 * @example
 * const counter = countRoundTrips(redis);
 * assert.is(await counter.measure(() => sessions.get(token)), 1);
 */
interface Tally {
  count: number;
  readonly commands: string[];
}

/** The counters attached to one client: it is instrumented once, however many counters watch it. */
const tallies = new WeakMap<object, Set<Tally>>();

export function countRoundTrips(client: Redis | Cluster): RoundTripCounter {
  const tally: Tally = { count: 0, commands: [] };
  let watching = tallies.get(client);
  if (watching === undefined) {
    watching = new Set();
    tallies.set(client, watching);
    instrument(client, watching);
  }
  watching.add(tally);

  const counter: RoundTripCounter = {
    get count() {
      return tally.count;
    },
    get commands() {
      return tally.commands.slice();
    },
    reset() {
      tally.count = 0;
      tally.commands.length = 0;
    },
    async measure(fn) {
      counter.reset();
      await fn();
      return tally.count;
    },
  };
  return counter;
}

function instrument(client: Redis | Cluster, watching: Set<Tally>): void {
  const sent = (name: string): void => {
    for (const tally of watching) {
      tally.count++;
      tally.commands.push(name);
    }
  };
  const target = client as unknown as Record<string, unknown> & {
    sendCommand?: (command: { name: string; reject: (error: Error) => void }, ...rest: unknown[]) => unknown;
  };
  const isMock = typeof target.sendCommand !== 'function' || 'customCommands' in target;

  if (!isMock) {
    const original = target.sendCommand as NonNullable<typeof target.sendCommand>;
    target.sendCommand = function counted(this: unknown, command, ...rest) {
      sent(command.name);
      // ioredis resends a script after NOSCRIPT (its promise never rejects with it, so watch the raw
      // rejection); the resend is the same logical round trip.
      const reject = command.reject;
      command.reject = (error: Error) => {
        if (error?.message?.includes('NOSCRIPT')) for (const tally of watching) tally.count--;
        reject.call(command, error);
      };
      return original.call(this, command, ...rest);
    };
    return;
  }
  const wrap = (name: string): void => {
    const fn = target[name];
    if (typeof fn !== 'function' || NOT_COMMANDS.has(name)) return;
    target[name] = function counted(this: unknown, ...args: unknown[]) {
      sent(name);
      return (fn as (...a: unknown[]) => unknown).apply(this, args);
    };
  };
  for (const name of Object.keys(target)) wrap(name);
  const defineCommand = target['defineCommand'] as (name: string, definition: unknown) => void;
  target['defineCommand'] = function (this: unknown, name: string, definition: unknown) {
    defineCommand.call(this, name, definition);
    wrap(name);
  };
}
