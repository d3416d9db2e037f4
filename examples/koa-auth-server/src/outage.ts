import { EventEmitter } from 'node:events';
import type { RedisClient } from '@latchkey/core';
import type { Logger } from './logger.js';

/** What {@link RedisAvailability} emits on `'change'`, once per transition. */
export type AvailabilityChange =
  | { readonly up: false; readonly at: number }
  | {
      readonly up: true;
      readonly at: number;
      /** How long Redis was unavailable, in ms. */
      readonly outageMs: number;
      /** Requests answered 503 for it during the outage. */
      readonly failedRequests: number;
    };

/** How often a down Redis is probed (PING) to notice that it is back, in ms. */
const PROBE_INTERVAL_MS = 500;
const PROBE_TIMEOUT_MS = 1000;

/**
 * Whether Redis is serving, as the app saw it: the first unavailable error (or failed {@link check})
 * marks it down (one warn line with the error), every later one is only counted; a PING every 500 ms
 * while down notices the recovery (one info line with the outage's length and count). A frozen Redis
 * keeps its connection "ready", so the client's events alone cannot tell. Read `up`, `transitions` and
 * `failedRequests`, call `check()`, or listen to `'change'` (metrics).
 */
export class RedisAvailability extends EventEmitter<{ change: [AvailabilityChange] }> {
  readonly #redis: RedisClient;
  readonly #logger: Logger;
  readonly #now: () => number;
  #up = true;
  #downSince = 0;
  #failedInOutage = 0;
  #failedTotal = 0;
  #transitions = 0;
  #probe: NodeJS.Timeout | null = null;

  constructor(redis: RedisClient, logger: Logger, now: () => number = () => performance.now()) {
    super();
    this.#redis = redis;
    this.#logger = logger;
    this.#now = now;
  }

  /** False from the first unavailable error (or failed {@link check}) until a PING succeeds again. */
  get up(): boolean {
    return this.#up;
  }
  /** Down and up transitions so far. */
  get transitions(): number {
    return this.#transitions;
  }
  /** Requests answered 503 because Redis was unavailable, since start. */
  get failedRequests(): number {
    return this.#failedTotal;
  }

  /** A request failed with the unavailable error. */
  failed(error: unknown): void {
    this.#failedTotal++;
    if (this.#up) this.#wentDown(error);
    this.#failedInOutage++;
  }

  /**
   * Whether Redis serves now, for a reader that cannot wait for a request to tell (a metrics scrape
   * on an idle server, or one started while Redis was down): while up, one PING (at most 1 s, the
   * command timeout), whose failure begins an outage as a failed request does, without counting a
   * request; while down, false without a round trip (the probe watches for the recovery).
   */
  async check(): Promise<boolean> {
    if (!this.#up) return false;
    const seen = this.#transitions;
    const error = await this.#ping();
    if (error === null) return true;
    // Only evidence newer than every transition counts: a PING sent before an outage that the probe
    // has since seen end must not begin a second one.
    if (this.#up && this.#transitions === seen) this.#wentDown(error);
    return this.#up;
  }

  /** Stops probing (the app is closing). */
  close(): void {
    if (this.#probe !== null) clearInterval(this.#probe);
    this.#probe = null;
  }

  #wentDown(error: unknown): void {
    this.#up = false;
    this.#downSince = this.#now();
    this.#failedInOutage = 0;
    this.#transitions++;
    this.#logger.warn({ err: error }, 'Redis unavailable: answering 503 until it is back');
    this.emit('change', { up: false, at: Date.now() });
    this.#probe = setInterval(() => void this.#probeOnce(), PROBE_INTERVAL_MS);
    this.#probe.unref();
  }

  #probing = false;
  async #probeOnce(): Promise<void> {
    if (this.#probing || this.#up) return;
    this.#probing = true;
    try {
      const error = await this.#ping();
      if (error === null && !this.#up) this.#recovered();
    } finally {
      this.#probing = false;
    }
  }

  /** One PING within {@link PROBE_TIMEOUT_MS}: null when Redis answered, else why not. */
  async #ping(): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer to PING within ${PROBE_TIMEOUT_MS} ms`)),
        PROBE_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([this.#redis.ping(), timeout]);
      return null;
    } catch (error) {
      return error;
    } finally {
      clearTimeout(timer);
    }
  }

  #recovered(): void {
    this.close();
    this.#up = true;
    this.#transitions++;
    const outageMs = Math.round(this.#now() - this.#downSince);
    const failedRequests = this.#failedInOutage;
    this.#logger.info({ outageMs, failedRequests }, 'Redis is back');
    this.emit('change', { up: true, at: Date.now(), outageMs, failedRequests });
  }
}
