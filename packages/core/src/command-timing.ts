import type { LatchkeyError } from './errors.js';

/** What a store reports about one Redis round trip through {@link StoreOptions.onCommand}. */
export interface CommandTiming {
  /**
   * The operation: the name of the script the store ran (`session-get`, `refresh-rotate`,
   * `limiter-check`, `code-verify`, …; one per Lua file in `src/lua`). A small, fixed set: safe as a
   * metric label.
   */
  readonly operation: string;
  /** From the call to its answer (or timeout), in ms, by the monotonic clock (`performance.now()`). */
  readonly durationMs: number;
  /**
   * `ok`; `unavailable` (`ERR_STORE_UNAVAILABLE`: unreachable, timed out, cannot serve — a 503 at
   * HTTP); `failed` (any other error, e.g. `ERR_STORE_FAILED`: Redis rejected the script).
   */
  readonly outcome: 'ok' | 'unavailable' | 'failed';
  /** The error the store raised, for `unavailable` and `failed`. */
  readonly error?: LatchkeyError | Error;
}

/**
 * Receives the timing of every Redis call of a store (one per public operation on the request path).
 * Called after the call settled, before the caller continues; must not throw (errors are ignored) and
 * should be cheap. Unset, the stores do no timing work at all.
 *
 * @example
 * // Prometheus (prom-client): a histogram by operation and outcome.
 * const redisSeconds = new Histogram({ name: 'latchkey_redis_command_duration_seconds',
 *   help: 'Redis round trips of latchkey stores', labelNames: ['operation', 'outcome'] });
 * const sessions = new SessionStore({ redis,
 *   onCommand: (t) => redisSeconds.observe({ operation: t.operation, outcome: t.outcome }, t.durationMs / 1000) });
 * @example
 * // OpenTelemetry: a histogram (a span per call would need the start: use durationMs backwards).
 * const histogram = meter.createHistogram('latchkey.redis.duration', { unit: 'ms' });
 * const onCommand: CommandHook = (t) => histogram.record(t.durationMs, { 'latchkey.operation': t.operation, 'latchkey.outcome': t.outcome });
 */
export type CommandHook = (timing: CommandTiming) => void;
