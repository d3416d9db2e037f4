import { InvalidInputError, InvalidOptionError, StoreFailedError } from './errors.js';
import { emitSafely } from './events.js';
import {
  positiveInt,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toArray, toInt } from './internal/script.js';
import { userTag } from './keys.js';
import { revocationAdd } from './lua/generated/revocation-add.js';
import { revocationCheck } from './lua/generated/revocation-check.js';
import { checkUserId } from './sessions.js';

/**
 * The shape a token id must have before it becomes part of a Redis key: 1 to 128 URL-safe
 * characters (letters, digits, `-`, `.`, `_`, `~`). UUIDs, ULIDs and base64url ids fit.
 */
const JTI = /^[A-Za-z0-9._~-]{1,128}$/;
/** Revoking a token that lives longer than this is refused rather than silently shortened. */
const MAX_REMAINING_LIFETIME_MS = 366 * 24 * 3600_000;
/** Ids per script call: keeps one call short on the server and well inside Lua's `unpack` limit. */
const CHECK_CHUNK = 500;

/** The default clock tolerance of verifiers, in ms. */
export const DEFAULT_CLOCK_TOLERANCE_MS = 5_000;
/** The default margin for clock skew between the servers that verify, in ms. */
export const DEFAULT_SKEW_MARGIN_MS = 60_000;

/** Options of {@link RevocationList}. */
export interface RevocationListOptions extends StoreOptions {
  /**
   * The clock tolerance the verifiers apply to `exp`, in ms: a record must outlive the last instant
   * at which any verifier would still accept the token.
   * @default 5000
   */
  readonly clockToleranceMs?: number;
  /**
   * Extra lifetime of every record, in ms, for clocks of other servers running behind this one.
   * @default 60000
   */
  readonly skewMarginMs?: number;
  /**
   * The most ids one {@link RevocationList.areRevoked} call accepts.
   * @default 10000
   */
  readonly maxBatchSize?: number;
}

/** Where a token id belongs. */
export interface RevocationScope {
  /**
   * The user the token was issued to. With it the record lives under the user's hash tag (what
   * latchkey's own access tokens use, so that the bearer check stays one script on one slot);
   * without it, under a tag of its own. Check with the same scope you revoked with.
   */
  readonly userId?: string;
}

/** What {@link RevocationList.revoke} needs besides the id. */
export interface RevokeJtiOptions extends RevocationScope {
  /** When the token expires (its `exp`), epoch ms. */
  readonly expiresAt: number;
}

/** One entry of {@link RevocationList.areRevoked}. */
export interface RevocationQuery extends RevocationScope {
  readonly jti: string;
}

interface ResolvedRevocationOptions {
  readonly clockToleranceMs: number;
  readonly skewMarginMs: number;
  readonly maxBatchSize: number;
}

/**
 * A list of revoked token ids (`jti`), each kept exactly as long as the token could still be
 * accepted somewhere: its remaining lifetime plus the verifiers' clock tolerance plus a skew margin.
 * A token that is already expired stores nothing, and no record ever lacks a TTL. Usable on its own
 * for any token id (a JWT denylist, say); {@link AccessTokens} uses it for latchkey's tokens.
 *
 * Records are negative: losing them (an RDB restore, a failover) re-opens revoked tokens until they
 * expire, which is why access tokens are short-lived and also die with their session.
 *
 * @example
 * const revoked = new RevocationList({ redis });
 * await revoked.revoke(claims.jti, { expiresAt: claims.exp * 1000, userId: claims.sub });
 * if (await revoked.isRevoked(claims.jti, { userId: claims.sub })) throw new Error('revoked');
 */
