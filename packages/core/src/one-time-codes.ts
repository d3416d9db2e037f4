import { randomInt } from 'node:crypto';
import { InvalidInputError, InvalidOptionError, StoreFailedError } from './errors.js';
import { emitSafely } from './events.js';
import { hmac } from './internal/crypto.js';
import {
  positiveInt,
  requireSecret,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toArray, toInt } from './internal/script.js';
import { parseInstants, waitFor } from './internal/sliding-log.js';
import { codeIssue } from './lua/generated/code-issue.js';
import { codeRevoke } from './lua/generated/code-revoke.js';
import { codeVerify } from './lua/generated/code-verify.js';
import { MAX_IDENTIFIER_LENGTH, normalizeIdentifier, normalizeIp } from './normalize.js';
import type { ServerSecret } from './secret.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The longest lifetime or window accepted (a year): longer ones are configuration mistakes. */
const MAX_DURATION_MS = 366 * DAY;
/** How long an expired code's record lingers so that `verify()` can say "expired", not "no code". */
const EXPIRED_TAIL_MAX_MS = 10 * MINUTE;
/** Fewer possible codes than this make the failure budget meaningless. */
const MIN_CODE_SPACE = 10_000;
const MAX_LENGTH = 128;
const MAX_ALPHABET = 256;
const MAX_ISSUE_LIMITS = 8;
/** Windows are sliding logs of instants; this bounds their size. */
const MAX_PER_WINDOW = 1000;
const PURPOSE = /^[a-z0-9-]{1,32}$/;
/** Sent instead of a digest for input that cannot be a code: no base64url digest equals it. */
const NO_DIGEST = '!';
/** The bucket of calls that name no client IP (no base64url digest equals it). */
const NO_IP_BUCKET = '-';

/** A cap of `max` events per sliding window of `windowMs`. */
export interface CodeLimit {
  /** Events allowed per window, ≥ 1. */
  readonly max: number;
  /** The sliding window, in ms. */
  readonly windowMs: number;
}

/** Options of {@link OneTimeCodes}. */
export interface OneTimeCodesOptions extends StoreOptions {
  /** The server secret: codes and subjects reach Redis only as HMACs under keys derived from it. */
  readonly secret: ServerSecret;
  /**
   * Characters per code.
   * @default 6
   */
  readonly length?: number;
  /**
   * The characters codes are drawn from (distinct, no whitespace), uniformly and without modulo bias.
   * A long code over a large alphabet serves as a magic-link token.
   * @default '0123456789'
   */
  readonly alphabet?: string;
  /**
   * How long a code is valid, in ms.
   * @default 600_000 (10 minutes)
   */
  readonly ttlMs?: number;
  /**
   * Failed attempts per code; the code is burned after the last one.
   * @default 5
   */
  readonly maxAttempts?: number;
  /**
   * Failed attempts per subject, purpose and client IP bucket (the `ip` of the call, normalized with
   * {@link normalizeIp}; calls without `ip` share one bucket) across all codes, per sliding window.
   * Resending a code never resets it. While it is spent, `verify()` compares nothing and `issue()`
   * sends nothing for that bucket — a stranger who spends his bucket's budget does not block the
   * owner's attempts from another address.
   * @default { max: 10, windowMs: 86_400_000 } (10 per 24 hours)
   */
  readonly failureBudget?: CodeLimit;
  /**
   * Failed attempts per subject and purpose across all IP buckets, per sliding window. While it is
   * spent, the current code is deleted and nothing is compared or sent for anyone.
   * @default { max: 100, windowMs: 86_400_000 } (100 per 24 hours)
   */
  readonly failureBudgetAcrossIps?: CodeLimit;
  /**
   * Minimum time between two codes for one subject and purpose (across IP buckets), in ms (0: none).
   * @default 60_000 (60 seconds)
   */
  readonly resendCooldownMs?: number;
  /**
   * Caps on codes issued per subject, purpose and client IP bucket, each over its own sliding window
   * (empty: none). A stranger's requests from one address spend only that address's caps.
   * @default [{ max: 5, windowMs: 3_600_000 }, { max: 10, windowMs: 86_400_000 }]
   */
  readonly issueLimits?: readonly CodeLimit[];
  /**
   * Caps on codes issued per subject and purpose across all IP buckets (against mail bombing from
   * many addresses), each over its own sliding window (empty: none).
   * @default [{ max: 30, windowMs: 86_400_000 }]
   */
  readonly issueLimitsAcrossIps?: readonly CodeLimit[];
  /**
   * Normalize subjects with {@link normalizeIdentifier} (trim, NFC, lower-case), so an email typed
   * two ways is one subject. Turn off when subjects are case-sensitive ids.
   * @default true
   */
  readonly normalizeSubject?: boolean;
}

