import { InvalidInputError, InvalidOptionError, StoreFailedError } from './errors.js';
import { randomSecret, sha256 } from './internal/crypto.js';
import {
  positiveInt,
  resolveStoreOptions,
  type StoreContext,
  type StoreOptions,
} from './internal/options.js';
import { REVOKING, toInt } from './internal/script.js';
import { webauthnChallengeConsume } from './lua/generated/webauthn-challenge-consume.js';
import { webauthnChallengeIssue } from './lua/generated/webauthn-challenge-issue.js';

/** What a WebAuthn challenge is for: creating a credential, or asserting one (a login). */
export type WebAuthnPurpose = 'registration' | 'authentication';

/** Whom a challenge was issued to, and for what. */
export interface ChallengeBinding {
  /** `registration` or `authentication`; a challenge of one purpose never serves the other. */
  readonly purpose: WebAuthnPurpose;
  /**
   * Who asked: the session id for a registration; for a passwordless login, an opaque attempt id the
   * client holds (e.g. in a short-lived cookie; {@link WebAuthnChallenges.createAttemptId} makes one).
   * 1 to 256 printable ASCII characters.
   */
  readonly owner: string;
}

/** A presented challenge, for {@link WebAuthnChallenges.consume}. */
export interface PresentedChallenge extends ChallengeBinding {
  /** The challenge as the client echoed it (the `challenge` of its `clientDataJSON`), base64url. */
  readonly challenge: string;
}

/** Options of {@link WebAuthnChallenges}. */
export interface WebAuthnChallengesOptions extends StoreOptions {
  /**
   * How long a challenge can be answered, in ms (WebAuthn's recommended ceremony timeout).
   * @default 300_000 (5 minutes)
   */
  readonly ttlMs?: number;
}

/** An issued challenge. */
export interface IssuedChallenge {
  /** 32 random bytes, base64url: put it into the WebAuthn options. latchkey keeps only its digest. */
  readonly challenge: string;
  /** When it stops being accepted, epoch ms. */
  readonly expiresAt: number;
}

/** Why {@link WebAuthnChallenges.consume} refused. */
export type ChallengeRefusal = 'unknown' | 'mismatch' | 'expired';

/** The answer of {@link WebAuthnChallenges.consume}. */
export type ConsumeChallengeResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /**
       * `unknown`: none outstanding for this owner and purpose (never issued, already consumed, or
       * replaced by a newer one); `mismatch`: another challenge was outstanding (it is spent now);
       * `expired`: past its lifetime. Tell clients only that the response is not valid.
       */
      readonly reason: ChallengeRefusal;
    };

const MAX_TTL_MS = 60 * 60 * 1000;
const OWNER = /^[\x21-\x7e]{1,256}$/;
/** 32 bytes, base64url without padding. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
/** Sent instead of a digest for a presented value that cannot be a challenge: no digest equals it. */
const NO_DIGEST = '!';
const REFUSALS: Record<number, ChallengeRefusal> = { 1: 'unknown', 2: 'mismatch', 3: 'expired' };

/**
 * Single-use WebAuthn challenges bound to a purpose and an owner. Each is 32 random bytes, stored only
 * as a SHA-256 digest with its expiry; an owner has at most one outstanding per purpose (a new one
 * replaces the old). `consume()` deletes the challenge whatever the outcome, so one response is
 * checked at most once: of any number of concurrent verifications of one response, at most one
 * consumes it. `issue()` and `consume()` are one atomic round trip each.
 *
 * Consume the challenge the response carries **before** verifying the response's signature, and give
 * the verifier that same challenge as the expected one: a response for another challenge, a replay or a
 * response to a stale challenge is then refused without ever reaching signature verification.
 *
 * @example
 * const challenges = new WebAuthnChallenges({ redis });
 * const { challenge } = await challenges.issue({ purpose: 'registration', owner: session.id });
 * // … later, with the challenge read from the response's clientDataJSON:
 * const spent = await challenges.consume({ purpose: 'registration', owner: session.id, challenge });
 * if (!spent.ok) return reply(400, { error: 'invalid_passkey' });
 */
