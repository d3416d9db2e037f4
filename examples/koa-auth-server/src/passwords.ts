import { randomBytes } from 'node:crypto';
import { type Algorithm, hash, verify } from '@node-rs/argon2';

/** argon2id cost parameters. */
export interface PasswordHashingOptions {
  /**
   * Memory per hash, in KiB.
   * @default 19456 (19 MiB, the OWASP minimum for argon2id)
   */
  readonly memoryCost?: number;
  /**
   * Passes over the memory.
   * @default 2
   */
  readonly timeCost?: number;
  /**
   * Lanes.
   * @default 1
   */
  readonly parallelism?: number;
}

/**
 * What the app needs of a password hasher: {@link PasswordHasher}, or a stand-in in tests (one that
 * pauses a check, to prove that a login racing a password reset cannot survive it).
 */
export interface PasswordChecker {
  /** The PHC string of `password`. */
  hash(password: string): Promise<string>;
  /** True when `password` matches `stored`; with `stored` undefined, a full check that returns false. */
  verify(stored: string | undefined, password: string): Promise<boolean>;
  /** Prepares what the first check needs (optional). */
  warmUp?(): Promise<void>;
}

// `Algorithm` is an ambient const enum (unusable under isolatedModules); 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;

/**
 * Hashes and checks passwords with argon2id. A check against no user still runs one full
 * verification against a dummy hash of the same cost, so that "no such account" and "wrong password"
 * take the same time.
 */
export class PasswordHasher implements PasswordChecker {
  readonly #options: { memoryCost: number; timeCost: number; parallelism: number; algorithm: Algorithm };
  #dummy: Promise<string> | undefined;

  constructor(options: PasswordHashingOptions = {}) {
    const memoryCost = options.memoryCost ?? 19456;
    const timeCost = options.timeCost ?? 2;
    const parallelism = options.parallelism ?? 1;
    if (!Number.isSafeInteger(parallelism) || parallelism < 1 || parallelism > 255) {
      throw new RangeError('parallelism must be a whole number from 1 to 255');
    }
    if (!Number.isSafeInteger(memoryCost) || memoryCost < 8 * parallelism) {
      throw new RangeError('memoryCost must be a whole number of KiB ≥ 8 × parallelism');
    }
    if (!Number.isSafeInteger(timeCost) || timeCost < 1) {
      throw new RangeError('timeCost must be a whole number ≥ 1');
    }
    this.#options = Object.freeze({ memoryCost, timeCost, parallelism, algorithm: ARGON2ID });
  }

  /** The PHC string (`$argon2id$v=19$m=…`) of `password`, with a fresh random salt. */
  hash(password: string): Promise<string> {
    return hash(password, this.#options);
  }

  /**
   * True when `password` matches `stored`. With `stored` undefined (no such user) it verifies against
   * a dummy hash and returns false, taking about as long as a real check.
   */
  async verify(stored: string | undefined, password: string): Promise<boolean> {
    if (stored === undefined) {
      await verify(await this.#dummyHash(), password).catch(() => false);
      return false;
    }
    try {
      return await verify(stored, password);
    } catch {
      // A malformed stored hash never authenticates anybody.
      return false;
    }
  }

  /** Computes the dummy hash ahead of the first request (optional). */
  async warmUp(): Promise<void> {
    await this.#dummyHash();
  }

  #dummyHash(): Promise<string> {
    this.#dummy ??= hash(randomBytes(32).toString('base64url'), this.#options);
    return this.#dummy;
  }
}
