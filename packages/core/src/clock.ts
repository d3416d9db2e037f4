/**
 * The source of "now" for every latchkey class. Validity is always decided against `clock.now()`
 * passed to Redis as an argument; Redis TTLs only collect garbage.
 */
export interface Clock {
  /** The current instant in epoch milliseconds. */
  now(): number;
}

/** The wall clock. The only place in latchkey that reads `Date.now()`. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
});
