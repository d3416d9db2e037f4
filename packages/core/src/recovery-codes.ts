import { randomInt } from 'node:crypto';
import { InvalidInputError, InvalidOptionError, StoreFailedError } from './errors.js';
import { emitSafely } from './events.js';
import {
  positiveInt,
  requireSecret,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toArray, toInt } from './internal/script.js';
import {
  budgetArgs,
  formatRecoveryCode,
  RECOVERY_ALPHABET,
  RECOVERY_LENGTH,
  recoveryDigest,
} from './internal/second-factor.js';
import { parseInstants, waitFor } from './internal/sliding-log.js';
import { userTag } from './keys.js';
import { recoveryConsume } from './lua/generated/recovery-consume.js';
import { recoveryCount } from './lua/generated/recovery-count.js';
import { recoveryRemove } from './lua/generated/recovery-remove.js';
import { recoveryReplace } from './lua/generated/recovery-replace.js';
import { type MfaLogins, sharedSecondFactor } from './mfa-logins.js';
import type { CodeLimit } from './one-time-codes.js';
import type { ServerSecret } from './secret.js';
import { checkUserId } from './sessions.js';

const MAX_COUNT = 100;

/** Options of {@link RecoveryCodes}. */
export interface RecoveryCodesOptions extends StoreOptions {
  /** The server secret: codes reach Redis only as HMACs under a key derived from it. */
  readonly secret: ServerSecret;
  /**
   * Codes per set.
   * @default 10
   */
  readonly count?: number;
  /**
   * The pending logins whose per-user second-factor failure budget {@link RecoveryCodes.consume}
   * counts against (one budget per user, configured once: `MfaLoginsOptions.failureBudget`), under
   * the same `prefix`.
   */
  readonly mfa: MfaLogins;
}

/** The answer of {@link RecoveryCodes.consume}. */
export type ConsumeRecoveryCodeResult =
  | { readonly ok: true /** Codes left. */; readonly remaining: number }
  /** Unknown, used, malformed or replaced: counted against the budget. */
  | { readonly ok: false; readonly reason: 'invalid' }
  | {
      readonly ok: false;
      /** The user's failure budget is spent: nothing was compared. */
      readonly reason: 'locked';
      /** How long until a check can be made again, in ms (≥ 1). */
      readonly retryAfterMs: number;
    };

/**
 * Recovery codes: a set of single-use codes (default 10) of 16 base32 characters (80 bits each, shown
 * as `ABCD-EFGH-JKLM-NPQR`; typed case-insensitively, dashes and spaces ignored), stored only as HMACs
 * under the user's hash tag. `replace()` swaps the whole set in one step; `consume()` takes one code
 * atomically (of concurrent uses of one code, one succeeds). A pending login accepts them through
 * {@link MfaLogins.verify} with method `recovery-code`. Every method is one round trip.
 *
 * @example
 * const recovery = new RecoveryCodes({ redis, secret, mfa });
 * const codes = await recovery.replace(user.id); // show once
 * const used = await recovery.consume(user.id, body.code); // e.g. to disable TOTP
 */
