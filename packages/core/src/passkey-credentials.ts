import { InvalidInputError, InvalidOptionError, StoreFailedError } from './errors.js';
import { emitSafely } from './events.js';
import { sha256 } from './internal/crypto.js';
import {
  positiveInt,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toArray, toInt, toOptionalString } from './internal/script.js';
import { userTag } from './keys.js';
import { passkeyAdd } from './lua/generated/passkey-add.js';
import { passkeyClaim } from './lua/generated/passkey-claim.js';
import { passkeyCount } from './lua/generated/passkey-count.js';
import { passkeyList } from './lua/generated/passkey-list.js';
import { passkeyLookup } from './lua/generated/passkey-lookup.js';
import { passkeyRemove } from './lua/generated/passkey-remove.js';
import { passkeyUnclaim } from './lua/generated/passkey-unclaim.js';
import { passkeyUse } from './lua/generated/passkey-use.js';
import { checkUserId } from './sessions.js';

/** How an authenticator may be used to carry a credential (WebAuthn's `AuthenticatorTransport`). */
export type PasskeyTransport = 'ble' | 'cable' | 'hybrid' | 'internal' | 'nfc' | 'smart-card' | 'usb';

/**
 * `singleDevice`: the key cannot leave its authenticator (a security key, a device-bound passkey);
 * `multiDevice`: the key may be synced to other devices (WebAuthn's backup eligibility).
 */
export type PasskeyDeviceType = 'singleDevice' | 'multiDevice';

/** A verified credential to record, as a WebAuthn library returns it after registration. */
export interface NewPasskeyCredential {
  /** The credential id, base64url (canonical, 1 to 1023 bytes). */
  readonly id: string;
  /** The credential public key (COSE), 1 to 2048 bytes. */
  readonly publicKey: Uint8Array;
  /** The signature counter at registration (0 … 2^32-1; 0 when the authenticator keeps none). */
  readonly counter: number;
  /** Transport hints; values WebAuthn does not define are dropped. @default [] */
  readonly transports?: readonly string[] | undefined;
  /** @default 'singleDevice' */
  readonly deviceType?: PasskeyDeviceType | undefined;
  /** Whether the key was backed up (synced) at registration. @default false */
  readonly backedUp?: boolean | undefined;
}

/** A recorded passkey credential. */
export interface PasskeyCredential {
  /** The credential id, base64url. Not a secret; safe to show and to use in URLs. */
  readonly id: string;
  /** The credential public key (COSE), for signature verification. */
  readonly publicKey: Uint8Array<ArrayBuffer>;
  /** The last accepted signature counter. */
  readonly counter: number;
  readonly transports: readonly PasskeyTransport[];
  readonly deviceType: PasskeyDeviceType;
  /** Whether the key was backed up (synced) at registration. */
  readonly backedUp: boolean;
  /** When it was recorded, epoch ms. */
  readonly createdAt: number;
  /** When it last signed a login, epoch ms; `null` before its first use. */
  readonly lastUsedAt: number | null;
}

/** Options of {@link PasskeyCredentials}. */
export interface PasskeyCredentialsOptions extends StoreOptions {
  /**
   * The most credentials one user may have; `add()` refuses more.
   * @default 20
   */
  readonly maxPerUser?: number;
}

/** The answer of {@link PasskeyCredentials.add}. */
export type AddPasskeyResult =
  | { readonly ok: true; readonly credential: PasskeyCredential }
  | {
      readonly ok: false;
      /**
       * `exists`: this user already has this credential; `taken`: the credential id belongs to another
       * user; `limit`: the user has `maxPerUser` credentials. Nothing was changed.
       */
      readonly reason: 'exists' | 'taken' | 'limit';
    };

/** Whose a credential id is, from {@link PasskeyCredentials.lookup}. */
export interface PasskeyOwner {
  readonly userId: string;
  /** The credential public key (COSE), to verify the assertion's signature with. */
  readonly publicKey: Uint8Array<ArrayBuffer>;
}

/** The answer of {@link PasskeyCredentials.recordUse}. */
export type RecordPasskeyUseResult =
  | {
      readonly ok: true;
      readonly deviceType: PasskeyDeviceType;
      readonly backedUp: boolean;
    }
  | {
      readonly ok: false;
      /**
       * `unknown`: the user has no such credential (removed meanwhile); `counter_regressed`: the
       * presented signature counter did not move past the stored one although the authenticator keeps
       * a counter — possibly a cloned authenticator. Refuse the login in both cases.
       */
      readonly reason: 'unknown' | 'counter_regressed';
    };

