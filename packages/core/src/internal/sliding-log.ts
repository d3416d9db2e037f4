import type { CodeLimit } from '../one-time-codes.js';
import { toOptionalString } from './script.js';

// The budgets and caps that scripts keep as sliding logs: the instants of recent events, a comma list
// in one string or hash field, trimmed to the window by the script that appends to it.

/** @internal Instants from a script reply: a comma list of epoch-ms strings, sorted. */
export function parseInstants(value: unknown): number[] {
  const text = toOptionalString(value) ?? '';
  return text
    .split(',')
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * @internal How long until a sliding budget reopens: until fewer than `limit.max` of the sorted
 * `instants` lie inside the window, in ms (≥ 1).
 */
export function waitFor(instants: readonly number[], limit: CodeLimit, now: number): number {
  const inside = instants.filter((at) => at > now - limit.windowMs);
  const oldestThatMustLeave = inside[inside.length - limit.max];
  if (oldestThatMustLeave === undefined) return 1;
  return Math.max(1, oldestThatMustLeave + limit.windowMs - now);
}
