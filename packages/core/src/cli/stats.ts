import type { Cluster, Redis } from 'ioredis';
import { KeySpace } from '../keys.js';
import type { RedisClient } from '../redis.js';
import { reason } from './connect.js';
import { type CliIo, CommandFailed, EXIT_OK, json, printable, table, UsageError } from './io.js';

/** What each key kind of the stores holds (keys.ts); kinds not listed are shown by their name. */
const KINDS: Readonly<Record<string, string>> = Object.freeze({
  s: 'sessions',
  rr: 'retired refresh-token digests',
  ix: 'per-user session indexes',
  rb: 'revoke-before marks',
  rj: 'revoked access-token ids',
  'l2:ai': 'login limiter: account+IP',
  'l2:ip': 'login limiter: IP',
  'l2:a': 'login limiter: account',
  'l2:h': 'login limiter: per-IP throttles',
  'l:ai': 'login limiter, old sorted sets (expiring)',
  'l:ip': 'login limiter, old sorted sets (expiring)',
  'l:a': 'login limiter, old sorted sets (expiring)',
  'l:h': 'login limiter, old sorted sets (expiring)',
  c: 'one-time codes',
  cb: 'one-time code budgets',
  wc: 'WebAuthn challenges',
  pk: 'passkey credentials',
  pkx: 'per-user passkey lists',
  pkc: 'passkey id lookups',
  mp: 'pending second-factor logins',
  mf: 'second-factor failures',
  mt: 'last accepted TOTP steps',
  mr: 'recovery codes (keyed digests)',
});

/** Keys asked for per SCAN step. */
const SCAN_COUNT = 1000;
/** A progress line on stderr every this many keys. */
const PROGRESS_EVERY = 10_000;
export const DEFAULT_MAX_KEYS = 1_000_000;

interface KindStats {
  keys: number;
  bytes: number;
  /** Keys without a TTL: each one is a leak (the example's user records aside). */
  withoutTtl: number;
}

/**
 * `stats`: counts, memory (`MEMORY USAGE`) and keys without TTL per key kind under a prefix. SCAN with
 * the prefix escaped, on every master of a Cluster, stopping after `maxKeys` keys; MEMORY USAGE and
 * PTTL go out pipelined per SCAN step. A progress line goes to stderr every 10,000 keys.
 */
export async function stats(
  redis: RedisClient,
  io: CliIo,
  options: {
    readonly prefix: string | undefined;
    readonly maxKeys: string | undefined;
    readonly json: boolean;
  },
): Promise<number> {
  let space: KeySpace;
  try {
    space = new KeySpace(options.prefix);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const maxKeys = parseMaxKeys(options.maxKeys);
  const nodes: Redis[] = isCluster(redis) ? redis.nodes('master') : [redis as Redis];
  const byKind = new Map<string, KindStats>();
  const head = `${space.prefix}:`;
  let scanned = 0;
  let truncated = false;
  let lastProgress = 0;
  const progress = (final: boolean): void => {
    if (!final && scanned - lastProgress < PROGRESS_EVERY) return;
    if (final && lastProgress === 0) return;
    lastProgress = scanned;
    const line = `latchkey stats: ${scanned} keys under ${space.prefix}: scanned${final ? '' : '…'}`;
    if (io.errIsTTY) io.err(final ? `\r${line}\n` : `\r${line}`);
    else io.err(`${line}\n`);
  };
  try {
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, found] = (await node.scan(
          cursor,
          'MATCH',
          space.scanPattern(),
          'COUNT',
          SCAN_COUNT,
        )) as [string, string[]];
        cursor = next;
        const batch = found.slice(0, maxKeys - scanned);
        if (batch.length < found.length) truncated = true;
        if (batch.length > 0) {
          const pipeline = node.pipeline();
          for (const key of batch) {
            pipeline.call('MEMORY', 'USAGE', key);
            pipeline.pttl(key);
          }
          const replies = (await pipeline.exec()) ?? [];
          batch.forEach((key, i) => {
            const kind = kindOf(key, head);
            const entry = byKind.get(kind) ?? { keys: 0, bytes: 0, withoutTtl: 0 };
            const [, bytes] = replies[2 * i] ?? [];
            const [, ttl] = replies[2 * i + 1] ?? [];
            // A key that expired between SCAN and PTTL (-2) is not counted.
            if (ttl === -2) return;
            entry.keys++;
            entry.bytes += typeof bytes === 'number' ? bytes : 0;
            if (ttl === -1) entry.withoutTtl++;
            byKind.set(kind, entry);
          });
          scanned += batch.length;
          progress(false);
        }
        if (scanned >= maxKeys && cursor !== '0') truncated = true;
      } while (cursor !== '0' && !truncated);
      if (truncated) break;
    }
  } catch (error) {
    throw new CommandFailed(`stats stopped: ${reason(error)}`);
  }
  progress(true);
  const kinds = [...byKind.entries()].sort((a, b) => b[1].bytes - a[1].bytes || (a[0] < b[0] ? -1 : 1));
  const total = kinds.reduce(
    (sum, [, k]) => ({
      keys: sum.keys + k.keys,
      bytes: sum.bytes + k.bytes,
      withoutTtl: sum.withoutTtl + k.withoutTtl,
    }),
    { keys: 0, bytes: 0, withoutTtl: 0 },
  );
  if (options.json) {
    io.out(
      json({
        prefix: space.prefix,
        nodes: nodes.length,
        truncated,
        total,
        kinds: Object.fromEntries(
          kinds.map(([kind, k]) => [kind, { ...k, ...(KINDS[kind] ? { holds: KINDS[kind] } : {}) }]),
        ),
      }),
    );
    return EXIT_OK;
  }
  io.out(
    table(
      ['KIND', 'KEYS', 'BYTES', 'NO TTL', 'HOLDS'],
      [
        ...kinds.map(([kind, k]) => [
          printable(kind),
          String(k.keys),
          String(k.bytes),
          String(k.withoutTtl),
          KINDS[kind] ?? '',
        ]),
        ['total', String(total.keys), String(total.bytes), String(total.withoutTtl), ''],
      ],
    ),
  );
  if (truncated) io.out(`stopped after ${scanned} keys (--max-keys): the counts are a lower bound\n`);
  return EXIT_OK;
}

/** `--max-keys`: a whole number ≥ 1 (default 1,000,000). @throws {UsageError} */
export function parseMaxKeys(text: string | undefined): number {
  if (text === undefined) return DEFAULT_MAX_KEYS;
  const value = Number(text);
  if (!/^\d{1,15}$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`--max-keys must be a whole number ≥ 1, got "${text}"`);
  }
  return value;
}

/** `P:<kind>:{<tag>}…` → `<kind>`; a key without a hash tag → `(untagged)`. */
export function kindOf(key: string, head: string): string {
  const rest = key.slice(head.length);
  const brace = rest.indexOf(':{');
  return brace > 0 ? rest.slice(0, brace) : '(untagged)';
}

function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}
