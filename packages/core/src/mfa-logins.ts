import {
  InvalidInputError,
  InvalidOptionError,
  StaleAuthenticationError,
  StoreFailedError,
} from './errors.js';
import { emitSafely } from './events.js';
import { randomSecret, sha256 } from './internal/crypto.js';
import {
  positiveInt,
  requireSecret,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toArray, toInt, toOptionalString } from './internal/script.js';
import {
  budgetArgs,
  DEFAULT_RECOVERY_TTL_MS,
  MAX_RECOVERY_TTL_MS,
  MFA_METHODS,
  type MfaMethod,
  matchTotpStep,
  recoveryDigest,
  resolveFailureBudget,
  TOTP_LAST_STEP_TTL_MS,
  totpFor,
} from './internal/second-factor.js';
import { parseInstants, waitFor } from './internal/sliding-log.js';
import { type KeySpace, userTag } from './keys.js';
import { mfaBegin } from './lua/generated/mfa-begin.js';
import { mfaPeek } from './lua/generated/mfa-peek.js';
import { mfaVerify } from './lua/generated/mfa-verify.js';
import type { CodeLimit, IssueRefusal, OneTimeCodes } from './one-time-codes.js';
import type { ServerSecret } from './secret.js';
import { checkAmr, checkUserId } from './sessions.js';

export type { MfaMethod };

const MINUTE = 60_000;
const MAX_TTL_MS = 60 * MINUTE;
/** `m1.<user tag>.<secret>`: the tag routes to the user's slot; the secret is 256 random bits. */
const TOKEN = /^m1\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/;
/** The OneTimeCodes purpose of email / SMS codes of a pending login. */
const EMAIL_PURPOSE = '2fa';

/** Options of {@link MfaLogins}. */
export interface MfaLoginsOptions extends StoreOptions {
  /** The server secret: recovery codes are compared as HMACs under a key derived from it. */
  readonly secret: ServerSecret;
  /**
   * How long a pending login (its mfaToken) can be completed, in ms.
   * @default 300_000 (5 minutes)
   */
  readonly ttlMs?: number;
  /**
   * Wrong codes per pending login; the last one burns its mfaToken.
   * @default 5
   */
  readonly maxAttempts?: number;
  /**
   * Second-factor failures per user per sliding window, across pending logins and the checks of the
   * {@link Totp} and {@link RecoveryCodes} given this instance as `mfa` (one budget, set only here).
   * While it is spent, no second factor is compared for the user. A success does not reset it.
   * @default { max: 10, windowMs: 86_400_000 } (10 per 24 hours)
   */
  readonly failureBudget?: CodeLimit;
  /**
   * The TTL of the user's recovery-code set, in ms (every key has one): refreshed by
   * {@link RecoveryCodes.replace}, by every successful use and by every successful second-factor login.
   * Set here once; the {@link RecoveryCodes} given this instance as `mfa` use it. A user who does none
   * of these for that long loses the set: show {@link RecoveryCodes.remaining} and offer a new one.
   * @default 31_536_000_000 (365 days)
   */
  readonly recoveryCodeTtlMs?: number;
  /**
   * The one-time codes that carry email / SMS second factors (purpose `2fa`); needed only for the
   * `email` method.
   */
  readonly codes?: OneTimeCodes;
}

/** What {@link MfaLogins.begin} records. */
export interface BeginMfaLoginInput {
  readonly userId: string;
  /** When the password check began (read the clock before it), epoch ms; not in the future. */
  readonly authenticatedAt: number;
  /** The second factors this account may use (a non-empty subset of {@link MfaMethod}). */
  readonly methods: readonly MfaMethod[];
  /**
   * RFC 8176 values of the first factor.
   * @default ['pwd']
   */
  readonly amr?: readonly string[];
}

/** A started pending login. */
export interface BegunMfaLogin {
  /** The opaque single-use token for the client (256 random bits; latchkey keeps only its digest). */
  readonly mfaToken: string;
  /** The login's public id (a digest of the token, safe to log). */
  readonly id: string;
  /** When the token stops being accepted, epoch ms. */
  readonly expiresAt: number;
}

/** A pending login, as {@link MfaLogins.peek} reads it. */
export interface PendingMfaLogin {
  /** The public id (a digest of the token, safe to log); never the token. */
  readonly id: string;
  readonly userId: string;
  readonly methods: readonly MfaMethod[];
  /** When the first factor's check began, epoch ms. */
  readonly authenticatedAt: number;
  readonly expiresAt: number;
}

