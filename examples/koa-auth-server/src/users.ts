import { createHash, randomBytes } from 'node:crypto';
import {
  type Clock,
  type RedisClient,
  StoreFailedError,
  StoreUnavailableError,
  systemClock,
  userTag,
} from '@latchkey/core';

/**
 * The example's users, in Redis through the application's connection. This is the one piece of state
 * the example owns; everything else (sessions, tokens, limits, codes) is latchkey's.
 *
 * | key | tag | type | holds | TTL |
 * |---|---|---|---|---|
 * | `P:u:{<userTag(id)>}` | the user (latchkey's tag) | hash | `id`, `email`, `ph` (argon2id PHC), `ev` (0/1), `ca` (ms), `pa` (ms), `ts` (the TOTP secret, sealed by latchkey's `SecretBox`, once confirmed) | 7 days until verified, then none |
 * | `P:ut:{<userTag(id)>}` | the user | string | a TOTP setup not yet confirmed (its secret, sealed) | {@link TOTP_SETUP_TTL_MS} |
 * | `P:ue:{<sha256(email)>}` | the email digest | string | `<userId>\|<claimedAt ms>` | the same as its user |
 *
 * The two keys live in different slots, so no operation spans both atomically. The order of writes
 * keeps every state reachable from outside consistent: registration claims the email first (`SET NX`:
 * of concurrent registrations exactly one wins), then writes the user; a claim whose user does not
 * exist is invisible to lookups and is taken over once it is older than {@link ORPHAN_CLAIM_MS}
 * (a registration that died between its two writes never blocks the address for long).
 */

/** A user as the application sees it (the password hash stays inside {@link UserStore}). */
export interface User {
  readonly id: string;
  readonly email: string;
  readonly emailVerified: boolean;
  readonly createdAt: number;
}

/** A user with what only the server reads: the password hash and the sealed TOTP secret. */
export interface StoredUser extends User {
  readonly passwordHash: string;
  /** The confirmed TOTP secret, sealed (`SecretBox`, bound to the user id); null when TOTP is off. */
  readonly totpSealed: string | null;
}

/** How long a TOTP setup waits for its confirmation, in ms. */
export const TOTP_SETUP_TTL_MS = 15 * 60 * 1000;

/** Outcome of {@link UserStore.confirmTotp}. */
export type ConfirmTotpResult = 'confirmed' | 'no_user' | 'already_enabled' | 'no_pending_setup';

/** Options of {@link UserStore}. */
export interface UserStoreOptions {
  readonly redis: RedisClient;
  /**
   * Key prefix of the user records.
   * @default 'app'
   */
  readonly prefix?: string;
  /** @default systemClock */
  readonly clock?: Clock;
  /**
   * How long an unverified account lives, in ms.
   * @default 7 days
   */
  readonly unverifiedTtlMs?: number;
  /**
   * How long to wait for Redis before failing with `StoreUnavailableError`, in ms.
   * @default 1000
   */
  readonly commandTimeoutMs?: number;
}

/** Result of {@link UserStore.register}. */
export type RegisterResult = { readonly ok: true; readonly user: User } | { readonly ok: false };

/** A claim without its user is a registration in flight for at most this long, in ms. */
export const ORPHAN_CLAIM_MS = 60_000;

const DAY_MS = 24 * 60 * 60 * 1000;