/** Whom a code is for and what it is for. */
export interface CodeTarget {
  /** The subject: a user id or an email (normalized unless `normalizeSubject` is off). */
  readonly subject: string;
  /** What the code is for: 1 to 32 of `a-z 0-9 -`, e.g. `verify-email`, `password-reset`, `2fa`. */
  readonly purpose: string;
  /**
   * The client's IP address (e.g. Koa's `ctx.ip`), normalized with {@link normalizeIp} into the
   * bucket that `failureBudget` and `issueLimits` count per; garbage falls into the shared unknown
   * bucket. Without it, every call of the subject and purpose shares one bucket: the per-bucket
   * budget and caps then count per subject and purpose, as if all calls came from one address.
   * Pass it wherever a stranger can make the calls (reset and verification flows by email).
   */
  readonly ip?: string;
}

/** A presented code, for {@link OneTimeCodes.verify}. */
export interface CodeAttempt extends CodeTarget {
  /** What the user typed, as sent: any string is accepted (and counted); it is compared exactly. */
  readonly code: string;
}

/** Why {@link OneTimeCodes.issue} sent nothing. */
export type IssueRefusal = 'cooldown' | 'issue_limit' | 'budget_exhausted';

/** The answer of {@link OneTimeCodes.issue}. */
export type IssueCodeResult =
  | {
      readonly ok: true;
      /** The code to deliver to the subject. latchkey keeps only its HMAC. */
      readonly code: string;
      /** When the code stops being valid, epoch ms. */
      readonly expiresAt: number;
    }
  | {
      readonly ok: false;
      readonly reason: IssueRefusal;
      /** How long until an issue can succeed, in ms (≥ 1). */
      readonly retryAfterMs: number;
    };

/** Why {@link OneTimeCodes.verify} refused a code. */
export type VerifyRefusal = 'invalid' | 'expired' | 'exhausted' | 'no_code' | 'budget_exhausted';

/** The answer of {@link OneTimeCodes.verify}. */
export type VerifyCodeResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /**
       * `invalid`: wrong or malformed; `expired`: past its lifetime; `exhausted`: its attempts are
       * used up; `no_code`: none issued, already used, or revoked; `budget_exhausted`: too many
       * failures for this subject and purpose. Tell users only "invalid code".
       */
      readonly reason: Exclude<VerifyRefusal, 'budget_exhausted'>;
    }
  | {
      readonly ok: false;
      readonly reason: 'budget_exhausted';
      /** How long until the budget allows another attempt, in ms (≥ 1). */
      readonly retryAfterMs: number;
    };

interface Resolved {
  readonly alphabet: readonly string[];
  readonly alphabetSet: ReadonlySet<string>;
  readonly length: number;
  readonly ttlMs: number;
  readonly recordTtlMs: number;
  readonly maxAttempts: number;
  readonly failureBudget: CodeLimit;
  readonly failureBudgetAcrossIps: CodeLimit;
  readonly resendCooldownMs: number;
  readonly issueLimits: readonly CodeLimit[];
  readonly issueLimitsAcrossIps: readonly CodeLimit[];
  /** How far back the bucket record keeps issues, and the subject record (cooldown included), in ms. */
  readonly bucketHistoryMs: number;
  readonly subjectHistoryMs: number;
  readonly bucketTtlMs: number;
  readonly subjectTtlMs: number;
  readonly normalizeSubject: boolean;
}

