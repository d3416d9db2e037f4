import type { Cluster, Redis } from 'ioredis';
import { KeySpace, userTag } from '../../src/index.js';

/** What {@link writeSessionRecord} writes (the session record of src/lua/README.md). */
export interface SessionRecordInput {
  readonly prefix: string;
  readonly userId: string;
  readonly sessionId: string;
  readonly now: number;
  /** @default now */
  readonly authenticatedAt?: number;
  /** @default 1 h */
  readonly idleMs?: number;
  /** @default 24 h */
  readonly absoluteMs?: number;
}

/**
 * Writes a live session record per the shared schema (hash `P:s:{T}:<sid>`, fields `m:*`, ARGV-style
 * strings, a TTL). For access-token tests that must not depend on the session store's own API.
 */
export async function writeSessionRecord(redis: Redis | Cluster, input: SessionRecordInput): Promise<string> {
  const idleMs = input.idleMs ?? 3600_000;
  const absoluteMs = input.absoluteMs ?? 24 * 3600_000;
  const key = new KeySpace(input.prefix).session(userTag(input.userId), input.sessionId);
  await redis.hset(key, {
    'm:uid': input.userId,
    'm:ca': String(input.now),
    'm:aa': String(input.authenticatedAt ?? input.now),
    'm:sa': String(input.now),
    'm:it': String(idleMs),
    'm:ie': String(input.now + Math.min(idleMs, absoluteMs)),
    'm:ae': String(input.now + absoluteMs),
  });
  await redis.pexpire(key, absoluteMs + 60_000);
  return key;
}

/** Sets the user's "revoke everything before `at`" mark, as revoke-all does. */
export async function writeRevokeBeforeMark(
  redis: Redis | Cluster,
  prefix: string,
  userId: string,
  at: number,
): Promise<void> {
  await redis.set(new KeySpace(prefix).revokeBefore(userTag(userId)), String(at), 'PX', 25 * 3600_000);
}