/** A second factor presented for a pending login. */
export type MfaAttempt =
  | {
      readonly method: 'totp';
      /** What the user typed: any string is accepted (and counted when it is not a valid code). */
      readonly code: string;
      /** The user's TOTP secret (base32), e.g. opened from a {@link SecretBox}. */
      readonly secret: string;
    }
  | { readonly method: 'recovery-code'; readonly code: string }
  | {
      readonly method: 'email';
      readonly code: string;
      /** The client's IP, for the OneTimeCodes per-IP budget. */
      readonly ip?: string;
    };

/** The answer of {@link MfaLogins.verify}. */
export type MfaVerifyResult =
  | {
      readonly ok: true;
      readonly userId: string;
      readonly method: MfaMethod;
      /** For `sessions.create`: the first factor's values, `otp` and `mfa` (RFC 8176). */
      readonly amr: readonly string[];
      /**
       * When this verification began, epoch ms, or the first factor's instant when that is later (it
       * was checked against the user's revoke-before mark and may sit at the mark, 1 ms ahead): pass
       * it to `sessions.create({ authenticatedAt })`.
       */
      readonly authenticatedAt: number;
      /** When the first factor's check began, epoch ms. */
      readonly firstFactorAt: number;
      /** Recovery codes left after this one (method `recovery-code` only). */
      readonly remainingRecoveryCodes?: number;
    }
  | {
      readonly ok: false;
      /** The mfaToken cannot complete a login (HTTP-API: 401 `invalid_mfa_token`). */
      readonly reason: 'invalid_token';
      /**
       * `unknown`: malformed, never issued, spent or burned; `expired`: past its lifetime; `stale`:
       * issued before a password reset, password change or logout-all of the user.
       */
      readonly detail: 'unknown' | 'expired' | 'stale';
    }
  | {
      readonly ok: false;
      /**
       * Wrong or malformed code, or a method the login does not allow: counted. A right TOTP code of
       * a step already accepted (a replay, a double submission) is refused the same way, not counted.
       */
      readonly reason: 'invalid_code';
      readonly userId: string;
      /** This failure used the login's last attempt: its mfaToken is gone. */
      readonly burned: boolean;
      /** This failure spent the user's failure budget: second-factor checks are locked now. */
      readonly locked: boolean;
    }
  | {
      readonly ok: false;
      /** The user's failure budget is spent: nothing was compared, counted or spent. */
      readonly reason: 'locked';
      readonly userId: string;
      /** How long until a check can be made again, in ms (≥ 1). */
      readonly retryAfterMs: number;
    };

/** The answer of {@link MfaLogins.issueEmailCode}. */
export type IssueMfaEmailCodeResult =
  | {
      readonly ok: true;
      /** Deliver it to the user (latchkey keeps only its HMAC). */
      readonly code: string;
      readonly expiresAt: number;
      readonly login: PendingMfaLogin;
    }
  | {
      readonly ok: false;
      /** Unknown, expired or stale token, or `email` is not among the login's methods. */
      readonly reason: 'invalid_token';
    }
  | { readonly ok: false; readonly reason: IssueRefusal; readonly retryAfterMs: number };

interface Resolved {
  readonly ttlMs: number;
  readonly maxAttempts: number;
  readonly failureBudget: CodeLimit;
  readonly recoveryCodeTtlMs: number;
}

interface ParsedMfaToken {
  readonly tag: string;
  readonly id: string;
}

const STALE_DETAILS = { 1: 'unknown', 2: 'expired', 3: 'stale' } as const;

/**
 * Where every MfaLogins counts and what it allows, for {@link sharedSecondFactor}: what makes one an
 * MfaLogins (kept here, not read through its public getter, which a subclass could override).
 */
const shared = new WeakMap<object, { prefix: string; redis: object } & SharedSecondFactor>();

/** @internal What {@link Totp} and {@link RecoveryCodes} take from their `mfa`. */
export interface SharedSecondFactor {
  /** The per-user failure budget all three count into. */
  readonly failureBudget: CodeLimit;
  /** The TTL of a user's recovery-code set, which MfaLogins refreshes too. */
  readonly recoveryCodeTtlMs: number;
}