export class RecoveryCodes {
  readonly #ctx: StoreContext;
  readonly #key: Buffer;
  readonly #count: number;
  readonly #ttlMs: number;
  readonly #failureBudget: CodeLimit;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: RecoveryCodesOptions) {
    this.#ctx = resolveStoreOptions(options);
    this.#key = requireSecret(options.secret).derive('recovery-code-hmac');
    this.#count = positiveInt('count', options.count, 10);
    if (this.#count > MAX_COUNT) throw new InvalidOptionError(`count must be at most ${MAX_COUNT}`);
    const settings = sharedSecondFactor(options, this.#ctx.keys, [
      { name: 'ttlMs', instead: 'recoveryCodeTtlMs' },
    ]);
    this.#ttlMs = settings.recoveryCodeTtlMs;
    this.#failureBudget = settings.failureBudget;
  }

  /**
   * Generates a new set and replaces the user's current one (whose codes stop working at once). One
   * round trip. Show the codes once; latchkey keeps only their HMACs.
   *
   * @throws {InvalidInputError} for a malformed user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * ctx.body = { recoveryCodes: await recovery.replace(user.id) };
   */
  async replace(userId: string): Promise<string[]> {
    checkUserId(userId);
    const tag = userTag(userId);
    const codes = new Set<string>();
    while (codes.size < this.#count) {
      let raw = '';
      for (let i = 0; i < RECOVERY_LENGTH; i++) raw += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
      codes.add(raw);
    }
    const digests = [...codes].map((code) => recoveryDigest(this.#key, tag, code));
    const stored = toInt(
      await this.#ctx.runner.run(
        recoveryReplace,
        [this.#ctx.keys.recoveryCodes(tag)],
        [String(this.#ttlMs), ...digests],
        REVOKING,
      ),
    );
    if (stored !== this.#count) throw new StoreFailedError('unexpected reply from recovery-replace');
    return [...codes].map(formatRecoveryCode);
  }

  /**
   * Uses one code outside a login (e.g. to disable TOTP): single use, atomic; a miss counts against
   * the user's second-factor failure budget. One round trip.
   *
   * @throws {InvalidInputError} for a malformed user id or a code that is not a string.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const used = await recovery.consume(user.id, body.code);
   * if (!used.ok) return reply(400, { error: 'invalid_code' });
   */
  async consume(userId: string, code: string): Promise<ConsumeRecoveryCodeResult> {
    checkUserId(userId);
    if (typeof code !== 'string') throw new InvalidInputError('code must be a string');
    const now = this.#ctx.clock.now();
    const tag = userTag(userId);
    const reply = toArray(
      await this.#ctx.runner.run(
        recoveryConsume,
        [this.#ctx.keys.mfaFailures(tag), this.#ctx.keys.recoveryCodes(tag)],
        [
          String(now),
          ...budgetArgs(this.#failureBudget, now),
          recoveryDigest(this.#key, tag, code),
          String(this.#ttlMs),
        ],
        REVOKING,
      ),
    );
    const status = toInt(reply[0]);
    if (status === 0) {
      const remaining = toInt(reply[1]);
      emitSafely(this.#ctx.onEvent, { type: 'recovery-code.used', at: now, userId, remaining });
      return Object.freeze({ ok: true, remaining });
    }
    const failures = parseInstants(reply[2]);
    const retryAfterMs = waitFor(failures, this.#failureBudget, now);
    if (status === 2) return Object.freeze({ ok: false, reason: 'locked', retryAfterMs });
    if (status !== 1) throw new StoreFailedError('unexpected reply from recovery-consume');
    emitSafely(this.#ctx.onEvent, { type: 'mfa.failed', at: now, userId, method: 'recovery-code' });
    if (failures.length >= this.#failureBudget.max) {
      emitSafely(this.#ctx.onEvent, { type: 'mfa.locked', at: now, userId, retryAfterMs });
    }
    return Object.freeze({ ok: false, reason: 'invalid' });
  }

  /**
   * How many unused codes the user has (0: none issued, all used, or expired). One round trip.
   * @throws {InvalidInputError} for a malformed user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   */
  async remaining(userId: string): Promise<number> {
    checkUserId(userId);
    return toInt(
      await this.#ctx.runner.run(recoveryCount, [this.#ctx.keys.recoveryCodes(userTag(userId))], []),
    );
  }

  /**
   * Removes all of the user's codes (the second factor was disabled). One round trip.
   * @throws {InvalidInputError} for a malformed user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   */
  async remove(userId: string): Promise<void> {
    checkUserId(userId);
    const key = this.#ctx.keys.recoveryCodes(userTag(userId));
    toInt(await this.#ctx.runner.run(recoveryRemove, [key], [], REVOKING));
  }
}