const TRANSPORTS: ReadonlySet<string> = new Set([
  'ble',
  'cable',
  'hybrid',
  'internal',
  'nfc',
  'smart-card',
  'usb',
]);
const MAX_ID_BYTES = 1023;
const MAX_PUBLIC_KEY_BYTES = 2048;
const MAX_COUNTER = 0xffff_ffff;
const MAX_PER_USER_LIMIT = 100;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const FIELDS = 8;

/**
 * Passkey (WebAuthn) credential bookkeeping: which credentials a user has, their public keys and
 * signature counters, and the credential-id → user index a passwordless login starts from. It never
 * parses WebAuthn data: verify registrations and assertions with a WebAuthn library (e.g.
 * `@simplewebauthn/server`) and record the outcome here.
 *
 * A user's credentials live under the user's hash tag; the index is tagged by the credential id's
 * digest, so `add()` and `remove()` take two round trips (one per slot, the user's record first on
 * `add` and last on `remove`, so an index entry never outlives its credential). `lookup()`,
 * `recordUse()` and `list()` take one. Credentials have no TTL: they live until removed, like the
 * account they belong to.
 *
 * @example
 * const passkeys = new PasskeyCredentials({ redis, onEvent });
 * const owner = await passkeys.lookup(response.id);                  // login: whose is it?
 * // … verify the assertion against owner.publicKey, then:
 * const used = await passkeys.recordUse(owner.userId, response.id, newCounter);
 * if (!used.ok) return reply(401, { error: 'invalid_passkey' });
 */
