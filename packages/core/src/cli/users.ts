import { InvalidInputError, InvalidOptionError } from '../errors.js';
import type { DurabilityOptions } from '../internal/durability.js';
import type { RedisClient } from '../redis.js';
import { isSessionId, type Session, SessionStore, type SessionStoreOptions } from '../sessions.js';
import { type CliIo, CommandFailed, EXIT_FAILED, EXIT_OK, json, printable, table, UsageError } from './io.js';

/** What the user commands take besides the user: the stores' options, as the example server reads them. */
export interface UserCommandOptions {
  readonly prefix: string | undefined;
  readonly waitReplicas: string | undefined;
  readonly json: boolean;
}

/**
 * A {@link SessionStore} configured as the example server configures its own: the prefix (`--prefix`,
 * default `lk`), the session lifetimes from `SESSION_IDLE_TTL_SECONDS` / `SESSION_ABSOLUTE_TTL_SECONDS`
 * (the revoke-before mark must outlive the longest session, so the CLI must know it), and replica
 * acknowledgement of revocations from `--wait-replicas` or `REDIS_WAIT_REPLICAS` /
 * `REDIS_WAIT_TIMEOUT_MS`. No secret is needed: sessions are found by user id.
 */
function sessionStore(
  redis: RedisClient,
  io: CliIo,
  options: UserCommandOptions,
  clock: { now(): number },
): SessionStore {
  const { idle, absolute, durability } = storeSettings(io, options);
  const storeOptions: SessionStoreOptions = {
    redis,
    clock,
    idleTimeoutMs: idle * 1000,
    absoluteTimeoutMs: absolute * 1000,
    lastSeenResolutionMs: Math.min(60_000, Math.floor((idle * 1000) / 2)),
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(durability === undefined ? {} : { durability }),
  };
  try {
    return new SessionStore(storeOptions);
  } catch (error) {
    if (error instanceof InvalidOptionError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * The lifetimes and durability the user commands' store takes from the environment; called before
 * connecting too, so that a bad value is a usage error (exit 2) whether or not Redis answers.
 * @throws {UsageError}
 */
export function storeSettings(
  io: CliIo,
  options: UserCommandOptions,
): { idle: number; absolute: number; durability: DurabilityOptions | undefined } {
  const env = io.env;
  const idle = seconds(env, 'SESSION_IDLE_TTL_SECONDS', 3600);
  const absolute = seconds(env, 'SESSION_ABSOLUTE_TTL_SECONDS', 86_400);
  const durability = waitReplicas(options.waitReplicas ?? env['REDIS_WAIT_REPLICAS'], env);
  return { idle, absolute, durability };
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) {
    throw new UsageError(`${name} must be a whole number of seconds ≥ 1, got "${text}"`);
  }
  return Number(text);
}

/** `--wait-replicas` / `REDIS_WAIT_REPLICAS` (0 or unset: off) with `REDIS_WAIT_TIMEOUT_MS`. */
export function waitReplicas(
  text: string | undefined,
  env: NodeJS.ProcessEnv,
): DurabilityOptions | undefined {
  const value = text?.trim();
  if (value === undefined || value === '' || value === '0') return undefined;
  if (!/^\d{1,3}$/.test(value))
    throw new UsageError(`--wait-replicas must be a whole number, got "${value}"`);
  const timeoutText = env['REDIS_WAIT_TIMEOUT_MS']?.trim();
  const timeoutMs = timeoutText === undefined || timeoutText === '' ? 250 : Number(timeoutText);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new UsageError(`REDIS_WAIT_TIMEOUT_MS must be a whole number of ms ≥ 1, got "${timeoutText}"`);
  }
  return { replicas: Number(value), timeoutMs };
}

/** Turns the stores' complaints about a user id or session id into usage errors (exit 2). */
async function asUsage<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof InvalidInputError) throw new UsageError(error.message);
    throw error;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** One session as the CLI shows it: what an operator needs, never the application's session data. */
