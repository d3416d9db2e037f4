/** Options of {@link TestClock}. */
export interface TestClockOptions {
  /**
   * The starting instant, epoch ms.
   * @default the real `Date.now()` at construction
   */
  readonly start?: number;
}

const realDateNow = Date.now.bind(Date);
let installed: TestClock | null = null;

/**
 * A clock that only moves when told to, for latchkey's `clock` option.
 *
 * ioredis-mock decides key expiry with `Date.now()`, lazily, when a key is touched. So that the fake
 * Redis expires keys along with this clock, {@link TestClock.install} replaces `Date.now` process-wide
 * with this clock's time until {@link TestClock.restore} (which the backend harness calls after every
 * test; call it yourself in an `after.each` when you install by hand). Only one clock is installed at a
 * time; installing another restores the first.
 *
 * @example
 * const clock = new TestClock();
 * const redis = createFakeRedis({ clock }); // installs the clock
 * clock.advance(31 * 24 * 3600_000);        // 31 days later, for the stores and for the fake's TTLs
 * clock.restore();
 */
export class TestClock {
  #now: number;

  constructor(options: TestClockOptions = {}) {
    const start = options.start ?? realDateNow();
    if (!Number.isSafeInteger(start) || start < 0)
      throw new RangeError('start must be a whole number of ms ≥ 0');
    this.#now = start;
  }

  /** The current instant of this clock, epoch ms. */
  now(): number {
    return this.#now;
  }

  /** Moves the clock forward by `ms` (≥ 0). */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError('advance(ms) takes a finite number ≥ 0');
    this.#now += Math.floor(ms);
  }

  /** Sets the clock to an instant, which may not be earlier than the current one. */
  set(at: number): void {
    if (!Number.isFinite(at) || at < this.#now)
      throw new RangeError('set(at) cannot move the clock backwards');
    this.#now = Math.floor(at);
  }

  /** Makes `Date.now()` return this clock's time (so ioredis-mock expires keys by it). Idempotent. */
  install(): this {
    if (installed !== this) {
      installed = this;
      Date.now = () => this.#now;
    }
    return this;
  }

  /** Puts the real `Date.now` back if this clock is the installed one. Safe to call more than once. */
  restore(): void {
    if (installed === this) {
      installed = null;
      Date.now = realDateNow;
    }
  }

  /** True while this clock drives `Date.now()`. */
  get isInstalled(): boolean {
    return installed === this;
  }
}

/** The real `Date.now`, unaffected by an installed {@link TestClock}. */
export function realNow(): number {
  return realDateNow();
}