// Returns '' after claiming, else the current claim value.
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if type(current) == 'string' then
  if ARGV[3] == '' or current ~= ARGV[3] then return current end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ''`;

// Deletes the claim when it still belongs to the user (ARGV[1] = '<userId>|').
const RELEASE = `
local current = redis.call('GET', KEYS[1])
if type(current) == 'string' and string.sub(current, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

// Makes the claim permanent when it still belongs to the user.
const PERSIST_CLAIM = `
local current = redis.call('GET', KEYS[1])
if type(current) == 'string' and string.sub(current, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('PERSIST', KEYS[1])
  return 1
end
return 0`;

const CREATE = `
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'email', ARGV[2], 'ph', ARGV[3], 'ev', '0', 'ca', ARGV[4], 'pa', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

// Writes only to an existing record (one that expired is never resurrected without a TTL), and with
// ARGV[3] set only while the stored hash is still that one (compare-and-set). ARGV[4] = '1' (a reset
// by emailed code) also marks the email verified and makes the record permanent, in the same step.
const SET_PASSWORD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'ph') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'ph', ARGV[1], 'pa', ARGV[2])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'ev', '1')
  redis.call('PERSIST', KEYS[1])
end
return 1`;

const VERIFY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'ev', '1')
redis.call('PERSIST', KEYS[1])
return 1`;

// A TOTP setup: KEYS[1] the user, KEYS[2] its pending setup (same tag); ARGV[1] the sealed secret,
// ARGV[2] its TTL in ms. 0: no user; 2: TOTP already on; 1: stored (replacing an unconfirmed one).
const TOTP_SETUP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if type(redis.call('HGET', KEYS[1], 'ts')) == 'string' then return 2 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1`;