const VERIFY_REASONS = ['invalid', 'expired', 'exhausted', 'no_code'] as const;

/**
 * One-time codes for email verification, password reset and second factors, bound to a subject and a
 * purpose. Codes come from the CSPRNG and are stored only as HMACs. Each code is single use with
 * capped attempts; failures are also counted per subject and purpose across codes, so resending
 * never buys fresh guesses; issuing is throttled by a resend cooldown and issue caps. `issue()` and
 * `verify()` are one atomic Redis round trip each.
 *
 * @example
 * const codes = new OneTimeCodes({ redis, secret });
 * const sent = await codes.issue({ subject: email, purpose: 'password-reset' });
 * if (sent.ok) await mailer.send(email, sent.code);
 * const checked = await codes.verify({ subject: email, purpose: 'password-reset', code: input });
 * if (!checked.ok) return reply(400, { error: 'invalid_code' }); // the same for every reason
 */
export class OneTimeCodes {
  readonly #ctx: StoreContext;
  readonly #options: Resolved;
  readonly #codeKey: Buffer;
  readonly #subjectKey: Buffer;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: OneTimeCodesOptions) {
    this.#ctx = resolveStoreOptions(options);
    const secret = requireSecret(options.secret);
    this.#options = resolveOptions(options);
    this.#codeKey = secret.derive('code-hmac');
    this.#subjectKey = secret.derive('identifier-hmac');
  }

  /**
   * Issues a new code for the subject and purpose, replacing any previous one (whose attempts do not
   * carry over; its failures in the budget do). Refuses, sending nothing, inside the resend cooldown,
   * over an issue cap, or while the failure budget is spent. One round trip.
   *
   * @throws {InvalidInputError} when the subject or purpose is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const sent = await codes.issue({ subject: userId, purpose: 'verify-email' });
   * if (!sent.ok) ctx.set('Retry-After', String(Math.ceil(sent.retryAfterMs / 1000)));
   */
  async issue(target: CodeTarget): Promise<IssueCodeResult> {
    const { subjectDigest, purpose, bucket } = this.#target(target);
    const o = this.#options;
    const now = this.#ctx.clock.now();
    const code = generateCode(o.alphabet, o.length);
    const expiresAt = now + o.ttlMs;
    const args: string[] = [
      String(now),
      String(now - o.failureBudget.windowMs),
      String(o.failureBudget.max),
      String(now - o.failureBudgetAcrossIps.windowMs),
      String(o.failureBudgetAcrossIps.max),
      String(now - o.resendCooldownMs),
      String(now - o.bucketHistoryMs),
      String(now - o.subjectHistoryMs),
      this.#codeDigest(subjectDigest, purpose, code),
      String(expiresAt),
      String(o.recordTtlMs),
      String(o.subjectTtlMs),
      String(o.bucketTtlMs),
    ];
    for (const limits of [o.issueLimits, o.issueLimitsAcrossIps]) {
      args.push(String(limits.length));
      for (const limit of limits) args.push(String(now - limit.windowMs), String(limit.max));
    }
    const reply = toArray(
      await this.#ctx.runner.run(codeIssue, this.#keys(subjectDigest, purpose, bucket), args),
    );
    const mask = toInt(reply[0]);
    if (mask === 0) return Object.freeze({ ok: true, code, expiresAt });
    const bucketFailures = parseInstants(reply[1]);
    const bucketIssues = parseInstants(reply[2]);
    const subjectFailures = parseInstants(reply[3]);
    const subjectIssues = parseInstants(reply[4]);
    let reason: IssueRefusal;
    let retryAfterMs: number;
    if (mask & 4) {
      reason = 'budget_exhausted';
      retryAfterMs = this.#budgetWait(bucketFailures, subjectFailures, now);
    } else {
      reason = mask & 2 ? 'issue_limit' : 'cooldown';
      retryAfterMs = 1;
      if (mask & 1) {
        retryAfterMs = waitFor(subjectIssues, { max: 1, windowMs: o.resendCooldownMs }, now);
      }
      if (mask & 2) {
        for (const limit of o.issueLimits) {
          retryAfterMs = Math.max(retryAfterMs, waitFor(bucketIssues, limit, now));
        }
        for (const limit of o.issueLimitsAcrossIps) {
          retryAfterMs = Math.max(retryAfterMs, waitFor(subjectIssues, limit, now));
        }
      }
    }
    return Object.freeze({ ok: false, reason, retryAfterMs });
  }

  /**
   * Checks a presented code in one atomic round trip. A valid code is consumed. Anything else counts
   * as a failed attempt: wrong, malformed (wrong length, characters outside the alphabet, any size),
   * expired, already used, exhausted or absent. The code is burned after its last allowed attempt,
   * and every code of the subject and purpose stops working once the failure budget is spent. Emits
   * `code.exhausted` when this attempt exhausts the code (`scope: 'code'`) or the budget
   * (`scope: 'budget'`). Only keyed digests are compared; the code never reaches Redis.
   *
   * @throws {InvalidInputError} when the subject or purpose is malformed or `code` is not a string
   *   (nothing is counted then).
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const checked = await codes.verify({ subject: userId, purpose: 'verify-email', code: body.code });
   * if (checked.ok) await users.markEmailVerified(userId);
   */
  async verify(target: CodeAttempt): Promise<VerifyCodeResult> {
    const { subjectDigest, purpose, bucket } = this.#target(target);
    const presented: unknown = target.code;
    if (typeof presented !== 'string') throw new InvalidInputError('code must be a string');
    const o = this.#options;
    const now = this.#ctx.clock.now();
    const digest = this.#wellFormed(presented)
      ? this.#codeDigest(subjectDigest, purpose, presented)
      : NO_DIGEST;
    const reply = toArray(
      await this.#ctx.runner.run(
        codeVerify,
        this.#keys(subjectDigest, purpose, bucket),
        [
          String(now),
          String(now - o.failureBudget.windowMs),
          String(o.failureBudget.max),
          String(now - o.failureBudgetAcrossIps.windowMs),
          String(o.failureBudgetAcrossIps.max),
          digest,
          String(o.maxAttempts),
          String(o.subjectTtlMs),
          String(o.bucketTtlMs),
        ],
        REVOKING,
      ),
    );
    const status = toInt(reply[0]);
    const events = toInt(reply[1]);
    if (events & 1) this.#exhausted(now, subjectDigest, purpose, 'code');
    if (events & 2) this.#exhausted(now, subjectDigest, purpose, 'budget');
    if (status === 0) return Object.freeze({ ok: true });
    if (status === 5) {
      const retryAfterMs = this.#budgetWait(parseInstants(reply[2]), parseInstants(reply[3]), now);
      return Object.freeze({ ok: false, reason: 'budget_exhausted', retryAfterMs });
    }
    const reason = VERIFY_REASONS[status - 1];
    if (reason === undefined) throw new StoreFailedError('unexpected reply from Redis');
    return Object.freeze({ ok: false, reason });
  }

  /**
   * Deletes the current code of the subject and purpose, if any (e.g. once the flow it served was
   * completed another way). The failure budget and issue history stay. One round trip; reveals
   * nothing about whether a code existed.
   *
   * @throws {InvalidInputError} when the subject or purpose is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * await codes.revoke({ subject: email, purpose: 'password-reset' });
   */
  async revoke(target: CodeTarget): Promise<void> {
    const { subjectDigest, purpose } = this.#target(target);
    await this.#ctx.runner.run(codeRevoke, [this.#ctx.keys.code(subjectDigest, purpose)], [], REVOKING);
  }

  #target(target: CodeTarget): { subjectDigest: string; purpose: string; bucket: string } {
    if (target === null || typeof target !== 'object') {
      throw new InvalidInputError('expected an object with subject and purpose');
    }
    const { purpose } = target;
    if (typeof purpose !== 'string' || !PURPOSE.test(purpose)) {
      throw new InvalidInputError('purpose must be 1 to 32 characters of a-z, 0-9 and "-"');
    }
    const subject = this.#options.normalizeSubject
      ? normalizeIdentifier(target.subject)
      : rawSubject(target.subject);
    const subjectDigest = hmac(this.#subjectKey, `latchkey/code-subject\u0000${subject}`);
    // The IP bucket reaches Redis only as an HMAC (addresses are personal data), bound to the subject.
    const ip: unknown = target.ip;
    const bucket =
      ip === undefined
        ? NO_IP_BUCKET
        : hmac(this.#subjectKey, `latchkey/code-ip\u0000${subjectDigest}\u0000${normalizeIp(ip)}`);
    return { subjectDigest, purpose, bucket };
  }

  #keys(subjectDigest: string, purpose: string, bucket: string): string[] {
    const keys = this.#ctx.keys;
    return [
      keys.code(subjectDigest, purpose),
      keys.codeBudget(subjectDigest, purpose),
      keys.codeBucketBudget(subjectDigest, purpose, bucket),
    ];
  }

  /** How long until neither failure budget is spent (≥ 1 ms). */
  #budgetWait(bucketFailures: readonly number[], subjectFailures: readonly number[], now: number): number {
    const o = this.#options;
    return Math.max(
      waitFor(bucketFailures, o.failureBudget, now),
      waitFor(subjectFailures, o.failureBudgetAcrossIps, now),
    );
  }

  // Bound to subject and purpose, so a stored digest can never verify for another pair.
  #codeDigest(subjectDigest: string, purpose: string, code: string): string {
    return hmac(this.#codeKey, `latchkey/code\u0000${subjectDigest}\u0000${purpose}\u0000${code}`);
  }

  #wellFormed(code: string): boolean {
    // Code points may take two UTF-16 units; anything longer cannot be a code and is not iterated.
    if (code.length < this.#options.length || code.length > 2 * this.#options.length) return false;
    let count = 0;
    for (const char of code) {
      if (!this.#options.alphabetSet.has(char)) return false;
      count++;
    }
    return count === this.#options.length;
  }

  #exhausted(at: number, subjectDigest: string, purpose: string, scope: 'code' | 'budget'): void {
    emitSafely(this.#ctx.onEvent, { type: 'code.exhausted', at, purpose, subjectDigest, scope });
  }
}