export class PasskeyCredentials {
  readonly #ctx: StoreContext;
  readonly #maxPerUser: number;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: PasskeyCredentialsOptions) {
    this.#ctx = resolveStoreOptions(options);
    this.#maxPerUser = positiveInt('maxPerUser', options.maxPerUser, 20);
    if (this.#maxPerUser > MAX_PER_USER_LIMIT) {
      throw new InvalidOptionError(`maxPerUser must be at most ${MAX_PER_USER_LIMIT}`);
    }
  }

  /**
   * Records a verified credential for the user and claims its id in the index. Two round trips (the
   * user's slot, then the index's); when the id turns out to be another user's, the record is taken
   * back (a third). Emits `passkey.added`.
   *
   * @throws {InvalidInputError} when the user id or a field of the credential is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const added = await passkeys.add(userId, {
   *   id: info.credential.id, publicKey: info.credential.publicKey, counter: info.credential.counter,
   *   transports: info.credential.transports, deviceType: info.credentialDeviceType,
   *   backedUp: info.credentialBackedUp,
   * });
   */
  async add(userId: string, credential: NewPasskeyCredential): Promise<AddPasskeyResult> {
    checkUserId(userId);
    const record = checkCredential(credential);
    const digest = credentialDigest(record.id);
    const tag = userTag(userId);
    const createdAt = this.#ctx.clock.now();
    const publicKey = Buffer.from(record.publicKey).toString('base64url');
    const added = toInt(
      await this.#ctx.runner.run(
        passkeyAdd,
        [this.#ctx.keys.passkey(tag, digest), this.#ctx.keys.passkeyList(tag)],
        [
          digest,
          record.id,
          publicKey,
          String(record.counter),
          record.transports.join(','),
          String(createdAt),
          record.deviceType === 'multiDevice' ? 'm' : 's',
          record.backedUp ? '1' : '0',
          String(this.#maxPerUser),
        ],
      ),
    );
    if (added === 1) return Object.freeze({ ok: false, reason: 'exists' });
    if (added === 2) return Object.freeze({ ok: false, reason: 'limit' });
    const claimed = toInt(
      await this.#ctx.runner.run(passkeyClaim, [this.#ctx.keys.passkeyIndex(digest)], [userId, publicKey]),
    );
    if (claimed === 2) {
      await this.#removeRecord(tag, digest);
      return Object.freeze({ ok: false, reason: 'taken' });
    }
    emitSafely(this.#ctx.onEvent, { type: 'passkey.added', at: createdAt, userId, credentialDigest: digest });
    return Object.freeze({
      ok: true,
      credential: Object.freeze({ ...record, createdAt, lastUsedAt: null }),
    });
  }

  /**
   * Whose credential this id is, with its public key: the first step of a passwordless login. An id
   * that cannot be a credential id (not canonical base64url, over 1023 bytes) is unknown without a
   * Redis call. One round trip, read-only.
   *
   * @throws {InvalidInputError} when `credentialId` is not a string.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const owner = await passkeys.lookup(response.id);
   * if (owner === null) return reply(401, { error: 'invalid_passkey' });
   */
  async lookup(credentialId: string): Promise<PasskeyOwner | null> {
    if (!isCredentialId(credentialId)) return null;
    const reply = await this.#ctx.runner.run(
      passkeyLookup,
      [this.#ctx.keys.passkeyIndex(credentialDigest(credentialId))],
      [],
    );
    // ioredis-mock answers an empty array reply with undefined.
    const values = reply === undefined || reply === null ? [] : toArray(reply);
    const userId = toOptionalString(values[0]);
    const publicKey = toOptionalString(values[1]);
    if (userId === undefined || publicKey === undefined) return null;
    return Object.freeze({ userId, publicKey: new Uint8Array(Buffer.from(publicKey, 'base64url')) });
  }

  /**
   * Records a verified assertion: the signature counter moves to `counter` and `lastUsedAt` to now,
   * atomically, unless the counter does not move forward while the authenticator keeps one (the stored
   * or the presented counter is non-zero) — then nothing changes, the result says
   * `counter_regressed` and `passkey.counter-regressed` is emitted. One round trip (with
   * `durability`, acknowledged by replicas: a failover cannot roll the counter back).
   *
   * @throws {InvalidInputError} when the user id, credential id or counter is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const used = await passkeys.recordUse(owner.userId, response.id, info.newCounter);
   */
  async recordUse(userId: string, credentialId: string, counter: number): Promise<RecordPasskeyUseResult> {
    checkUserId(userId);
    checkId(credentialId);
    checkCounter(counter);
    const digest = credentialDigest(credentialId);
    const now = this.#ctx.clock.now();
    const reply = toArray(
      await this.#ctx.runner.run(
        passkeyUse,
        [this.#ctx.keys.passkey(userTag(userId), digest)],
        [String(counter), String(now)],
        REVOKING,
      ),
    );
    const status = toInt(reply[0]);
    if (status === 1) return Object.freeze({ ok: false, reason: 'unknown' });
    if (status === 2) {
      emitSafely(this.#ctx.onEvent, {
        type: 'passkey.counter-regressed',
        at: now,
        userId,
        credentialDigest: digest,
        storedCounter: toInt(reply[1]),
        presentedCounter: counter,
      });
      return Object.freeze({ ok: false, reason: 'counter_regressed' });
    }
    if (status !== 0) throw new StoreFailedError('unexpected reply from Redis');
    return Object.freeze({
      ok: true,
      deviceType: reply[2] === 'm' ? 'multiDevice' : 'singleDevice',
      backedUp: reply[3] === '1',
    });
  }

  /**
   * The user's credentials, oldest first (at most `maxPerUser`). One round trip, read-only.
   *
   * @throws {InvalidInputError} when the user id is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const list = await passkeys.list(userId);
   */
  async list(userId: string): Promise<PasskeyCredential[]> {
    checkUserId(userId);
    const tag = userTag(userId);
    const reply = await this.#ctx.runner.run(
      passkeyList,
      [this.#ctx.keys.passkeyBase(tag), this.#ctx.keys.passkeyList(tag)],
      [],
    );
    const values = reply === undefined || reply === null ? [] : toArray(reply);
    const out: PasskeyCredential[] = [];
    for (let i = 0; i + FIELDS <= values.length; i += FIELDS) {
      const [id, publicKey, counter, transports, createdAt, lastUsedAt, deviceType, backedUp] = values
        .slice(i, i + FIELDS)
        .map((v) => toOptionalString(v) ?? '');
      out.push(
        Object.freeze({
          id: id as string,
          publicKey: new Uint8Array(Buffer.from(publicKey as string, 'base64url')),
          counter: toInt(counter),
          transports: Object.freeze(
            (transports as string).split(',').filter((t) => TRANSPORTS.has(t)) as PasskeyTransport[],
          ),
          deviceType: deviceType === 'm' ? 'multiDevice' : 'singleDevice',
          backedUp: backedUp === '1',
          createdAt: toInt(createdAt),
          lastUsedAt: lastUsedAt === '' ? null : toInt(lastUsedAt),
        }),
      );
    }
    return out;
  }

  /**
   * How many credentials the user has (e.g. for an account page). One round trip, read-only.
   *
   * @throws {InvalidInputError} when the user id is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const body = { mfa: { passkeys: await passkeys.count(userId) } };
   */
  async count(userId: string): Promise<number> {
    checkUserId(userId);
    return toInt(await this.#ctx.runner.run(passkeyCount, [this.#ctx.keys.passkeyList(userTag(userId))], []));
  }

  /**
   * Removes one credential of the user: drops its index entry (only if it is this user's), then the
   * credential itself. Two round trips (with `durability`, each acknowledged by replicas). Emits
   * `passkey.removed` when it existed.
   *
   * @returns whether the user had this credential.
   * @throws {InvalidInputError} when the user id is malformed or `credentialId` is not a string.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * if (!(await passkeys.remove(userId, ctx.params.id))) ctx.throw(404);
   */
  async remove(userId: string, credentialId: string): Promise<boolean> {
    checkUserId(userId);
    if (!isCredentialId(credentialId)) return false;
    const digest = credentialDigest(credentialId);
    // The index first: a failure between the two leaves a credential that is listed (and can be
    // removed again) but cannot log in — never an index entry without its credential.
    await this.#ctx.runner.run(passkeyUnclaim, [this.#ctx.keys.passkeyIndex(digest)], [userId], REVOKING);
    const removed = await this.#removeRecord(userTag(userId), digest);
    if (removed) {
      emitSafely(this.#ctx.onEvent, {
        type: 'passkey.removed',
        at: this.#ctx.clock.now(),
        userId,
        credentialDigest: digest,
      });
    }
    return removed;
  }

  async #removeRecord(tag: string, digest: string): Promise<boolean> {
    const removed = await this.#ctx.runner.run(
      passkeyRemove,
      [this.#ctx.keys.passkey(tag, digest), this.#ctx.keys.passkeyList(tag)],
      [digest],
      REVOKING,
    );
    return toInt(removed) === 1;
  }
}