function view(session: Session<Record<string, unknown>>): Record<string, unknown> {
  return {
    id: session.id,
    createdAt: iso(session.createdAt),
    authenticatedAt: iso(session.authenticatedAt),
    lastSeenAt: iso(session.lastSeenAt),
    expiresAt: iso(session.expiresAt),
    absoluteExpiresAt: iso(session.absoluteExpiresAt),
    ...(session.ip === undefined ? {} : { ip: session.ip }),
    ...(session.userAgent === undefined ? {} : { userAgent: session.userAgent }),
    amr: session.amr ?? [],
  };
}

/** `sessions list <userId>`: the user's live sessions, newest first. */
export async function sessionsList(
  redis: RedisClient,
  io: CliIo,
  userId: string,
  options: UserCommandOptions,
): Promise<number> {
  const store = sessionStore(redis, io, options, { now: () => Date.now() });
  const sessions = await asUsage(() => store.listForUser(userId));
  if (options.json) {
    io.out(json({ userId, sessions: sessions.map(view) }));
    return EXIT_OK;
  }
  if (sessions.length === 0) {
    io.out(`no live sessions for user ${printable(JSON.stringify(userId))}\n`);
    return EXIT_OK;
  }
  io.out(
    `${sessions.length} live session${sessions.length === 1 ? '' : 's'} of user ${printable(JSON.stringify(userId))}, newest first\n`,
  );
  io.out(
    table(
      ['ID', 'CREATED', 'LAST SEEN', 'EXPIRES', 'AMR', 'IP', 'USER AGENT'],
      sessions.map((s) => [
        s.id,
        iso(s.createdAt),
        iso(s.lastSeenAt),
        iso(s.expiresAt),
        (s.amr ?? []).join(',') || '-',
        printable(s.ip ?? '-'),
        printable(s.userAgent ?? '-'),
      ]),
    ),
  );
  return EXIT_OK;
}

/** `sessions revoke <userId> <sessionId>`: ends one session (and its refresh and access tokens). */
export async function sessionsRevokeOne(
  redis: RedisClient,
  io: CliIo,
  userId: string,
  sessionId: string,
  options: UserCommandOptions,
): Promise<number> {
  if (!isSessionId(sessionId)) {
    throw new UsageError('a session id is 22 characters of base64url (as `sessions list` shows it)');
  }
  const store = sessionStore(redis, io, options, { now: () => Date.now() });
  const revoked = await asUsage(() => store.revoke(userId, sessionId));
  if (options.json) io.out(json({ userId, sessionId, revoked }));
  else if (revoked) io.out(`revoked session ${sessionId}\n`);
  if (!revoked) {
    if (!options.json) throw new CommandFailed(`no live session ${sessionId} for that user`);
    return EXIT_FAILED;
  }
  return EXIT_OK;
}

/**
 * `sessions revoke <userId> --all` and `tokens revoke-before <userId>`: one call of
 * `revokeAllForUser` — every session, refresh token and access token of the user, and the
 * revoke-before mark, so that a login whose password check began earlier cannot complete.
 */
export async function revokeEverything(
  redis: RedisClient,
  io: CliIo,
  userId: string,
  options: UserCommandOptions,
): Promise<number> {
  let at = 0;
  const store = sessionStore(redis, io, options, {
    now: () => {
      at = Date.now();
      return at;
    },
  });
  const count = await asUsage(() => store.revokeAllForUser(userId));
  // The store writes the mark as its instant + 1: what was authenticated at `at` is refused too.
  const mark = at + 1;
  if (options.json) {
    io.out(json({ userId, revokedSessions: count, revokedBefore: iso(mark), revokedBeforeMs: mark }));
  } else {
    io.out(
      `revoked ${count} session${count === 1 ? '' : 's'} with their refresh and access tokens; ` +
        `credentials checked before ${iso(mark)} no longer create a session\n`,
    );
  }
  return EXIT_OK;
}