// Turns the pending setup ARGV[1] (the one whose code was just checked) into the user's TOTP secret.
// 0: no user; 2: TOTP already on; 3: no such pending setup (expired, or replaced meanwhile); 1: on.
const TOTP_CONFIRM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if type(redis.call('HGET', KEYS[1], 'ts')) == 'string' then return 2 end
local pending = redis.call('GET', KEYS[2])
if type(pending) ~= 'string' or pending ~= ARGV[1] then return 3 end
redis.call('HSET', KEYS[1], 'ts', ARGV[1])
redis.call('DEL', KEYS[2])
return 1`;

// Removes the TOTP secret while it is still ARGV[1] (the one the disabling code was checked against).
const TOTP_DISABLE = `
local current = redis.call('HGET', KEYS[1], 'ts')
if type(current) ~= 'string' or current ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'ts')
return 1`;

const SCRIPTS = {
  appUserTotpSetupV1: { numberOfKeys: 2, lua: TOTP_SETUP },
  appUserTotpConfirmV1: { numberOfKeys: 2, lua: TOTP_CONFIRM },
  appUserTotpDisableV1: { numberOfKeys: 1, lua: TOTP_DISABLE },
  appUserClaimV1: { numberOfKeys: 1, lua: CLAIM },
  appUserReleaseV1: { numberOfKeys: 1, lua: RELEASE },
  appUserPersistClaimV1: { numberOfKeys: 1, lua: PERSIST_CLAIM },
  appUserCreateV1: { numberOfKeys: 1, lua: CREATE },
  appUserSetPasswordV3: { numberOfKeys: 1, lua: SET_PASSWORD },
  appUserVerifyV1: { numberOfKeys: 1, lua: VERIFY },
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

const UNAVAILABLE_REPLY =
  /^(CLUSTERDOWN|TRYAGAIN|LOADING|BUSY|READONLY|MASTERDOWN|OOM|NOREPLICAS|MOVED|ASK)\b/;

/** Users and their email index. */
export class UserStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;

  constructor(options: UserStoreOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix ?? 'app';
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(this.#prefix)) throw new RangeError('prefix must not hold braces');
    this.#clock = options.clock ?? systemClock;
    this.#ttlMs = options.unverifiedTtlMs ?? 7 * DAY_MS;
    if (!Number.isSafeInteger(this.#ttlMs) || this.#ttlMs < 1000) {
      throw new RangeError('unverifiedTtlMs must be a whole number of ms ≥ 1000');
    }
    this.#timeoutMs = options.commandTimeoutMs ?? 1000;
    const client = this.#redis as unknown as {
      defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
    };
    for (const [name, definition] of Object.entries(SCRIPTS)) client.defineCommand(name, definition);
  }

  userKey(userId: string): string {
    return `${this.#prefix}:u:{${userTag(userId)}}`;
  }

  totpSetupKey(userId: string): string {
    return `${this.#prefix}:ut:{${userTag(userId)}}`;
  }

  emailKey(email: string): string {
    const digest = createHash('sha256')
      .update(`koa-auth-server/email\u0000${email}`, 'utf8')
      .digest('base64url');
    return `${this.#prefix}:ue:{${digest}}`;
  }

  /**
   * Registers `email` (already normalized) with a password hash computed by `hashPassword` once the
   * address is claimed (no hashing work is spent on a taken address). Of concurrent registrations of
   * one address exactly one succeeds.
   * @throws {StoreUnavailableError} when Redis fails; a claim already made is released again.
   */
  async register(email: string, hashPassword: () => Promise<string>): Promise<RegisterResult> {
    const userId = randomBytes(16).toString('base64url');
    const now = this.#clock.now();
    const claimValue = `${userId}|${now}`;
    const emailKey = this.emailKey(email);
    let current = toText(await this.#run('appUserClaimV1', [emailKey], [claimValue, this.#ttlMs, '']));
    if (current !== '') {
      // Taken — unless the claim is an orphan left by a registration that died half-way.
      const [ownerId = '', claimedAtText = ''] = current.split('|');
      const claimedAt = Number(claimedAtText);
      const ownerExists = ownerId !== '' && (await this.#exists(this.userKey(ownerId)));
      if (ownerExists || !(now - claimedAt >= ORPHAN_CLAIM_MS)) return { ok: false };
      current = toText(await this.#run('appUserClaimV1', [emailKey], [claimValue, this.#ttlMs, current]));
      if (current !== '') return { ok: false };
    }
    try {
      const passwordHash = await hashPassword();
      await this.#run(
        'appUserCreateV1',
        [this.userKey(userId)],
        [userId, email, passwordHash, now, this.#ttlMs],
      );
    } catch (error) {
      // Not awaited: during an outage it would time out too, doubling the time to the 503. A claim
      // left behind is an orphan that a later registration takes over.
      void this.#run('appUserReleaseV1', [emailKey], [`${userId}|`]).catch(() => undefined);
      throw error;
    }
    return { ok: true, user: { id: userId, email, emailVerified: false, createdAt: now } };
  }

  /** The user registered under `email` (normalized), or null. */
  async findByEmail(email: string): Promise<StoredUser | null> {
    const claim = await this.#call(() => this.#redis.get(this.emailKey(email)));
    const ownerId = typeof claim === 'string' ? (claim.split('|')[0] ?? '') : '';
    // The second read happens for unknown addresses too, so both answer after the same round trips.
    const user = await this.#load(ownerId === '' ? randomBytes(16).toString('base64url') : ownerId);
    return user !== null && user.email === email ? user : null;
  }

  /** The user with `userId`, or null (never registered, or expired unverified). */
  async findById(userId: string): Promise<StoredUser | null> {
    return this.#load(userId);
  }

  /**
   * Replaces the password hash. With `expected`, only while the stored hash is still that one (a
   * password change must not overwrite a reset that landed while the current password was checked).
   * False when the user no longer exists or its hash is no longer `expected`.
   */
  async setPasswordHash(userId: string, passwordHash: string, expected?: string): Promise<boolean> {
    const reply = await this.#run(
      'appUserSetPasswordV3',
      [this.userKey(userId)],
      [passwordHash, this.#clock.now(), expected ?? '', '0'],
    );
    return Number(reply) === 1;
  }

  /**
   * A password reset by emailed code: replaces the hash and — the code proved the mailbox — marks the
   * email verified and makes the account permanent in the same write. The claim is made permanent
   * first (as {@link markEmailVerified} does), so a failure in between never leaves a permanent user
   * whose address another registration can take. False when the user or its claim is gone.
   */
  async resetPassword(user: User, passwordHash: string): Promise<boolean> {
    const claimed = await this.#run('appUserPersistClaimV1', [this.emailKey(user.email)], [`${user.id}|`]);
    if (Number(claimed) !== 1) return false;
    const reply = await this.#run(
      'appUserSetPasswordV3',
      [this.userKey(user.id)],
      [passwordHash, this.#clock.now(), '', '1'],
    );
    return Number(reply) === 1;
  }

  /**
   * Marks the email verified and makes the account permanent: the claim first, then the user, so that
   * a failure in between leaves a permanent claim of an expiring user (taken over later as an orphan),
   * never a permanent user whose address another registration can take.
   * False when the user or its claim is gone.
   */
  async markEmailVerified(user: User): Promise<boolean> {
    const claimed = await this.#run('appUserPersistClaimV1', [this.emailKey(user.email)], [`${user.id}|`]);
    if (Number(claimed) !== 1) return false;
    return Number(await this.#run('appUserVerifyV1', [this.userKey(user.id)], [])) === 1;
  }

  /**
   * Stores a new TOTP setup (its secret sealed), replacing an unconfirmed one; it lives
   * {@link TOTP_SETUP_TTL_MS}. 'already_enabled' when the user has TOTP on, 'no_user' when gone.
   */
  async beginTotpSetup(userId: string, sealed: string): Promise<'stored' | 'no_user' | 'already_enabled'> {
    const reply = Number(
      await this.#run(
        'appUserTotpSetupV1',
        [this.userKey(userId), this.totpSetupKey(userId)],
        [sealed, TOTP_SETUP_TTL_MS],
      ),
    );
    return reply === 1 ? 'stored' : reply === 2 ? 'already_enabled' : 'no_user';
  }

  /** The sealed secret of the user's unconfirmed TOTP setup, or null. */
  async pendingTotpSetup(userId: string): Promise<string | null> {
    const value = await this.#call(() => this.#redis.get(this.totpSetupKey(userId)));
    return typeof value === 'string' && value !== '' ? value : null;
  }

  /**
   * Turns the pending setup `sealed` (whose code the caller just checked) into the user's TOTP secret
   * and deletes the setup, atomically: of two confirmations of one setup only one succeeds, and a setup
   * replaced meanwhile is not confirmed by a code of the old one.
   */
  async confirmTotp(userId: string, sealed: string): Promise<ConfirmTotpResult> {
    const reply = Number(
      await this.#run('appUserTotpConfirmV1', [this.userKey(userId), this.totpSetupKey(userId)], [sealed]),
    );
    if (reply === 1) return 'confirmed';
    if (reply === 2) return 'already_enabled';
    return reply === 3 ? 'no_pending_setup' : 'no_user';
  }

  /** Turns TOTP off while its secret is still `sealed`. False when it is off or was replaced. */
  async disableTotp(userId: string, sealed: string): Promise<boolean> {
    return Number(await this.#run('appUserTotpDisableV1', [this.userKey(userId)], [sealed])) === 1;
  }

  async #load(userId: string): Promise<StoredUser | null> {
    const record = await this.#call(() => this.#redis.hgetall(this.userKey(userId)));
    const { id, email, ph, ev, ca, ts } = record as Partial<Record<string, string>>;
    if (id !== userId || email === undefined || ph === undefined) return null;
    return {
      id,
      email,
      passwordHash: ph,
      emailVerified: ev === '1',
      createdAt: Number(ca ?? 0),
      totpSealed: ts === undefined || ts === '' ? null : ts,
    };
  }

  async #exists(key: string): Promise<boolean> {
    return (await this.#call(() => this.#redis.exists(key))) === 1;
  }

  #run(name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
    return this.#call(() => {
      const fn = (this.#redis as unknown as Record<string, ScriptFn>)[name];
      if (typeof fn !== 'function') throw new StoreFailedError(`script ${name} is not defined`);
      return fn.call(this.#redis, ...keys, ...args.map(String));
    });
  }

  /** Every Redis failure becomes latchkey's unavailable error, which the app answers with 503. */
  async #call<T>(fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded like latchkey's own calls, whatever options the client was created with.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new StoreUnavailableError(`Redis did not answer within ${this.#timeoutMs} ms`)),
          this.#timeoutMs,
        );
      });
      return await Promise.race([fn(), timeout]);
    } catch (error) {
      if (error instanceof StoreUnavailableError || error instanceof StoreFailedError) throw error;
      const name = error instanceof Error ? error.name : '';
      const message = error instanceof Error ? error.message : '';
      if (name === 'ReplyError' && !UNAVAILABLE_REPLY.test(message)) {
        throw new StoreFailedError('Redis rejected a user-store command', { cause: error });
      }
      throw new StoreUnavailableError('Redis is unavailable (user store)', { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}

function toText(reply: unknown): string {
  if (typeof reply === 'string') return reply;
  throw new StoreFailedError('unexpected reply from Redis (user store)');
}