/**
 * @internal `length` characters drawn uniformly from `alphabet` (`crypto.randomInt` rejects
 * out-of-range samples, so there is no modulo bias).
 */
export function generateCode(alphabet: readonly string[], length: number): string {
  let code = '';
  for (let i = 0; i < length; i++) code += alphabet[randomInt(alphabet.length)];
  return code;
}

function rawSubject(subject: unknown): string {
  if (typeof subject !== 'string') throw new InvalidInputError('subject must be a string');
  if (subject.length === 0) throw new InvalidInputError('subject must not be empty');
  if (subject.length > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidInputError(`subject must be at most ${MAX_IDENTIFIER_LENGTH} characters`);
  }
  return subject;
}

function resolveOptions(options: OneTimeCodesOptions): Resolved {
  const length = positiveInt('length', options.length, 6);
  if (length > MAX_LENGTH) throw new InvalidOptionError(`length must be at most ${MAX_LENGTH}`);
  const alphabetText = options.alphabet ?? '0123456789';
  if (typeof alphabetText !== 'string') throw new InvalidOptionError('alphabet must be a string');
  const alphabet = Array.from(alphabetText);
  const alphabetSet = new Set(alphabet);
  if (alphabet.length < 2 || alphabet.length > MAX_ALPHABET || alphabetSet.size !== alphabet.length) {
    throw new InvalidOptionError(`alphabet must hold 2 to ${MAX_ALPHABET} distinct characters`);
  }
  if (alphabet.some((c) => /[\s\p{Cc}\p{Cs}]/u.test(c))) {
    throw new InvalidOptionError('alphabet must not contain whitespace or control characters');
  }
  if (length * Math.log10(alphabet.length) < Math.log10(MIN_CODE_SPACE) - 1e-9) {
    throw new InvalidOptionError(
      `length and alphabet must allow at least ${MIN_CODE_SPACE} codes (e.g. 4 digits)`,
    );
  }
  const ttlMs = duration('ttlMs', options.ttlMs, 10 * MINUTE, 1000);
  const maxAttempts = positiveInt('maxAttempts', options.maxAttempts, 5);
  const failureBudget = limit('failureBudget', options.failureBudget ?? { max: 10, windowMs: DAY });
  const failureBudgetAcrossIps = limit(
    'failureBudgetAcrossIps',
    options.failureBudgetAcrossIps ?? { max: 100, windowMs: DAY },
  );
  const resendCooldownMs = duration('resendCooldownMs', options.resendCooldownMs, MINUTE, 0);
  const issueLimits = limitList(
    'issueLimits',
    options.issueLimits ?? [
      { max: 5, windowMs: HOUR },
      { max: 10, windowMs: DAY },
    ],
  );
  const issueLimitsAcrossIps = limitList(
    'issueLimitsAcrossIps',
    options.issueLimitsAcrossIps ?? [{ max: 30, windowMs: DAY }],
  );
  const normalizeSubject = options.normalizeSubject ?? true;
  if (typeof normalizeSubject !== 'boolean')
    throw new InvalidOptionError('normalizeSubject must be a boolean');
  const bucketHistoryMs = Math.max(0, ...issueLimits.map((l) => l.windowMs));
  const subjectHistoryMs = Math.max(resendCooldownMs, ...issueLimitsAcrossIps.map((l) => l.windowMs));
  return Object.freeze({
    alphabet: Object.freeze(alphabet),
    alphabetSet,
    length,
    ttlMs,
    recordTtlMs: ttlMs + Math.min(ttlMs, EXPIRED_TAIL_MAX_MS),
    maxAttempts,
    failureBudget,
    failureBudgetAcrossIps,
    resendCooldownMs,
    issueLimits,
    issueLimitsAcrossIps,
    bucketHistoryMs,
    subjectHistoryMs,
    bucketTtlMs: Math.max(failureBudget.windowMs, bucketHistoryMs),
    subjectTtlMs: Math.max(failureBudgetAcrossIps.windowMs, subjectHistoryMs),
    normalizeSubject,
  });
}

function duration(name: string, value: number | undefined, fallback: number, min: number): number {
  const resolved = positiveInt(name, value, fallback, min);
  if (resolved > MAX_DURATION_MS)
    throw new InvalidOptionError(`${name} must be at most ${MAX_DURATION_MS} ms`);
  return resolved;
}

function limitList(name: string, limits: readonly CodeLimit[]): readonly CodeLimit[] {
  if (!Array.isArray(limits) || limits.length > MAX_ISSUE_LIMITS) {
    throw new InvalidOptionError(`${name} must be an array of at most ${MAX_ISSUE_LIMITS} limits`);
  }
  return Object.freeze(limits.map((l, i) => limit(`${name}[${i}]`, l)));
}

function limit(name: string, value: CodeLimit): CodeLimit {
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionError(`${name} must be an object { max, windowMs }`);
  }
  const max = positiveInt(`${name}.max`, value.max, Number.NaN);
  if (max > MAX_PER_WINDOW) throw new InvalidOptionError(`${name}.max must be at most ${MAX_PER_WINDOW}`);
  return Object.freeze({ max, windowMs: duration(`${name}.windowMs`, value.windowMs, Number.NaN, 1000) });
}