/** @internal SHA-256 of a credential id: the id in keys (ids reach 1023 bytes; keys stay short). */
export function credentialDigest(credentialId: string): string {
  return sha256(`latchkey/passkey\u0000${credentialId}`);
}

/** Canonical base64url of 1 to 1023 bytes (the only spelling a browser sends). */
function isCredentialId(id: unknown): id is string {
  if (typeof id !== 'string') throw new InvalidInputError('credentialId must be a string');
  if (id.length === 0 || id.length > Math.ceil((MAX_ID_BYTES * 4) / 3) || !BASE64URL.test(id)) return false;
  return Buffer.from(id, 'base64url').toString('base64url') === id;
}

function checkId(id: unknown): asserts id is string {
  if (!isCredentialId(id)) {
    throw new InvalidInputError(`credentialId must be canonical base64url of 1 to ${MAX_ID_BYTES} bytes`);
  }
}

function checkCounter(counter: unknown): asserts counter is number {
  if (!Number.isSafeInteger(counter) || (counter as number) < 0 || (counter as number) > MAX_COUNTER) {
    throw new InvalidInputError('counter must be a whole number from 0 to 2^32-1');
  }
}

type CheckedCredential = Omit<PasskeyCredential, 'createdAt' | 'lastUsedAt'>;

function checkCredential(credential: NewPasskeyCredential): CheckedCredential {
  if (credential === null || typeof credential !== 'object') {
    throw new InvalidInputError('credential must be an object');
  }
  const { id, publicKey, counter } = credential;
  checkId(id);
  if (
    !(publicKey instanceof Uint8Array) ||
    publicKey.length === 0 ||
    publicKey.length > MAX_PUBLIC_KEY_BYTES
  ) {
    throw new InvalidInputError(`publicKey must be a Uint8Array of 1 to ${MAX_PUBLIC_KEY_BYTES} bytes`);
  }
  checkCounter(counter);
  const transports = credential.transports ?? [];
  if (!Array.isArray(transports)) throw new InvalidInputError('transports must be an array');
  const known = [...new Set(transports.filter((t): t is PasskeyTransport => TRANSPORTS.has(t)))];
  const deviceType = credential.deviceType ?? 'singleDevice';
  if (deviceType !== 'singleDevice' && deviceType !== 'multiDevice') {
    throw new InvalidInputError('deviceType must be "singleDevice" or "multiDevice"');
  }
  const backedUp = credential.backedUp ?? false;
  if (typeof backedUp !== 'boolean') throw new InvalidInputError('backedUp must be a boolean');
  return {
    id,
    publicKey: new Uint8Array(publicKey),
    counter,
    transports: Object.freeze(known),
    deviceType,
    backedUp,
  };
}