/**
 * Two-step logins: after a correct password for an account with a second factor, {@link begin}
 * hands out a single-use `mfaToken` bound to the user, the instant the password check began and the
 * methods allowed (TOTP, recovery code, email code); {@link verify} completes it. Each check is one
 * atomic script that either spends the token and reports success, or counts a failure: the 5th wrong
 * code burns the token, the 10th failure of the user in 24 h (across tokens) locks second-factor
 * checks for the rest of the window. A TOTP step once accepted for a user is never accepted again
 * (nor any earlier one). A token issued before the user's revoke-before mark (password reset, password
 * change, logout-all: `SessionStore.revokeAllForUser`) is refused.
 *
 * The token is `m1.<user tag>.<secret>`: the tag lets every script find the user's slot without a
 * lookup (as session cookies do); the pending record is keyed by a digest of the tag and the secret.
 *
 * @example
 * const { mfaToken } = await mfa.begin({ userId, authenticatedAt, methods: ['totp', 'recovery-code'] });
 * // … the client sends mfaToken and a code:
 * const login = await mfa.peek(mfaToken);                       // whose secret to check against
 * const result = await mfa.verify(mfaToken, { method: 'totp', code, secret: totpSecretOf(login) });
 * if (result.ok) await sessions.create(result.userId, {}, { authenticatedAt: result.authenticatedAt, amr: result.amr });
 */
