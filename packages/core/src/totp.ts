import { Secret } from 'otpauth';
import { InvalidInputError, InvalidOptionError, StoreFailedError } from './errors.js';
import { emitSafely } from './events.js';
import { resolveStoreOptions, type StoreContext, type StoreOptions } from './internal/options.js';
import { REVOKING, toArray, toInt } from './internal/script.js';
import {
  budgetArgs,
  matchTotpStep,
  TOTP_LAST_STEP_TTL_MS,
  TOTP_SECRET_BYTES,
  totpFor,
} from './internal/second-factor.js';
import { parseInstants, waitFor } from './internal/sliding-log.js';
import { userTag } from './keys.js';
import { totpCheck } from './lua/generated/totp-check.js';
import { type MfaLogins, sharedSecondFactor } from './mfa-logins.js';
import type { CodeLimit } from './one-time-codes.js';
import { checkUserId } from './sessions.js';

/** Options of {@link Totp}. */
export interface TotpOptions extends StoreOptions {
  /** Who issued the secret, as authenticator apps show it (e.g. the product name). */
  readonly issuer: string;
  /**
   * The pending logins whose per-user second-factor failure budget {@link Totp.verify} counts
   * against (one budget per user, configured once: `MfaLoginsOptions.failureBudget`), under the same
   * `prefix`. While it is spent nothing is compared.
   */
  readonly mfa: MfaLogins;
}

/** The answer of {@link Totp.verify}. */
export type TotpCheckResult =
  | { readonly ok: true }
  /**
   * Wrong or malformed (not six ASCII digits): counted against the budget; or right but of a step
   * already accepted (a replay, a double submission): refused, not counted.
   */
  | { readonly ok: false; readonly reason: 'invalid' }
  | {
      readonly ok: false;
      /** The user's failure budget is spent: nothing was compared. */
      readonly reason: 'locked';
      /** How long until a check can be made again, in ms (≥ 1). */
      readonly retryAfterMs: number;
    };

/**
 * TOTP authenticators (RFC 6238 with the parameters every authenticator app supports: SHA-1, 6
 * digits, 30-second steps; a code is accepted within ±1 step). The algorithm is `otpauth`'s. Secrets
 * are generated here; where they are kept is the application's choice — keep them sealed with a
 * {@link SecretBox}. Per user, the last accepted step is remembered (by this class and by
 * {@link MfaLogins}, in the same record), so a code — or any earlier step's code — is accepted at most
 * once, also under concurrent submissions.
 *
 * @example
 * const totp = new Totp({ redis, issuer: 'Example', mfa });
 * const secret = Totp.generateSecret();               // keep box.seal(secret, user.id) in the user record
 * const uri = totp.uri({ secret, account: user.email }); // show as a QR code
 * const checked = await totp.verify(user.id, secret, body.code); // confirm the setup
 */
export class Totp {
  readonly #ctx: StoreContext;
  readonly #issuer: string;
  readonly #failureBudget: CodeLimit;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: TotpOptions) {
    this.#ctx = resolveStoreOptions(options);
    const issuer: unknown = options.issuer;
    if (typeof issuer !== 'string' || issuer.trim() === '' || issuer.length > 100 || issuer.includes(':')) {
      throw new InvalidOptionError('issuer must be 1 to 100 characters without ":"');
    }
    this.#issuer = issuer;
    this.#failureBudget = sharedSecondFactor(options, this.#ctx.keys).failureBudget;
  }

  /**
   * A new random secret (160 bits from the CSPRNG), base32 without padding. No Redis.
   * @example
   * const secret = Totp.generateSecret(); // 'JBSWY3DPEHPK3PXP…' (32 characters)
   */
  static generateSecret(): string {
    return new Secret({ size: TOTP_SECRET_BYTES }).base32;
  }

  /**
   * The `otpauth://totp/…` URI an authenticator app enrols from (show it as a QR code). No Redis.
   * @throws {InvalidInputError} when the secret is not base32 of at least 16 bytes or the account is
   *   empty or longer than 256 characters.
   * @example
   * const uri = totp.uri({ secret, account: 'ada@example.com' });
   */
  uri(input: { readonly secret: string; readonly account: string }): string {
    const account: unknown = input?.account;
    if (typeof account !== 'string' || account.length === 0 || account.length > 256) {
      throw new InvalidInputError('account must be 1 to 256 characters');
    }
    return totpFor(input.secret, account, this.#issuer).toString();
  }

  /**
   * Checks a code outside a login (confirming a setup, disabling the authenticator) under the same
   * per-user rules as {@link MfaLogins.verify}: the step must be later than the last accepted one
   * (which it becomes); a failure counts against the user's budget. One atomic round trip.
   *
   * @throws {InvalidInputError} for a malformed user id or secret, or a code that is not a string.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const checked = await totp.verify(user.id, box.open(user.pendingTotp, user.id)!, body.code);
   * if (!checked.ok) return reply(400, { error: 'invalid_code' });
   */
  async verify(userId: string, secret: string, code: string): Promise<TotpCheckResult> {
    checkUserId(userId);
    const totp = totpFor(secret);
    if (typeof code !== 'string') throw new InvalidInputError('code must be a string');
    const now = this.#ctx.clock.now();
    const step = matchTotpStep(totp, code, now);
    const tag = userTag(userId);
    const reply = toArray(
      await this.#ctx.runner.run(
        totpCheck,
        [this.#ctx.keys.mfaFailures(tag), this.#ctx.keys.totpLastStep(tag)],
        [
          String(now),
          ...budgetArgs(this.#failureBudget, now),
          step === null ? '' : String(step),
          String(TOTP_LAST_STEP_TTL_MS),
        ],
        REVOKING,
      ),
    );
    const status = toInt(reply[0]);
    if (status === 0) return Object.freeze({ ok: true });
    if (status === 3) return Object.freeze({ ok: false, reason: 'invalid' }); // a replay: not counted
    const failures = parseInstants(reply[1]);
    const retryAfterMs = waitFor(failures, this.#failureBudget, now);
    if (status === 2) return Object.freeze({ ok: false, reason: 'locked', retryAfterMs });
    if (status !== 1) throw new StoreFailedError('unexpected reply from totp-check');
    emitSafely(this.#ctx.onEvent, { type: 'mfa.failed', at: now, userId, method: 'totp' });
    if (failures.length >= this.#failureBudget.max) {
      emitSafely(this.#ctx.onEvent, { type: 'mfa.locked', at: now, userId, retryAfterMs });
    }
    return Object.freeze({ ok: false, reason: 'invalid' });
  }
}
