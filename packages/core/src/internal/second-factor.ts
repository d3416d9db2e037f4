import { timingSafeEqual } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import { InvalidInputError, InvalidOptionError } from '../errors.js';
import type { CodeLimit } from '../one-time-codes.js';
import { hmac } from './crypto.js';
import { positiveInt } from './options.js';

/** A second factor a pending login may be completed with. */
export type MfaMethod = 'totp' | 'recovery-code' | 'email';

export const MFA_METHODS: readonly MfaMethod[] = Object.freeze(['totp', 'recovery-code', 'email']);

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** @internal The default of `MfaLogins` `failureBudget`, which its Totp and RecoveryCodes enforce too. */
export const DEFAULT_FAILURE_BUDGET: CodeLimit = Object.freeze({ max: 10, windowMs: DAY });
const MAX_BUDGET = 1000;
const MAX_WINDOW_MS = 366 * DAY;

/** @internal Validates a `failureBudget` option (default 10 per 24 h). */
export function resolveFailureBudget(value: CodeLimit | undefined): CodeLimit {
  const budget = value ?? DEFAULT_FAILURE_BUDGET;
  if (budget === null || typeof budget !== 'object') {
    throw new InvalidOptionError('failureBudget must be an object { max, windowMs }');
  }
  const max = positiveInt('failureBudget.max', budget.max, Number.NaN);
  if (max > MAX_BUDGET) throw new InvalidOptionError(`failureBudget.max must be at most ${MAX_BUDGET}`);
  const windowMs = positiveInt('failureBudget.windowMs', budget.windowMs, Number.NaN, 1000);
  if (windowMs > MAX_WINDOW_MS) {
    throw new InvalidOptionError(`failureBudget.windowMs must be at most ${MAX_WINDOW_MS} ms`);
  }
  return Object.freeze({ max, windowMs });
}

/** @internal The ARGV of the failure budget: cutoff, max, record TTL. */
export function budgetArgs(budget: CodeLimit, now: number): string[] {
  return [String(now - budget.windowMs), String(budget.max), String(budget.windowMs)];
}

// ---------------------------------------------------------------------------------------------------
// TOTP (RFC 6238 as HTTP-API.md fixes it: SHA-1, 6 digits, 30 s steps, ±1 step accepted).

export const TOTP_PERIOD_S = 30;
export const TOTP_DIGITS = 6;
export const TOTP_WINDOW = 1;
/** Bytes of a generated secret (160 bits, RFC 4226's recommendation). */
export const TOTP_SECRET_BYTES = 20;
/** Fewer bytes than this are refused (RFC 4226: at least 128 bits). */
const TOTP_MIN_SECRET_BYTES = 16;
/**
 * How long the last accepted step is remembered, in ms. A step is acceptable only while it lies
 * within ±1 step of now, so once (2·window + 1) periods have passed the record protects nothing; the
 * rest is a margin for app servers whose clocks disagree.
 */
export const TOTP_LAST_STEP_TTL_MS = (2 * TOTP_WINDOW + 1) * TOTP_PERIOD_S * 1000 + 10 * MINUTE;
const TOTP_CODE = /^[0-9]{6}$/;

/** @internal A TOTP generator for a base32 secret, or InvalidInputError when it is not one. */
export function totpFor(secret: unknown, label?: string, issuer?: string): TOTP {
  if (typeof secret !== 'string' || secret.length === 0 || secret.length > 1024) {
    throw new InvalidInputError('the TOTP secret must be base32 text');
  }
  let parsed: Secret;
  try {
    parsed = Secret.fromBase32(secret.replace(/[\s=]/g, '').toUpperCase());
  } catch {
    throw new InvalidInputError('the TOTP secret must be base32 text');
  }
  if (parsed.bytes.length < TOTP_MIN_SECRET_BYTES) {
    throw new InvalidInputError(`the TOTP secret must hold at least ${TOTP_MIN_SECRET_BYTES} bytes`);
  }
  return new TOTP({
    secret: parsed,
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_S,
    ...(label === undefined ? {} : { label }),
    ...(issuer === undefined ? {} : { issuer }),
  });
}

/**
 * @internal The latest step within ±1 of `now` whose code equals `code`, or null (also for anything
 * that is not exactly six ASCII digits: letters, 7 digits, 10 KiB, Unicode digits). Every candidate
 * is compared in constant time; whether the step may still be accepted is decided in Redis.
 */
export function matchTotpStep(totp: TOTP, code: unknown, now: number): number | null {
  if (typeof code !== 'string' || !TOTP_CODE.test(code)) return null;
  const presented = Buffer.from(code, 'ascii');
  const current = totp.counter({ timestamp: now });
  let matched: number | null = null;
  for (let delta = -TOTP_WINDOW; delta <= TOTP_WINDOW; delta++) {
    const expected = Buffer.from(totp.generate({ timestamp: now + delta * TOTP_PERIOD_S * 1000 }), 'ascii');
    if (expected.length === presented.length && timingSafeEqual(expected, presented)) {
      matched = current + delta;
    }
  }
  return matched;
}

// ---------------------------------------------------------------------------------------------------
// Recovery codes: 16 characters of RFC 4648 base32 (80 bits), shown as four groups of four.

export const RECOVERY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export const RECOVERY_LENGTH = 16;
const RECOVERY_CODE = /^[A-Z2-7]{16}$/;
/** @internal The default TTL of a user's recovery-code set (refreshed by replace and every use). */
export const DEFAULT_RECOVERY_TTL_MS = 365 * DAY;
/** @internal */
export const MAX_RECOVERY_TTL_MS = 10 * 366 * DAY;
/** Sent instead of a digest for input that cannot be a code: no base64url digest equals it. */
export const NO_DIGEST = '!';

/** @internal `ABCDEFGHJKLMNPQR` → `ABCD-EFGH-JKLM-NPQR`. */
export function formatRecoveryCode(raw: string): string {
  return raw.match(/.{4}/g)?.join('-') ?? raw;
}

/**
 * @internal The keyed digest of a presented recovery code under the user's tag, or {@link NO_DIGEST}
 * for input that cannot be one. Case, dashes and whitespace are ignored (people type them).
 */
export function recoveryDigest(key: Buffer, tag: string, code: unknown): string {
  if (typeof code !== 'string' || code.length > 64) return NO_DIGEST;
  const normalized = code.replace(/[\s-]/g, '').toUpperCase();
  if (!RECOVERY_CODE.test(normalized)) return NO_DIGEST;
  return hmac(key, `latchkey/recovery-code\u0000${tag}\u0000${normalized}`);
}