export class MfaLogins {
  readonly #ctx: StoreContext;
  readonly #options: Resolved;
  readonly #recoveryKey: Buffer;
  readonly #codes: OneTimeCodes | undefined;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: MfaLoginsOptions) {
    this.#ctx = resolveStoreOptions(options);
    const secret = requireSecret(options.secret);
    this.#recoveryKey = secret.derive('recovery-code-hmac');
    const ttlMs = positiveInt('ttlMs', options.ttlMs, 5 * MINUTE, 1000);
    if (ttlMs > MAX_TTL_MS) throw new InvalidOptionError(`ttlMs must be at most ${MAX_TTL_MS} ms`);
    const maxAttempts = positiveInt('maxAttempts', options.maxAttempts, 5);
    if (maxAttempts > 100) throw new InvalidOptionError('maxAttempts must be at most 100');
    const recoveryCodeTtlMs = positiveInt(
      'recoveryCodeTtlMs',
      options.recoveryCodeTtlMs,
      DEFAULT_RECOVERY_TTL_MS,
      MINUTE,
    );
    if (recoveryCodeTtlMs > MAX_RECOVERY_TTL_MS) {
      throw new InvalidOptionError(`recoveryCodeTtlMs must be at most ${MAX_RECOVERY_TTL_MS} ms`);
    }
    const codes = options.codes;
    if (codes !== undefined && (codes === null || typeof codes.verify !== 'function')) {
      throw new InvalidOptionError('codes must be a OneTimeCodes instance');
    }
    this.#codes = codes;
    this.#options = Object.freeze({
      ttlMs,
      maxAttempts,
      failureBudget: resolveFailureBudget(options.failureBudget),
      recoveryCodeTtlMs,
    });
    shared.set(this, {
      prefix: this.#ctx.keys.prefix,
      redis: options.redis,
      failureBudget: this.#options.failureBudget,
      recoveryCodeTtlMs,
    });
  }

  /**
   * The per-user second-factor failure budget (`failureBudget`, resolved), which the {@link Totp}
   * and {@link RecoveryCodes} given this instance as `mfa` enforce too. No Redis.
   * @example
   * mfa.failureBudget; // { max: 10, windowMs: 86_400_000 }
   */
  get failureBudget(): CodeLimit {
    return this.#options.failureBudget;
  }

  /**
   * Starts a pending login after a correct password. One round trip.
   *
   * @throws {StaleAuthenticationError} when the user's revoke-before mark is later than
   *   `authenticatedAt` (the password check raced a reset, a password change or logout-all).
   * @throws {InvalidInputError} for a malformed user id, methods, amr or a future `authenticatedAt`.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const { mfaToken, expiresAt } = await mfa.begin({ userId: user.id, authenticatedAt, methods: ['totp'] });
   */
  async begin(input: BeginMfaLoginInput): Promise<BegunMfaLogin> {
    if (input === null || typeof input !== 'object') throw new InvalidInputError('expected an object');
    const { userId, authenticatedAt } = input;
    checkUserId(userId);
    const now = this.#ctx.clock.now();
    if (!Number.isSafeInteger(authenticatedAt) || authenticatedAt < 0 || authenticatedAt > now + 1) {
      throw new InvalidInputError('authenticatedAt must be an instant in epoch ms, not in the future');
    }
    const methods = checkMethods(input.methods);
    const amr = checkAmr(input.amr ?? ['pwd']);
    if (amr.length === 0) throw new InvalidInputError('amr must name the first factor');
    const tag = userTag(userId);
    const secret = randomSecret();
    const id = loginId(tag, secret);
    const expiresAt = now + this.#options.ttlMs;
    const reply = toArray(
      await this.#ctx.runner.run(
        mfaBegin,
        [this.#ctx.keys.mfaPending(tag, id), this.#ctx.keys.revokeBefore(tag)],
        [
          userId,
          String(authenticatedAt),
          String(expiresAt),
          methods.join(' '),
          amr.join(' '),
          String(this.#options.ttlMs),
        ],
      ),
    );
    const status = toInt(reply[0]);
    if (status === -1) {
      emitSafely(this.#ctx.onEvent, { type: 'session.stale-auth-refused', at: now, userId });
      const mark = Number(reply[1]);
      throw new StaleAuthenticationError(Number.isSafeInteger(mark) ? mark : authenticatedAt + 1);
    }
    if (status !== 1) throw new StoreFailedError('unexpected reply from mfa-begin');
    return Object.freeze({ mfaToken: `m1.${tag}.${secret}`, id, expiresAt });
  }

  /**
   * Reads a pending login without spending it or counting anything (to find whose TOTP secret to
   * check, or where to send an email code). One round trip, no writes.
   *
   * @returns the login, or `null` when the token is malformed, unknown, spent, burned, expired or was
   *   issued before the user's revoke-before mark.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const login = await mfa.peek(body.mfaToken);
   * if (login === null) return reply(401, { error: 'invalid_mfa_token' });
   */
  async peek(mfaToken: string): Promise<PendingMfaLogin | null> {
    const parsed = parseMfaToken(mfaToken);
    if (parsed === null) return null;
    const now = this.#ctx.clock.now();
    const reply = toArray(
      await this.#ctx.runner.run(
        mfaPeek,
        [this.#ctx.keys.mfaPending(parsed.tag, parsed.id), this.#ctx.keys.revokeBefore(parsed.tag)],
        [String(now)],
      ),
    );
    if (toInt(reply[0]) !== 0) return null;
    const userId = toOptionalString(reply[1]) ?? '';
    const methods = (toOptionalString(reply[4]) ?? '')
      .split(' ')
      .filter((m): m is MfaMethod => (MFA_METHODS as readonly string[]).includes(m));
    return Object.freeze({
      id: parsed.id,
      userId,
      methods: Object.freeze(methods),
      authenticatedAt: Number(reply[2]),
      expiresAt: Number(reply[3]),
    });
  }

  /**
   * Checks a second factor against a pending login, atomically: on success the token is spent (of
   * any number of concurrent submissions, one succeeds); otherwise the failure is counted against the
   * token (the last attempt burns it) and against the user's failure budget. `totp` and
   * `recovery-code` take one round trip; `email` two (the OneTimeCodes check of the code bound to
   * this token, then the same spend-or-count script).
   *
   * @throws {InvalidInputError} when `attempt` is not an object with a known method and a string
   *   code, or the TOTP secret is not base32 of at least 16 bytes (nothing is counted then).
   * @throws {InvalidOptionError} for `email` without the `codes` option.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const result = await mfa.verify(mfaToken, { method: 'recovery-code', code: body.code });
   * if (!result.ok) return result.reason === 'invalid_token' ? reply(401) : reply(400);
   */
  async verify(mfaToken: string, attempt: MfaAttempt): Promise<MfaVerifyResult> {
    if (attempt === null || typeof attempt !== 'object') {
      throw new InvalidInputError('attempt must be an object { method, code }');
    }
    const method: unknown = attempt.method;
    if (typeof method !== 'string' || !(MFA_METHODS as readonly string[]).includes(method)) {
      throw new InvalidInputError(`method must be one of ${MFA_METHODS.join(', ')}`);
    }
    if (typeof attempt.code !== 'string') throw new InvalidInputError('code must be a string');
    // A TOTP secret is checked before anything else: an app error must not count as a failure.
    const totp = attempt.method === 'totp' ? totpFor(attempt.secret) : null;
    if (attempt.method === 'email' && this.#codes === undefined) {
      throw new InvalidOptionError('the email method needs the codes option (a OneTimeCodes)');
    }
    const parsed = parseMfaToken(mfaToken);
    if (parsed === null) return Object.freeze({ ok: false, reason: 'invalid_token', detail: 'unknown' });

    const startedAt = this.#ctx.clock.now();
    let proof: string;
    if (attempt.method === 'totp' && totp !== null) {
      proof = String(matchTotpStep(totp, attempt.code, startedAt) ?? '');
    } else if (attempt.method === 'recovery-code') {
      proof = recoveryDigest(this.#recoveryKey, parsed.tag, attempt.code);
    } else {
      const codes = this.#codes as OneTimeCodes;
      const checked = await codes.verify({
        ...emailCodeTarget(parsed.id),
        code: attempt.code,
        ...(attempt.method === 'email' && attempt.ip !== undefined ? { ip: attempt.ip } : {}),
      });
      proof = checked.ok ? '1' : '';
    }

    const now = this.#ctx.clock.now();
    const o = this.#options;
    const keys = this.#ctx.keys;
    const reply = toArray(
      await this.#ctx.runner.run(
        mfaVerify,
        [
          keys.mfaPending(parsed.tag, parsed.id),
          keys.mfaFailures(parsed.tag),
          keys.revokeBefore(parsed.tag),
          keys.totpLastStep(parsed.tag),
          keys.recoveryCodes(parsed.tag),
        ],
        [
          String(now),
          ...budgetArgs(o.failureBudget, now),
          attempt.method,
          proof,
          String(o.maxAttempts),
          String(TOTP_LAST_STEP_TTL_MS),
          String(o.recoveryCodeTtlMs),
        ],
        REVOKING,
      ),
    );
    const status = toInt(reply[0]);
    if (status === 1 || status === 2 || status === 3) {
      return Object.freeze({ ok: false, reason: 'invalid_token', detail: STALE_DETAILS[status] });
    }
    const userId = toOptionalString(reply[1]) ?? '';
    if (status === 0) {
      const firstAmr = (toOptionalString(reply[3]) ?? 'pwd').split(' ').filter((v) => v !== '');
      const amr = Object.freeze(checkAmr([...firstAmr, 'otp', 'mfa']));
      emitSafely(this.#ctx.onEvent, {
        type: 'mfa.succeeded',
        at: now,
        userId,
        method: attempt.method,
        loginId: parsed.id,
      });
      const base = {
        ok: true as const,
        userId,
        method: attempt.method,
        amr,
        // Never before the first factor's instant: that one passed the revoke-before mark, which a
        // login right after a reset meets in the reset's own millisecond (issue 19: begun at the mark,
        // one millisecond ahead of this clock). A session created earlier than it would be stale.
        authenticatedAt: Math.max(startedAt, Number(reply[2])),
        firstFactorAt: Number(reply[2]),
      };
      if (attempt.method !== 'recovery-code') return Object.freeze(base);
      const remaining = toInt(reply[4]);
      emitSafely(this.#ctx.onEvent, { type: 'recovery-code.used', at: now, userId, remaining });
      return Object.freeze({ ...base, remainingRecoveryCodes: remaining });
    }
    const failures = parseInstants(reply[5]);
    if (status === 4) {
      return Object.freeze({
        ok: false,
        reason: 'locked',
        userId,
        retryAfterMs: waitFor(failures, o.failureBudget, now),
      });
    }
    if (status !== 5) throw new StoreFailedError('unexpected reply from mfa-verify');
    const flags = toInt(reply[4]);
    const burned = (flags & 1) !== 0;
    const locked = (flags & 2) !== 0;
    const on = this.#ctx.onEvent;
    emitSafely(on, { type: 'mfa.failed', at: now, userId, method: attempt.method, loginId: parsed.id });
    if (burned) emitSafely(on, { type: 'mfa.token-burned', at: now, userId, loginId: parsed.id });
    if (locked) {
      const retryAfterMs = waitFor(failures, o.failureBudget, now);
      emitSafely(on, { type: 'mfa.locked', at: now, userId, retryAfterMs });
    }
    return Object.freeze({ ok: false, reason: 'invalid_code', userId, burned, locked });
  }

  /**
   * Issues an email / SMS code bound to this pending login (OneTimeCodes purpose `2fa`, subject
   * derived from the token's id, so a code issued for one token never completes another), with the
   * codes' cooldown, issue caps and budgets. Two round trips: {@link peek}, then the issue.
   *
   * @throws {InvalidOptionError} without the `codes` option.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const sent = await mfa.issueEmailCode(body.mfaToken, { ip: ctx.ip });
   * if (sent.ok) await mailer.send(users.byId(sent.login.userId).email, '2fa', sent.code);
   */
  async issueEmailCode(
    mfaToken: string,
    options: { readonly ip?: string } = {},
  ): Promise<IssueMfaEmailCodeResult> {
    const codes = this.#codes;
    if (codes === undefined) {
      throw new InvalidOptionError('issueEmailCode needs the codes option (a OneTimeCodes)');
    }
    const login = await this.peek(mfaToken);
    if (login === null || !login.methods.includes('email')) {
      return Object.freeze({ ok: false, reason: 'invalid_token' });
    }
    const ip = options?.ip;
    const sent = await codes.issue({ ...emailCodeTarget(login.id), ...(ip === undefined ? {} : { ip }) });
    if (!sent.ok) return Object.freeze({ ok: false, reason: sent.reason, retryAfterMs: sent.retryAfterMs });
    return Object.freeze({ ok: true, code: sent.code, expiresAt: sent.expiresAt, login });
  }
}

/**
 * @internal What a {@link Totp} or {@link RecoveryCodes} enforces: its `mfa`'s failure budget and
 * recovery-set TTL. The three count into one record per user and refresh one set, so these are set
 * once, on MfaLogins; the same option given to the others (`failureBudget`, or RecoveryCodes'
 * `ttlMs`; an untyped caller, an old configuration) is refused rather than ignored.
 */
export function sharedSecondFactor(
  options: { readonly mfa: MfaLogins; readonly redis: object },
  keys: KeySpace,
  own: readonly { name: string; instead: string }[] = [],
): SharedSecondFactor {
  for (const { name, instead } of [{ name: 'failureBudget', instead: 'failureBudget' }, ...own]) {
    if ((options as unknown as Record<string, unknown>)[name] !== undefined) {
      throw new InvalidOptionError(`${name} is set once, on the MfaLogins passed as mfa (its ${instead})`);
    }
  }
  const found = shared.get(options.mfa);
  if (found === undefined) {
    throw new InvalidOptionError('mfa must be the MfaLogins whose failure budget these checks share');
  }
  // Under another prefix, or on another Redis, the record (and the last accepted TOTP step) would be
  // another one: the budget split in two, a code accepted once by each.
  if (found.prefix !== keys.prefix) {
    throw new InvalidOptionError(
      `mfa must use the same key prefix ("${found.prefix}", here "${keys.prefix}")`,
    );
  }
  if (found.redis !== options.redis) {
    throw new InvalidOptionError('mfa must use the same Redis client (the same `redis` object)');
  }
  return { failureBudget: found.failureBudget, recoveryCodeTtlMs: found.recoveryCodeTtlMs };
}

/** The OneTimeCodes target of a pending login's email code: bound to its id. */
function emailCodeTarget(id: string): { subject: string; purpose: string } {
  return { subject: `mfa-login:${id}`, purpose: EMAIL_PURPOSE };
}

function loginId(tag: string, secret: string): string {
  return sha256(`latchkey/mfa-login\u0000${tag}\u0000${secret}`);
}

function parseMfaToken(token: unknown): ParsedMfaToken | null {
  if (typeof token !== 'string' || token.length !== 90) return null;
  const match = TOKEN.exec(token);
  if (match === null) return null;
  const tag = match[1] as string;
  return { tag, id: loginId(tag, match[2] as string) };
}

function checkMethods(methods: unknown): MfaMethod[] {
  if (!Array.isArray(methods) || methods.length === 0) {
    throw new InvalidInputError(`methods must be a non-empty array of ${MFA_METHODS.join(', ')}`);
  }
  const out: MfaMethod[] = [];
  for (const m of methods) {
    if (typeof m !== 'string' || !(MFA_METHODS as readonly string[]).includes(m)) {
      throw new InvalidInputError(`methods must be a non-empty array of ${MFA_METHODS.join(', ')}`);
    }
    if (!out.includes(m as MfaMethod)) out.push(m as MfaMethod);
  }
  return out;
}
