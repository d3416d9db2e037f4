import { type Clock, InvalidOptionError, systemClock } from '@latchkey/core';

/** Throws unless a middleware factory was given an options object (a JavaScript caller may not). */
export function checkOptionsObject(options: unknown): asserts options is object {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options must be an object');
  }
}

/** A boolean option: `value ?? fallback`, or InvalidOptionError naming it. */
export function booleanOption(name: string, value: boolean | undefined, fallback: boolean): boolean {
  const resolved = value ?? fallback;
  if (typeof resolved !== 'boolean') throw new InvalidOptionError(`${name} must be a boolean`);
  return resolved;
}

/** The `clock` option: the given clock, else the system clock. */
export function clockOption(clock: Clock | undefined): Clock {
  const resolved = clock ?? systemClock;
  if (typeof resolved?.now !== 'function') throw new InvalidOptionError('clock must have a now() method');
  return resolved;
}

/** A callback option that must be given. */
export function requiredFunction<F>(name: string, value: F | undefined): F {
  if (typeof value !== 'function') throw new InvalidOptionError(`${name} must be a function`);
  return value;
}

/** A callback option that may be left out (undefined then). */
export function optionalFunction<F>(name: string, value: F | undefined): F | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new InvalidOptionError(`${name} must be a function`);
  }
  return value;
}
