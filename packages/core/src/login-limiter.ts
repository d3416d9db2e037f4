import { InvalidInputError, InvalidOptionError, StoreUnavailableError } from './errors.js';
import { emitSafely } from './events.js';
import { hmac, randomId, safeEqual } from './internal/crypto.js';
import {
  positiveInt,
  requireSecret,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { toArray, toInt, toOptionalString } from './internal/script.js';
import { limiterCheck } from './lua/generated/limiter-check.js';
import { limiterLogReserve } from './lua/generated/limiter-log-reserve.js';
import { limiterLogSettle } from './lua/generated/limiter-log-settle.js';
import { limiterSettle } from './lua/generated/limiter-settle.js';
import { normalizeIdentifier, normalizeIp } from './normalize.js';
import type { ServerSecret } from './secret.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Windows and delays stay below 2^31 ms (about 24.8 days): the fake's Lua compares them as numbers. */
const MAX_WINDOW_MS = 2_147_483_647;
/** The largest limit a policy may set (the log's size does not depend on it). */
const MAX_LIMIT = 100_000;
/**
 * A log holds at most this many entries, whatever the limit (the same constant as in the scripts).
 * Its slots are 1/(MAX_ENTRIES − 1) of the window, so live entries span at most MAX_ENTRIES slots.
 */
const MAX_ENTRIES = 16;
/** Slot labels only need to tell neighbouring slots apart; keep them short. */
const LABEL_MODULUS = 1_000_000;
/**
 * Keys outlive their window by this much, so that clock skew between application servers (or a few
 * ms between computing `now` and Redis running the script) never drops a counted failure early.
 */
const TTL_SLACK_MS = 1000;
const KNOWN_DEVICE_PATTERN = /^kd1\.(\d{1,15})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;
/** How far in the future a known-device token's issue time may lie (clock skew between servers). */
const KNOWN_DEVICE_SKEW_MS = 60_000;
const ACTION_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** The three login policies: failures per account at one IP, per IP, per account across IPs. */
export type LoginPolicy = 'account-ip' | 'ip' | 'account';

/**
 * How a login attempt ended: `failure` (wrong credentials; the reservation stays and counts),
 * `success` (releases it and clears the account's failures, never the IP's), `release` (the attempt
 * never reached the credential check, e.g. an invalid request body; it counts as nothing).
 */
export type LoginOutcome = 'success' | 'failure' | 'release';

/** One login policy: how many failures a sliding window holds before attempts are refused. */
export interface LoginPolicyOptions {
  /**
   * Failed attempts (unsettled ones included) allowed inside one window; the attempt after them is
   * refused until the oldest of them leaves the window.
   */
  readonly maxFailures?: number;
  /** Length of the sliding window, ms (at most 2^31 − 1). */
  readonly windowMs?: number;
}

/** Exponential back-off between failures of one account at one IP. */
export interface LoginBackoffOptions {
  /**
   * Wait after the first failure, ms; each further failure in the window doubles it.
   * @default 1000
   */
  readonly initialMs?: number;
  /**
   * Longest wait, ms (at most the account+IP window).
   * @default 60_000, or the window when that is shorter
   */
  readonly maxMs?: number;
}

/** The account+IP policy, with its optional back-off. */
export interface AccountIpPolicyOptions extends LoginPolicyOptions {
  /**
   * Exponential back-off: after `n` failures inside the window the next attempt waits
   * `min(maxMs, initialMs × 2^(n−1))` after the latest one. `true` takes the defaults.
   * @default false
   */
  readonly backoff?: LoginBackoffOptions | boolean;
}

/**
 * The in-process fallback used when Redis is unreachable and the limiter was told to fail open.
 * Caveats: it is per process (N processes let N times as much through), starts empty (an attacker
 * gets a fresh allowance when Redis goes down), forgets everything on restart, uses fixed windows and
 * no back-off, and what it counts is never written to Redis.
 */
export interface FailOpenOptions {
  /**
   * Attempts the fallback lets through per IP window in this process, across all accounts and IPs;
   * beyond it, checks fail closed again ({@link StoreUnavailableError}).
   * @default 1000
   */
  readonly maxPerWindow?: number;
  /**
   * Counters the fallback keeps in memory; when full (after dropping expired ones), checks for new
   * accounts or IPs fail closed rather than evict a counter an attacker could then reset.
   * @default 10_000
   */
  readonly maxEntries?: number;
}

/** Options of {@link LoginLimiter}. */
export interface LoginLimiterOptions extends StoreOptions {
  /** The server secret: identifiers reach Redis only as an HMAC under a key derived from it. */
  readonly secret: ServerSecret;
  /**
   * Failures per account at one IP (the account as typed, whether or not it exists).
   * @default { maxFailures: 5, windowMs: 3_600_000, backoff: false }
   */
  readonly accountIp?: AccountIpPolicyOptions;
  /**
   * Failures per IP across accounts. Whole offices and mobile carriers share one address, so the
   * default is generous.
   * @default { maxFailures: 100, windowMs: 3_600_000 }
   */
  readonly ip?: LoginPolicyOptions;
  /**
   * Failures per account across all IPs (NIST SP 800-63B: at most 100 consecutive failures). Off by
   * default, since anyone can use it to lock a victim out; requests with a valid known-device token
   * are exempt. `true` takes `{ maxFailures: 100, windowMs: 86_400_000 }`. With it on, check and a
   * successful settle send a second script to the account's slot, concurrently (one round trip of
   * latency, two commands).
   * @default false
   */
  readonly account?: LoginPolicyOptions | boolean;
  /**
   * How long a known-device token stays valid, ms.
   * @default 15_552_000_000 (180 days)
   */
  readonly knownDeviceTtlMs?: number;
  /**
   * When Redis is unreachable: `false` fails closed (every check throws
   * {@link StoreUnavailableError}); `true` or options fail open onto a bounded in-process fallback
   * (see {@link FailOpenOptions} for its caveats).
   * @default false
   */
  readonly failOpen?: FailOpenOptions | boolean;
}

/** Options of {@link LoginLimiter.check}. */
export interface LoginCheckOptions {
  /** The known-device token the client presented (a cookie value), if any. */
  readonly knownDevice?: string | undefined;
}

/** A resolved policy. */
export interface LoginPolicyConfig {
  readonly policy: LoginPolicy;
  /** Failures per window. */
  readonly limit: number;
  readonly windowMs: number;
}

/** Where one policy stands after a check. */
export interface LoginPolicyState extends LoginPolicyConfig {
  /** Failures still allowed before this policy refuses (counting this attempt as one). */
  readonly remaining: number;
  /** Whether this policy refused the attempt. */
  readonly blocked: boolean;
  /** Until this policy admits attempts again when blocked, else until its oldest failure leaves. */
  readonly resetAfterMs: number;
}

/**
 * A reserved attempt, to be settled with {@link LoginLimiter.settle}. Until then — and if it never
 * is — it counts as a failure. Only the limiter that made it can settle it.
 */
export interface LoginReservation {
  /** The IP bucket it counts in. */
  readonly ipBucket: string;
  /** The HMAC of the normalized identifier (safe to log). */
  readonly accountDigest: string;
  /** When it was made, epoch ms. */
  readonly reservedAt: number;
  /** True when it was made by the fail-open fallback. */
  readonly degraded: boolean;
}

/** The answer of {@link LoginLimiter.check}. */
export interface LoginCheckResult {
  /** Whether the attempt may go on to the credential check. */
  readonly allowed: boolean;
  /** Failures still allowed before a policy refuses, counting this attempt as one; 0 when refused. */
  readonly remaining: number;
  /** When refused, how long until an attempt can be admitted, ms (≥ 1); 0 when allowed. */
  readonly retryAfterMs: number;
  /** When refused, the policy that refused (the one with the longest wait). */
  readonly blockedBy?: LoginPolicy;
  /** The reservation to settle when allowed; null when refused. */
  readonly reservation: LoginReservation | null;
  /** Each applied policy (the per-account one only when on and not exempt). */
  readonly policies: readonly LoginPolicyState[];
  /** True when Redis was unreachable and the fail-open fallback answered. */
  readonly degraded: boolean;
}

/** A plain throttle: `limit` hits per sliding window. */
export interface ThrottlePolicy {
  /** Hits allowed per window. @default the IP policy's `maxFailures` */
  readonly limit?: number;
  /** Window, ms. @default the IP policy's `windowMs` */
  readonly windowMs?: number;
}

/** A per-IP throttle resolved once by {@link LoginLimiter.throttle}. */
export interface Throttle {
  readonly action: string;
  readonly limit: number;
  readonly windowMs: number;
  /**
   * Counts one hit from `ip`. One round trip.
   * @throws {StoreUnavailableError} when Redis is unreachable (unless failing open).
   */
  hit(ip: unknown): Promise<ThrottleResult>;
}

/** The answer of {@link LoginLimiter.hit}. */
export interface ThrottleResult {
  readonly allowed: boolean;
  /** Hits left in the window after this one; 0 when refused. */
  readonly remaining: number;
  /** When refused, ms until a hit is admitted (≥ 1); 0 when allowed. */
  readonly retryAfterMs: number;
  readonly limit: number;
  readonly windowMs: number;
  /** When refused, as retryAfterMs; else until the oldest hit in the window leaves. */
  readonly resetAfterMs: number;
  /** True when Redis was unreachable and the fail-open fallback answered. */
  readonly degraded: boolean;
}

interface ResolvedLimiterOptions {
  readonly accountIp: LoginPolicyConfig;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** The back-off wait after n = 1, 2, … failures, up to the cap (the last one); empty when off. */
  readonly backoffWaits: readonly number[];
  readonly ip: LoginPolicyConfig;
  readonly account: LoginPolicyConfig | null;
  readonly knownDeviceTtlMs: number;
  readonly failOpen: { readonly maxPerWindow: number; readonly maxEntries: number } | null;
}

interface ReservationState {
  readonly owner: LoginLimiter;
  /** `now` of the check as the decimal string it wrote: the instant a settle takes back. */
  readonly at: string;
  readonly accountIpKey: string;
  readonly ipKey: string;
  /** The per-account log holding this reservation, when that policy applied. */
  readonly accountKey: string | null;
  /**
   * The per-account log a success clears: whenever that policy is on, also for a known device that
   * was exempt from it (the owner's success ends the run of failures, wherever it happened).
   */
  readonly accountLog: string | null;
  readonly fallback: boolean;
  settled: boolean;
}

/**
 * A reservation as handed out: the public fields, and its private state in a field only this module
 * can read, so a copy or a look-alike object can never be settled (no WeakMap entry per attempt).
 */
class Reservation implements LoginReservation {
  readonly ipBucket: string;
  readonly accountDigest: string;
  readonly reservedAt: number;
  readonly degraded: boolean;
  readonly #state: ReservationState;

  constructor(ipBucket: string, accountDigest: string, reservedAt: number, state: ReservationState) {
    this.ipBucket = ipBucket;
    this.accountDigest = accountDigest;
    this.reservedAt = reservedAt;
    this.degraded = state.fallback;
    this.#state = state;
    Object.freeze(this);
  }

  static stateOf(value: unknown): ReservationState | undefined {
    // A brand check, not instanceof: an object whose prototype is a reservation has no #state.
    return typeof value === 'object' && value !== null && #state in value ? value.#state : undefined;
  }
}

interface LogReply {
  readonly allowed: boolean;
  /** 0 open, 1 limit reached, 2 back-off. */
  readonly state: number;
  readonly count: number;
  readonly refAt: number | null;
}

/**
 * Race-free login throttling per account+IP and per IP (optionally per account across IPs), in one
 * Redis round trip per check and per settle. {@link LoginLimiter.check} reserves an attempt atomically
 * before the password comparison; {@link LoginLimiter.settle} reports the outcome. A reservation counts
 * as a failure until settled, so N parallel guesses never get more than the limit through. Identifiers
 * are counted whether or not an account exists and reach Redis only as an HMAC.
 *
 * Windows are bounded sliding logs: one string of at most 16 entries per key whatever the limit, each
 * key expiring with its window. While a key holds at most 16 distinct live milliseconds (always when
 * the limit is at most 16) a block lifts exactly when enough counted failures are one window old;
 * beyond, attempts of one slot (1/15 window) share an entry and a block may lift up to one slot late,
 * never early. Never more than the limit in any span of one window, no burst at a boundary.
 *
 * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
 * @example
 * const limiter = new LoginLimiter({ redis, secret });
 * const attempt = await limiter.check(email, ctx.ip);
 * if (!attempt.allowed) return tooManyAttempts(attempt.retryAfterMs);
 * const ok = await verifyPassword(email, password);
 * await limiter.settle(attempt.reservation!, ok ? 'success' : 'failure');
 */
export class LoginLimiter {
  /** The resolved policies, in the order account-ip, ip, account (when on). */
  readonly policies: readonly LoginPolicyConfig[];
  readonly #ctx: StoreContext;
  readonly #options: ResolvedLimiterOptions;
  readonly #identifierKey: Buffer;
  readonly #deviceKey: Buffer;
  readonly #fallback: FallbackLimiter | null;
  /** The policies a check applies, resolved once: without and with the per-account one. */
  readonly #pairConfigs: readonly LoginPolicyConfig[];
  readonly #allConfigs: readonly LoginPolicyConfig[];

  constructor(options: LoginLimiterOptions) {
    this.#ctx = resolveStoreOptions(options);
    const secret = requireSecret(options.secret);
    this.#identifierKey = secret.derive('identifier-hmac');
    this.#deviceKey = secret.derive('known-device');
    this.#options = resolveLimiterOptions(options);
    const { accountIp, ip, account, failOpen } = this.#options;
    this.policies = Object.freeze(account === null ? [accountIp, ip] : [accountIp, ip, account]);
    this.#pairConfigs = Object.freeze([accountIp, ip]);
    this.#allConfigs = this.policies;
    this.#fallback =
      failOpen === null ? null : new FallbackLimiter(failOpen.maxPerWindow, failOpen.maxEntries, ip.windowMs);
  }

  /**
   * Reserves one login attempt for `identifier` from `ip`, before the credential check. One round
   * trip (two concurrent ones with the per-account policy on and no valid known-device token). When
   * refused, nothing is counted and a `login.blocked` event is emitted.
   *
   * @param identifier what the user typed (normalized: trim, NFC, lower-case).
   * @param ip the client address; IPv4-mapped IPv6 counts as IPv4, IPv6 per /64, anything
   *   unparsable (or missing) in the one `unknown` bucket.
   * @throws {InvalidInputError} when the identifier is not a string, empty, or over 1024 characters.
   * @throws {StoreUnavailableError} when Redis is unreachable (unless failing open).
   * @example
   * const { allowed, retryAfterMs, reservation } = await limiter.check('alice@example.com', '192.0.2.1');
   */
  async check(identifier: unknown, ip: unknown, options: LoginCheckOptions = {}): Promise<LoginCheckResult> {
    const accountDigest = this.#digest(identifier);
    const ipBucket = normalizeIp(ip);
    const now = Math.floor(this.#ctx.clock.now());
    const o = this.#options;
    const useAccount =
      o.account !== null &&
      !(options?.knownDevice !== undefined && this.#verifyDevice(accountDigest, options.knownDevice, now));
    const keys = this.#ctx.keys;
    const accountIpKey = keys.loginAccountIp(ipBucket, accountDigest);
    const ipKey = keys.loginIp(ipBucket);
    const accountLog = o.account === null ? null : keys.loginAccount(accountDigest);
    const accountKey = useAccount ? accountLog : null;
    const at = String(now);
    const configs = accountKey === null ? this.#pairConfigs : this.#allConfigs;

    let replies: LogReply[];
    let fallback = false;
    try {
      replies = await this.#reserve(now, at, accountIpKey, ipKey, accountKey);
    } catch (error) {
      if (this.#fallback === null || !(error instanceof StoreUnavailableError)) throw error;
      const states = this.#fallback.reserve(
        now,
        configs.map((config, i) => ({ key: [accountIpKey, ipKey, accountKey][i] as string, ...config })),
      );
      replies = states.map((s, i) => fallbackReply(s, (configs[i] as LoginPolicyConfig).windowMs));
      fallback = true;
    }
    return this.#result(now, configs, replies, accountDigest, ipBucket, {
      owner: this,
      at,
      accountIpKey,
      ipKey,
      accountKey,
      accountLog,
      fallback,
      settled: false,
    });
  }

  /**
   * Reports how a reserved attempt ended. `failure` makes no Redis call (the reservation already is
   * a failure); `success` clears the account's failures at this IP (and across IPs) and releases the
   * attempt from the IP's count, whose other failures stay; `release` removes the attempt from every
   * count. One round trip (two concurrent with the per-account policy). Emits `login.succeeded` or
   * `login.failed`. A reservation that cannot be settled (Redis down) keeps counting as a failure.
   *
   * @throws {InvalidInputError} when the reservation is not one of this limiter's, was already
   *   settled, or the outcome is unknown.
   * @throws {StoreUnavailableError} when Redis is unreachable (the settle may be retried).
   * @example
   * await limiter.settle(attempt.reservation, passwordOk ? 'success' : 'failure');
   */
  async settle(reservation: LoginReservation, outcome: LoginOutcome): Promise<void> {
    const state = Reservation.stateOf(reservation);
    if (state === undefined || state.owner !== this) {
      throw new InvalidInputError('not a reservation made by this limiter');
    }
    if (outcome !== 'success' && outcome !== 'failure' && outcome !== 'release') {
      throw new InvalidInputError('outcome must be "success", "failure" or "release"');
    }
    if (state.settled) throw new InvalidInputError('the reservation was already settled');
    state.settled = true;
    const at = Math.floor(this.#ctx.clock.now());
    const { accountDigest, ipBucket } = reservation;
    if (outcome === 'failure') {
      emitSafely(this.#ctx.onEvent, { type: 'login.failed', at, accountDigest, ipBucket });
      return;
    }
    if (state.fallback) {
      this.#fallback?.settle(state, outcome, at);
    } else {
      const mode = outcome === 'success' ? 's' : 'r';
      const calls = [
        this.#ctx.runner.run(limiterSettle, [state.accountIpKey, state.ipKey], [mode, state.at]),
      ];
      const accountLog = outcome === 'success' ? state.accountLog : state.accountKey;
      if (accountLog !== null) {
        calls.push(this.#ctx.runner.run(limiterLogSettle, [accountLog], [mode, state.at]));
      }
      const failed = (await Promise.allSettled(calls)).find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        state.settled = false;
        if (outcome === 'success') {
          emitSafely(this.#ctx.onEvent, { type: 'login.succeeded', at, accountDigest, ipBucket });
        }
        throw (failed as PromiseRejectedResult).reason;
      }
    }
    if (outcome === 'success') {
      emitSafely(this.#ctx.onEvent, { type: 'login.succeeded', at, accountDigest, ipBucket });
    }
  }

  /**
   * Counts one hit of `action` (e.g. `'password-reset'`, `'register'`) from `ip` and says whether it
   * is within `limit` per sliding window. Every hit counts; refused hits do not. One round trip. For a
   * policy used on every request, resolve it once with {@link LoginLimiter.throttle}.
   *
   * @param action lower-case letters, digits, `-` and `_`, at most 32 characters.
   * @throws {InvalidInputError} when `action` breaks that rule.
   * @throws {InvalidOptionError} when the policy's limit or window breaks its rule.
   * @throws {StoreUnavailableError} when Redis is unreachable (unless failing open).
   * @example
   * const { allowed, retryAfterMs } = await limiter.hit('password-reset', ctx.ip, { limit: 10 });
   */
  async hit(action: string, ip: unknown, policy: ThrottlePolicy = {}): Promise<ThrottleResult> {
    if (typeof action !== 'string' || !ACTION_PATTERN.test(action)) {
      throw new InvalidInputError('action must be 1 to 32 characters of a-z, 0-9, "-" and "_"');
    }
    const { limit, windowMs } = this.#throttlePolicy(policy);
    return this.#hit(action, limit, windowMs, ip);
  }

  /**
   * Resolves and validates a per-IP throttle once, for {@link LoginLimiter.hit} on every request.
   *
   * @param action lower-case letters, digits, `-` and `_`, at most 32 characters (part of the key).
   * @throws {InvalidOptionError} when the action, limit or window breaks its rule.
   * @example
   * const resetRequests = limiter.throttle('password-reset', { limit: 10, windowMs: 3_600_000 });
   * if (!(await resetRequests.hit(ctx.ip)).allowed) ctx.status = 429;
   */
  throttle(action: string, policy: ThrottlePolicy = {}): Throttle {
    if (typeof action !== 'string' || !ACTION_PATTERN.test(action)) {
      throw new InvalidOptionError('action must be 1 to 32 characters of a-z, 0-9, "-" and "_"');
    }
    const { limit, windowMs } = this.#throttlePolicy(policy);
    return Object.freeze({
      action,
      limit,
      windowMs,
      hit: (ip: unknown) => this.#hit(action, limit, windowMs, ip),
    });
  }

  #throttlePolicy(policy: ThrottlePolicy): { limit: number; windowMs: number } {
    if (policy === null || typeof policy !== 'object')
      throw new InvalidOptionError('policy must be an object');
    return {
      limit: boundedInt('limit', policy.limit, this.#options.ip.limit, MAX_LIMIT),
      windowMs: boundedInt('windowMs', policy.windowMs, this.#options.ip.windowMs, MAX_WINDOW_MS),
    };
  }

  async #hit(action: string, limit: number, windowMs: number, ip: unknown): Promise<ThrottleResult> {
    const ipBucket = normalizeIp(ip);
    const now = Math.floor(this.#ctx.clock.now());
    const key = `${this.#ctx.keys.base('l2:h', ipBucket)}:${action}`;
    let reply: LogReply;
    let degraded = false;
    try {
      reply = parseLog(
        await this.#ctx.runner.run(limiterLogReserve, [key], logArgs(now, String(now), limit, windowMs)),
      );
    } catch (error) {
      if (this.#fallback === null || !(error instanceof StoreUnavailableError)) throw error;
      const [s] = this.#fallback.reserve(now, [{ key, limit, windowMs }]);
      if (s === undefined) throw error;
      degraded = true;
      reply = fallbackReply(s, windowMs);
    }
    const state = policyState({ policy: 'ip', limit, windowMs }, reply, now, this.#options);
    return Object.freeze({
      allowed: reply.allowed,
      remaining: state.remaining,
      retryAfterMs: state.blocked ? state.resetAfterMs : 0,
      limit,
      windowMs,
      resetAfterMs: state.resetAfterMs,
      degraded,
    });
  }

  /**
   * Mints a known-device token for `identifier`, to be set as a long-lived cookie after a successful
   * login. Presented with later checks, it exempts that device from the per-account policy, so an
   * attacker failing from elsewhere cannot lock the owner out. Stateless: `kd1.<issuedAt>.<nonce>.<mac>`
   * with an HMAC under a key derived from the server secret, bound to the account; rotating the
   * secret invalidates every token. It grants nothing but the exemption.
   *
   * @throws {InvalidInputError} when the identifier is invalid.
   * @example
   * ctx.cookies.set('kd', limiter.issueKnownDevice(email), { httpOnly: true, maxAge: 180 * 86_400_000 });
   */
  issueKnownDevice(identifier: unknown): string {
    const accountDigest = this.#digest(identifier);
    const issuedAt = String(Math.floor(this.#ctx.clock.now()));
    const nonce = randomId();
    return `kd1.${issuedAt}.${nonce}.${this.#deviceMac(accountDigest, issuedAt, nonce)}`;
  }

  /**
   * True when `token` is a known-device token this limiter minted for `identifier` and it has not
   * expired. Never throws.
   * @example
   * limiter.verifyKnownDevice(email, ctx.cookies.get('kd')); // true | false
   */
  verifyKnownDevice(identifier: unknown, token: unknown): boolean {
    let accountDigest: string;
    try {
      accountDigest = this.#digest(identifier);
    } catch {
      return false;
    }
    return this.#verifyDevice(accountDigest, token, Math.floor(this.#ctx.clock.now()));
  }

  /**
   * The HMAC under which an identifier is counted (what `login.*` events and reservations carry).
   * @throws {InvalidInputError} when the identifier is invalid.
   */
  accountDigest(identifier: unknown): string {
    return this.#digest(identifier);
  }

  #digest(identifier: unknown): string {
    return hmac(this.#identifierKey, `latchkey/login-account\u0000${normalizeIdentifier(identifier)}`);
  }

  #deviceMac(accountDigest: string, issuedAt: string, nonce: string): string {
    return hmac(
      this.#deviceKey,
      `latchkey/known-device/v1\u0000${accountDigest}\u0000${issuedAt}\u0000${nonce}`,
    );
  }

  #verifyDevice(accountDigest: string, token: unknown, now: number): boolean {
    if (typeof token !== 'string' || token.length > 128) return false;
    const match = KNOWN_DEVICE_PATTERN.exec(token);
    if (match === null) return false;
    const [, issuedAt = '', nonce = '', mac = ''] = match;
    if (!safeEqual(this.#deviceMac(accountDigest, issuedAt, nonce), mac)) return false;
    const at = Number(issuedAt);
    return at <= now + KNOWN_DEVICE_SKEW_MS && now - at < this.#options.knownDeviceTtlMs;
  }

  /** The Redis half of a check: the pair script, plus the per-account one concurrently. */
  async #reserve(
    now: number,
    at: string,
    accountIpKey: string,
    ipKey: string,
    accountKey: string | null,
  ): Promise<LogReply[]> {
    const o = this.#options;
    const runner = this.#ctx.runner;
    const pairCall = runner.run(limiterCheck, [accountIpKey, ipKey], pairArgs(now, at, o)).then(parsePair);
    if (accountKey === null || o.account === null) return pairCall;
    const account = o.account;
    const accountCall = runner
      .run(limiterLogReserve, [accountKey], logArgs(now, at, account.limit, account.windowMs))
      .then(parseLog);
    const [pair, single] = await Promise.allSettled([pairCall, accountCall]);
    const pairOk = pair.status === 'fulfilled' && pair.value.every((r) => r.allowed);
    const singleOk = single.status === 'fulfilled' && single.value.allowed;
    if (pairOk !== singleOk || pair.status === 'rejected' || single.status === 'rejected') {
      // One slot reserved while the other refused or failed: give that reservation back, so a refused
      // attempt counts nowhere. Best effort; if it fails, the reservation expires as a failure.
      await Promise.allSettled([
        pairOk ? runner.run(limiterSettle, [accountIpKey, ipKey], ['r', at]) : null,
        singleOk ? runner.run(limiterLogSettle, [accountKey], ['r', at]) : null,
      ]);
    }
    if (pair.status === 'rejected') throw pair.reason;
    if (single.status === 'rejected') throw single.reason;
    // A log that reserved while the other refused reads "open" with its reservation given back above;
    // the result refuses the attempt as a whole.
    if (!pairOk) return [...pair.value, { ...single.value, count: single.value.count - (singleOk ? 1 : 0) }];
    return [...pair.value.map((r) => ({ ...r, count: r.count - (singleOk ? 0 : 1) })), single.value];
  }

  #result(
    now: number,
    configs: readonly LoginPolicyConfig[],
    replies: readonly LogReply[],
    accountDigest: string,
    ipBucket: string,
    state: ReservationState,
  ): LoginCheckResult {
    const states = configs.map((config, i) =>
      policyState(config, replies[i] as LogReply, now, this.#options),
    );
    let allowed = true;
    let remaining = Number.POSITIVE_INFINITY;
    for (const s of states) {
      if (s.blocked) allowed = false;
      if (s.remaining < remaining) remaining = s.remaining;
    }
    const degraded = state.fallback;
    if (allowed) {
      const reservation = new Reservation(ipBucket, accountDigest, now, state);
      return Object.freeze({
        allowed: true,
        remaining,
        retryAfterMs: 0,
        reservation,
        policies: Object.freeze(states),
        degraded,
      });
    }
    let blocking = states.find((s) => s.blocked) as LoginPolicyState;
    for (const s of states) if (s.blocked && s.resetAfterMs > blocking.resetAfterMs) blocking = s;
    const retryAfterMs = blocking.resetAfterMs;
    emitSafely(this.#ctx.onEvent, {
      type: 'login.blocked',
      at: now,
      policy: blocking.policy,
      accountDigest,
      ipBucket,
      retryAfterMs,
    });
    return Object.freeze({
      allowed: false,
      remaining: 0,
      retryAfterMs,
      blockedBy: blocking.policy,
      reservation: null,
      policies: Object.freeze(states),
      degraded,
    });
  }
}

/**
 * The slot label of `now` for a window: floor(now / slot) with slots of 1/(MAX_ENTRIES − 1) window,
 * so that the live part of a log (one window) touches at most MAX_ENTRIES labels. Only equality of
 * neighbouring labels matters, so they are taken modulo a bound far above MAX_ENTRIES.
 */
function slotLabel(now: number, windowMs: number): string {
  return String(Math.floor(now / Math.ceil(windowMs / (MAX_ENTRIES - 1))) % LABEL_MODULUS);
}

/** ARGV of limiter-log-reserve. */
function logArgs(now: number, at: string, limit: number, windowMs: number): Array<string | number> {
  return [at, String(now - windowMs), limit, windowMs + TTL_SLACK_MS, slotLabel(now, windowMs)];
}

/** ARGV of limiter-check: both policies, then the back-off thresholds `now − wait(n)` (none when off). */
function pairArgs(now: number, at: string, o: ResolvedLimiterOptions): Array<string | number> {
  const ai = o.accountIp;
  const ip = o.ip;
  const args: Array<string | number> = [
    at,
    String(now - ai.windowMs),
    ai.limit,
    ai.windowMs + TTL_SLACK_MS,
    slotLabel(now, ai.windowMs),
    String(now - ip.windowMs),
    ip.limit,
    ip.windowMs + TTL_SLACK_MS,
    slotLabel(now, ip.windowMs),
  ];
  for (const wait of o.backoffWaits) args.push(String(now - wait));
  return args;
}

/** A log's reference instant: the `to` string the script read back unchanged ('' = none). */
function refOf(value: unknown): number | null {
  const text = toOptionalString(value);
  return text === undefined || text === '' ? null : Number(text);
}

function parsePair(reply: unknown): LogReply[] {
  const [allowed, aiState, aiCount, aiRef, ipState, ipCount, ipRef] = toArray(reply);
  const ok = toInt(allowed) === 1;
  return [
    { allowed: ok, state: toInt(aiState), count: toInt(aiCount), refAt: refOf(aiRef) },
    { allowed: ok, state: toInt(ipState), count: toInt(ipCount), refAt: refOf(ipRef) },
  ];
}

function parseLog(reply: unknown): LogReply {
  const [allowed, count, ref] = toArray(reply);
  const ok = toInt(allowed) === 1;
  return { allowed: ok, state: ok ? 0 : 1, count: toInt(count), refAt: refOf(ref) };
}

/** A fallback counter as a log reply: its fixed window ends at `resetAt`, i.e. when an entry at `resetAt − window` leaves. */
function fallbackReply(state: FallbackState, windowMs: number): LogReply {
  return {
    allowed: !state.blocked,
    state: state.blocked ? 1 : 0,
    count: state.count,
    refAt: state.resetAt - windowMs,
  };
}

function backoffDelay(options: ResolvedLimiterOptions, count: number): number {
  return Math.min(options.backoffMaxMs, options.backoffInitialMs * 2 ** (count - 1));
}

function policyState(
  config: LoginPolicyConfig,
  reply: LogReply,
  now: number,
  options: ResolvedLimiterOptions,
): LoginPolicyState {
  const blocked = reply.state !== 0;
  let resetAfterMs = 0;
  if (reply.refAt !== null) {
    const until =
      reply.state === 2 ? reply.refAt + backoffDelay(options, reply.count) : reply.refAt + config.windowMs;
    resetAfterMs = Math.min(config.windowMs, Math.max(blocked ? 1 : 0, until - now));
  } else if (blocked) {
    resetAfterMs = config.windowMs;
  }
  return Object.freeze({
    policy: config.policy,
    limit: config.limit,
    windowMs: config.windowMs,
    remaining: blocked ? 0 : Math.max(0, config.limit - reply.count),
    blocked,
    resetAfterMs,
  });
}

function boundedInt(name: string, value: number | undefined, fallback: number, max: number): number {
  const resolved = positiveInt(name, value, fallback);
  if (resolved > max) throw new InvalidOptionError(`${name} must be at most ${max}, got ${resolved}`);
  return resolved;
}

function policyOptions<T extends object>(name: string, value: unknown): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object') throw new InvalidOptionError(`${name} must be an object`);
  return value as T;
}

function resolveLimiterOptions(options: LoginLimiterOptions): ResolvedLimiterOptions {
  const ai = policyOptions<AccountIpPolicyOptions>('accountIp', options.accountIp);
  const ip = policyOptions<LoginPolicyOptions>('ip', options.ip);
  const accountIp: LoginPolicyConfig = Object.freeze({
    policy: 'account-ip',
    limit: boundedInt('accountIp.maxFailures', ai.maxFailures, 5, MAX_LIMIT),
    windowMs: boundedInt('accountIp.windowMs', ai.windowMs, HOUR_MS, MAX_WINDOW_MS),
  });
  let backoffInitialMs = 0;
  let backoffMaxMs = 0;
  const backoff = ai.backoff ?? false;
  if (backoff !== false) {
    const b = backoff === true ? {} : policyOptions<LoginBackoffOptions>('accountIp.backoff', backoff);
    backoffInitialMs = boundedInt('accountIp.backoff.initialMs', b.initialMs, 1000, accountIp.windowMs);
    backoffMaxMs = boundedInt(
      'accountIp.backoff.maxMs',
      b.maxMs,
      Math.min(60_000, accountIp.windowMs),
      accountIp.windowMs,
    );
    if (backoffMaxMs < backoffInitialMs) {
      throw new InvalidOptionError('accountIp.backoff.maxMs must be at least accountIp.backoff.initialMs');
    }
  }
  let account: LoginPolicyConfig | null = null;
  const acc = options.account ?? false;
  if (acc !== false) {
    const a = acc === true ? {} : policyOptions<LoginPolicyOptions>('account', acc);
    account = Object.freeze({
      policy: 'account',
      limit: boundedInt('account.maxFailures', a.maxFailures, 100, MAX_LIMIT),
      windowMs: boundedInt('account.windowMs', a.windowMs, DAY_MS, MAX_WINDOW_MS),
    });
  }
  let failOpen: ResolvedLimiterOptions['failOpen'] = null;
  const fo = options.failOpen ?? false;
  if (fo !== false) {
    const f = fo === true ? {} : policyOptions<FailOpenOptions>('failOpen', fo);
    failOpen = Object.freeze({
      maxPerWindow: boundedInt('failOpen.maxPerWindow', f.maxPerWindow, 1000, 10_000_000),
      maxEntries: boundedInt('failOpen.maxEntries', f.maxEntries, 10_000, 10_000_000),
    });
  }
  const backoffWaits: number[] = [];
  if (backoffInitialMs > 0) {
    // Failures at the limit are refused anyway, so the list stops there or at the cap (≤ 32 steps).
    for (let n = 1; n < accountIp.limit || n === 1; n++) {
      const wait = Math.min(backoffMaxMs, backoffInitialMs * 2 ** (n - 1));
      backoffWaits.push(wait);
      if (wait >= backoffMaxMs) break;
    }
  }
  return Object.freeze({
    accountIp,
    backoffInitialMs,
    backoffMaxMs,
    backoffWaits: Object.freeze(backoffWaits),
    ip: Object.freeze({
      policy: 'ip',
      limit: boundedInt('ip.maxFailures', ip.maxFailures, 100, MAX_LIMIT),
      windowMs: boundedInt('ip.windowMs', ip.windowMs, HOUR_MS, MAX_WINDOW_MS),
    }),
    account,
    knownDeviceTtlMs: boundedInt('knownDeviceTtlMs', options.knownDeviceTtlMs, 180 * DAY_MS, 3650 * DAY_MS),
    failOpen,
  });
}

interface FallbackItem {
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
}

interface FallbackState {
  readonly blocked: boolean;
  readonly count: number;
  readonly resetAt: number;
}

/**
 * @internal The fail-open fallback: fixed-window counters in process memory, bounded in entries and
 * in the attempts it lets through per window. Beyond either bound it fails closed.
 */
class FallbackLimiter {
  readonly #entries = new Map<string, { resetAt: number; count: number }>();
  readonly #maxPerWindow: number;
  readonly #maxEntries: number;
  readonly #budgetWindowMs: number;
  #budgetResetAt = 0;
  #budgetUsed = 0;

  constructor(maxPerWindow: number, maxEntries: number, budgetWindowMs: number) {
    this.#maxPerWindow = maxPerWindow;
    this.#maxEntries = maxEntries;
    this.#budgetWindowMs = budgetWindowMs;
  }

  reserve(now: number, items: readonly FallbackItem[]): FallbackState[] {
    const live = items.map((item) => this.#live(item.key, now));
    const states = items.map((item, i) => {
      const entry = live[i];
      const count = entry?.count ?? 0;
      return { blocked: count >= item.limit, count, resetAt: entry?.resetAt ?? now + item.windowMs };
    });
    if (states.some((s) => s.blocked)) return states;
    if (now >= this.#budgetResetAt) {
      this.#budgetResetAt = now + this.#budgetWindowMs;
      this.#budgetUsed = 0;
    }
    if (this.#budgetUsed >= this.#maxPerWindow) {
      throw new StoreUnavailableError(
        'Redis is unavailable and the fail-open allowance of this process is spent',
      );
    }
    const fresh = live.filter((e) => e === undefined).length;
    if (this.#entries.size + fresh > this.#maxEntries) this.#sweep(now);
    if (this.#entries.size + fresh > this.#maxEntries) {
      throw new StoreUnavailableError('Redis is unavailable and the fail-open fallback is full');
    }
    this.#budgetUsed++;
    return items.map((item, i) => {
      const entry = live[i] ?? { resetAt: now + item.windowMs, count: 0 };
      entry.count++;
      this.#entries.set(item.key, entry);
      return { blocked: false, count: entry.count, resetAt: entry.resetAt };
    });
  }

  settle(state: ReservationState, outcome: 'success' | 'release', now: number): void {
    if (outcome === 'success') {
      this.#entries.delete(state.accountIpKey);
      if (state.accountLog !== null) this.#entries.delete(state.accountLog);
    } else {
      this.#decrement(state.accountIpKey, now);
      if (state.accountKey !== null) this.#decrement(state.accountKey, now);
    }
    this.#decrement(state.ipKey, now);
  }

  #decrement(key: string, now: number): void {
    const entry = this.#live(key, now);
    if (entry === undefined) return;
    entry.count--;
    if (entry.count <= 0) this.#entries.delete(key);
  }

  #live(key: string, now: number): { resetAt: number; count: number } | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined && now >= entry.resetAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) if (now >= entry.resetAt) this.#entries.delete(key);
  }
}