export class WebAuthnChallenges {
  readonly #ctx: StoreContext;
  readonly #ttlMs: number;

  /**
   * @throws {InvalidOptionError} when an option breaks its rule (the message names it).
   */
  constructor(options: WebAuthnChallengesOptions) {
    this.#ctx = resolveStoreOptions(options);
    this.#ttlMs = positiveInt('ttlMs', options.ttlMs, 5 * 60 * 1000);
    if (this.#ttlMs > MAX_TTL_MS) throw new InvalidOptionError(`ttlMs must be at most ${MAX_TTL_MS}`);
  }

  /**
   * A new opaque attempt id (256 bits, base64url) to own the challenge of a passwordless login.
   * @example
   * const attempt = WebAuthnChallenges.createAttemptId();
   * ctx.cookies.set('pk_attempt', attempt, { httpOnly: true, maxAge: 300_000 });
   */
  static createAttemptId(): string {
    return randomSecret();
  }

  /**
   * Issues a challenge for the owner and purpose, replacing any outstanding one. One round trip.
   *
   * @throws {InvalidInputError} when the purpose or owner is malformed.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const { challenge } = await challenges.issue({ purpose: 'authentication', owner: attempt });
   */
  async issue(binding: ChallengeBinding): Promise<IssuedChallenge> {
    const key = this.#key(binding);
    const challenge = randomSecret();
    const expiresAt = this.#ctx.clock.now() + this.#ttlMs;
    await this.#ctx.runner.run(
      webauthnChallengeIssue,
      [key],
      [digestOf(binding, challenge), String(expiresAt), String(this.#ttlMs)],
    );
    return Object.freeze({ challenge, expiresAt });
  }

  /**
   * Consumes the owner's outstanding challenge of the purpose if it equals the presented one and is
   * live. The outstanding challenge is spent in every case (a wrong presented value spends it too), so
   * each challenge is checked at most once. One atomic round trip (with `durability`, it returns once
   * replicas acknowledged the consumption: a failover cannot bring the challenge back).
   *
   * @throws {InvalidInputError} when the purpose or owner is malformed or `challenge` is not a string
   *   (nothing is spent then).
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   * @example
   * const spent = await challenges.consume({ purpose: 'authentication', owner: attempt, challenge });
   */
  async consume(presented: PresentedChallenge): Promise<ConsumeChallengeResult> {
    const key = this.#key(presented);
    const challenge: unknown = presented.challenge;
    if (typeof challenge !== 'string') throw new InvalidInputError('challenge must be a string');
    const digest = CHALLENGE.test(challenge) ? digestOf(presented, challenge) : NO_DIGEST;
    const status = toInt(
      await this.#ctx.runner.run(
        webauthnChallengeConsume,
        [key],
        [String(this.#ctx.clock.now()), digest],
        REVOKING,
      ),
    );
    if (status === 0) return Object.freeze({ ok: true });
    const reason = REFUSALS[status];
    if (reason === undefined) throw new StoreFailedError('unexpected reply from Redis');
    return Object.freeze({ ok: false, reason });
  }

  #key(binding: ChallengeBinding): string {
    if (binding === null || typeof binding !== 'object') {
      throw new InvalidInputError('expected an object with purpose and owner');
    }
    const { purpose, owner } = binding;
    if (purpose !== 'registration' && purpose !== 'authentication') {
      throw new InvalidInputError('purpose must be "registration" or "authentication"');
    }
    if (typeof owner !== 'string' || !OWNER.test(owner)) {
      throw new InvalidInputError('owner must be 1 to 256 printable ASCII characters');
    }
    return this.#ctx.keys.webauthnChallenge(sha256(`latchkey/webauthn-owner\u0000${purpose}\u0000${owner}`));
  }
}

function digestOf(binding: ChallengeBinding, challenge: string): string {
  return sha256(
    `latchkey/webauthn-challenge\u0000${binding.purpose}\u0000${binding.owner}\u0000${challenge}`,
  );
}