export class RevocationList {
  readonly #ctx: StoreContext;
  readonly #options: ResolvedRevocationOptions;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: RevocationListOptions) {
    this.#ctx = resolveStoreOptions(options);
    this.#options = resolveRevocationOptions(options);
  }

  /**
   * Revokes `jti` until the token it names has expired everywhere. One round trip. Revoking again
   * never shortens an existing record.
   *
   * @returns `true` when the id is now recorded as revoked; `false` when the token is already past
   *   `expiresAt` plus the clock tolerance, so that no verifier accepts it and nothing is stored.
   * @throws {InvalidInputError} for a malformed id, user id or expiry.
   * @throws {StoreUnavailableError} when Redis cannot be reached.
   */
  async revoke(jti: string, options: RevokeJtiOptions): Promise<boolean> {
    assertJti(jti);
    if (options === null || typeof options !== 'object') {
      throw new InvalidInputError('revoke(jti, options) needs { expiresAt }');
    }
    const { expiresAt } = options;
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) {
      throw new InvalidInputError('expiresAt must be epoch milliseconds');
    }
    const now = this.#ctx.clock.now();
    const remaining = expiresAt - now;
    if (remaining > MAX_REMAINING_LIFETIME_MS) {
      throw new InvalidInputError('expiresAt lies more than 366 days ahead');
    }
    if (remaining + this.#options.clockToleranceMs <= 0) return false;
    // Whole ms, rounded up: an injected clock may report fractions, and PX takes an integer.
    const ttl = Math.ceil(remaining + this.#options.clockToleranceMs + this.#options.skewMarginMs);
    await this.#ctx.runner.run(revocationAdd, [this.#key(jti, options.userId)], [String(ttl)], REVOKING);
    emitSafely(this.#ctx.onEvent, {
      type: 'access-token.revoked',
      at: now,
      jti,
      ...(options.userId === undefined ? {} : { userId: options.userId }),
    });
    return true;
  }

  /**
   * Whether `jti` is revoked (in the given scope). One round trip.
   * @throws {InvalidInputError} for a malformed id or user id.
   * @throws {StoreUnavailableError} when Redis cannot be reached — never "not revoked".
   */
  async isRevoked(jti: string, scope: RevocationScope = {}): Promise<boolean> {
    assertJti(jti);
    const [base, suffix] = this.#location(jti, scope?.userId);
    const reply = toArray(await this.#ctx.runner.run(revocationCheck, [base], [suffix]));
    if (reply.length !== 1) throw new StoreFailedError('unexpected reply from Redis');
    return toInt(reply[0]) === 1;
  }

  /**
   * Checks many ids at once. Ids of one hash tag (one user's, say) go out as one script; ids of
   * different tags as concurrent scripts, one per tag — one round trip of latency.
   *
   * @returns one flag per query, in order: `true` where the id is revoked.
   * @throws {InvalidInputError} for a malformed entry, or more than `maxBatchSize` entries.
   * @throws {StoreUnavailableError} when Redis cannot be reached.
   */
  async areRevoked(queries: readonly RevocationQuery[]): Promise<boolean[]> {
    if (!Array.isArray(queries))
      throw new InvalidInputError('areRevoked() takes an array of { jti, userId? }');
    if (queries.length > this.#options.maxBatchSize) {
      throw new InvalidInputError(`areRevoked() takes at most ${this.#options.maxBatchSize} entries`);
    }
    const groups = new Map<string, { indexes: number[]; suffixes: string[] }>();
    queries.forEach((query, index) => {
      if (query === null || typeof query !== 'object')
        throw new InvalidInputError('each entry must be { jti, userId? }');
      assertJti(query.jti);
      const [base, suffix] = this.#location(query.jti, query.userId);
      let group = groups.get(base);
      if (group === undefined) {
        group = { indexes: [], suffixes: [] };
        groups.set(base, group);
      }
      group.indexes.push(index);
      group.suffixes.push(suffix);
    });
    const result = new Array<boolean>(queries.length).fill(false);
    const calls: Promise<void>[] = [];
    for (const [base, group] of groups) {
      for (let start = 0; start < group.suffixes.length; start += CHECK_CHUNK) {
        const suffixes = group.suffixes.slice(start, start + CHECK_CHUNK);
        const indexes = group.indexes.slice(start, start + CHECK_CHUNK);
        calls.push(
          this.#ctx.runner.run(revocationCheck, [base], suffixes).then((reply) => {
            const flags = toArray(reply);
            if (flags.length !== indexes.length) throw new StoreFailedError('unexpected reply from Redis');
            indexes.forEach((index, i) => {
              result[index] = toInt(flags[i]) === 1;
            });
          }),
        );
      }
    }
    await Promise.all(calls);
    return result;
  }

  /** The record's key: under the user's tag when a user is given, else under the id's own tag. */
  #key(jti: string, userId: string | undefined): string {
    const [base, suffix] = this.#location(jti, userId);
    return base + suffix;
  }

  /** `[tagged base, suffix]` of a record key, as the check script derives it. */
  #location(jti: string, userId: string | undefined): [string, string] {
    if (userId === undefined) return [this.#ctx.keys.revokedJtiStandalone(jti), ''];
    checkUserId(userId);
    return [this.#ctx.keys.revokedJtiBase(userTag(userId)), jti];
  }
}

/** @internal True when `jti` may become part of a key. */
export function isValidJti(jti: unknown): jti is string {
  return typeof jti === 'string' && JTI.test(jti);
}

function assertJti(jti: unknown): asserts jti is string {
  if (!isValidJti(jti)) {
    throw new InvalidInputError('jti must be 1 to 128 characters of letters, digits, "-", ".", "_" or "~"');
  }
}

/** @internal Resolves the tolerance and margin options shared with {@link AccessTokens}. */
export function resolveRevocationOptions(options: RevocationListOptions): ResolvedRevocationOptions {
  const clockToleranceMs = positiveInt(
    'clockToleranceMs',
    options.clockToleranceMs,
    DEFAULT_CLOCK_TOLERANCE_MS,
    0,
  );
  const skewMarginMs = positiveInt('skewMarginMs', options.skewMarginMs, DEFAULT_SKEW_MARGIN_MS, 0);
  const maxBatchSize = positiveInt('maxBatchSize', options.maxBatchSize, 10_000);
  if (clockToleranceMs > 3600_000)
    throw new InvalidOptionError('clockToleranceMs must be at most 3600000 (1 h)');
  if (skewMarginMs > 3600_000) throw new InvalidOptionError('skewMarginMs must be at most 3600000 (1 h)');
  return Object.freeze({ clockToleranceMs, skewMarginMs, maxBatchSize });
}
