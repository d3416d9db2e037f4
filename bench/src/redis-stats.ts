// Server-side counts from INFO commandstats: every command Redis executed, those inside scripts
// included (a script call counts itself plus each redis.call it makes).
import type { Redis } from 'ioredis';

const IGNORED = new Set(['info', 'config|resetstat', 'config|get', 'ping', 'client|setinfo', 'select']);

export async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const text = await redis.info('commandstats');
  const stats = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m !== null && !IGNORED.has(m[1]!)) stats.set(m[1]!, Number(m[2]));
  }
  return stats;
}

/** Per-command calls between two snapshots. */
export function diffStats(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const diff = new Map<string, number>();
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0);
    if (delta > 0) diff.set(name, delta);
  }
  return diff;
}

export function total(stats: Map<string, number>): number {
  let sum = 0;
  for (const calls of stats.values()) sum += calls;
  return sum;
}

/** `evalsha 1.00 · get 2.00` per request, largest first. */
export function mix(stats: Map<string, number>, requests: number): string {
  if (requests <= 0) return '';
  return [...stats.entries()]
    .sort((a, b) => b[1] - a[1])
    .filter(([, calls]) => calls / requests >= 0.005)
    .map(([name, calls]) => `${name} ${(calls / requests).toFixed(2)}`)
    .join(' · ');
}
