import { readFile, stat } from 'node:fs/promises';
import { inspect } from 'node:util';
import { blake2b } from '@noble/hashes/blake2b';
import { PublicProtocol } from 'paseto';
import {
  ExportPublicKeyFactory,
  ExportSecretKeyFactory,
  GenerateKeyPairFactory,
  GetPublicKeyFactory,
  ImportPublicKeyFactory,
  ImportSecretKeyFactory,
  type PublicKey,
  type SecretKey,
} from 'paseto/v4/public';
import { InvalidOptionError, KeyError } from './errors.js';
import { sha256 } from './internal/crypto.js';

const v4 = new PublicProtocol(
  ImportSecretKeyFactory,
  ImportPublicKeyFactory,
  GetPublicKeyFactory,
  ExportPublicKeyFactory,
);
const v4Generate = new PublicProtocol(GenerateKeyPairFactory, ExportSecretKeyFactory, ExportPublicKeyFactory);

/** Key ids travel in token footers: short, and safe to log and to compare. */
const KID = /^[A-Za-z0-9._-]{1,64}$/;
/** A PASERK key file holds one line of well under 200 characters; refuse to read anything large. */
const MAX_KEY_FILE_BYTES = 4096;
/** A key ring is meant for rotation (a handful of keys), not as a directory. */
const MAX_KEYS = 32;

/** Where a key comes from: PASERK text, or a file holding it (one line; surrounding whitespace is ignored). */
export type KeySource = string | { readonly file: string };

/** A verification key of a {@link KeyRing}. */
export interface VerificationKeyInput {
  /**
   * The key id written to (and read from) token footers. Letters, digits, `.`, `_`, `-`; 1 to 64.
   * @default the key's PASERK `k4.pid` (`k4.pid.` + base64url of the 33-byte BLAKE2b of `k4.pid.` +
   *   the `k4.public` PASERK); the pre-k4.pid default id also verifies as an alias
   */
  readonly kid?: string;
  /** A `k4.public.…` PASERK, or `{ file }` holding one. */
  readonly key: KeySource;
}

/** Options of {@link KeyRing.fromPaserk}. */
export interface KeyRingOptions {
  /**
   * The signing key: a `k4.secret.…` PASERK, or `{ file }` holding one. Its public key verifies
   * under the same key id. Omit it for a ring that only verifies.
   */
  readonly signing?: KeySource;
  /**
   * The signing key's id (letters, digits, `.`, `_`, `-`; 1 to 64 characters).
   * @default its PASERK `k4.pid` (`k4.pid.` + base64url of the 33-byte BLAKE2b of `k4.pid.` + its
   *   `k4.public` PASERK); the pre-k4.pid default id also verifies as an alias
   */
  readonly kid?: string;
  /** Further keys that verify but never sign: keys being rotated out, or other issuers' keys. */
  readonly verification?: readonly VerificationKeyInput[];
}

/** A generated key pair as PASERK text (see {@link generateDevelopmentKey}). */
export interface DevelopmentKey {
  readonly kid: string;
  /** `k4.secret.…` — keep it secret. */
  readonly secret: string;
  /** `k4.public.…` */
  readonly public: string;
}

/** @internal What `AccessTokens` reads from a ring; never exported from the package. */
export interface KeyRingState {
  readonly signing: { readonly kid: string; readonly key: SecretKey } | null;
  readonly verification: ReadonlyMap<string, PublicKey>;
  /** Bumped on every change, so that caches of verified tokens can tell they are stale. */
  readonly version: number;
}

const states = new WeakMap<KeyRing, KeyRingState>();

/** @internal The current keys of a ring. */
export function keyRingState(ring: KeyRing): KeyRingState {
  const state = states.get(ring);
  if (state === undefined) throw new InvalidOptionError('keyRing must be a KeyRing');
  return state;
}

/**
 * The Ed25519 (PASETO v4.public) keys of access tokens: one signing key and any number of
 * verification keys, each under a key id that tokens carry in their footer. Rotation: start signing
 * with a new key ({@link KeyRing.setSigningKey}) — the old one keeps verifying until you
 * {@link KeyRing.removeVerificationKey} it, once every token it signed has expired. A token naming
 * a key id the ring does not hold fails verification.
 *
 * Secret keys are imported non-extractable and never printed: a ring inspects as its key ids only.
 *
 * @example
 * const keyRing = await KeyRing.fromPaserk({
 *   signing: process.env.PASETO_SECRET_KEY!, // k4.secret.…
 *   kid: '2025-06',
 *   verification: [{ kid: '2025-01', key: { file: '/run/secrets/paseto-2025-01.pub' } }],
 * });
 */
export class KeyRing {
  #signing: { kid: string; key: SecretKey } | null = null;
  /** kid → the public key and its PASERK text (to tell "the same key again" from a clash). */
  readonly #verification = new Map<string, { readonly key: PublicKey; readonly paserk: string }>();
  /** Pre-k4.pid default id → the k4.pid it stands for (keys added without an explicit kid). */
  readonly #aliases = new Map<string, string>();
  #version = 0;

  private constructor() {
    this.#publish();
  }

  /**
   * Builds a ring from PASERK text or key files.
   * @throws {KeyError} when a key cannot be read or is not a v4 PASERK of the right type, when the
   *   ring would hold no key, or when a key id is used twice.
   * @throws {InvalidOptionError} when a key id has the wrong shape.
   */
  static async fromPaserk(options: KeyRingOptions): Promise<KeyRing> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('KeyRing.fromPaserk options must be an object');
    }
    const verification = options.verification ?? [];
    if (!Array.isArray(verification)) throw new InvalidOptionError('verification must be an array');
    const ring = new KeyRing();
    if (options.signing !== undefined) {
      await ring.setSigningKey({
        key: options.signing,
        ...(options.kid === undefined ? {} : { kid: options.kid }),
      });
    } else if (options.kid !== undefined) {
      throw new InvalidOptionError('kid names the signing key; give signing too');
    }
    for (const entry of verification) await ring.addVerificationKey(entry);
    if (ring.#verification.size === 0) throw new KeyError('the key ring holds no key');
    return ring;
  }

  /** The id of the key that signs new tokens, or undefined for a verify-only ring. */
  get signingKid(): string | undefined {
    return this.#signing?.kid;
  }

  /** The ids of every key that verifies, the signing key's included. */
  get kids(): string[] {
    return [...this.#verification.keys()];
  }

  /** Increases with every change of the ring. */
  get version(): number {
    return this.#version;
  }

  /**
   * Makes `key` the signing key. The previous signing key keeps verifying under its id.
   * @throws {KeyError} when the key is not a `k4.secret` PASERK, or its id names another key.
   */
  async setSigningKey(input: { readonly kid?: string; readonly key: KeySource }): Promise<void> {
    const text = await readSource(input?.key, 'signing key');
    if (!text.startsWith('k4.secret.')) throw new KeyError('the signing key must be a k4.secret PASERK');
    let secret: SecretKey;
    let publicKey: PublicKey;
    let publicText: string;
    try {
      secret = await v4.ImportSecretKey(text as `k4.secret.${string}`);
      publicKey = await v4.GetPublicKey(secret);
      publicText = await v4.ExportPublicKey(publicKey);
    } catch (cause) {
      throw new KeyError('the signing key is not a valid k4.secret PASERK', { cause });
    }
    const kid = this.#admit(input.kid, publicKey, publicText);
    this.#signing = { kid, key: secret };
    this.#publish();
  }

  /**
   * Adds a key that verifies tokens but never signs.
   * @throws {KeyError} when the key is not a `k4.public` PASERK, or its id names another key.
   */
  async addVerificationKey(input: VerificationKeyInput): Promise<void> {
    if (input === null || typeof input !== 'object') {
      throw new InvalidOptionError('a verification key must be an object { kid?, key }');
    }
    const text = await readSource(input.key, 'verification key');
    if (!text.startsWith('k4.public.')) throw new KeyError('a verification key must be a k4.public PASERK');
    let publicKey: PublicKey;
    try {
      publicKey = await v4.ImportPublicKey(text as `k4.public.${string}`);
    } catch (cause) {
      throw new KeyError('a verification key is not a valid k4.public PASERK', { cause });
    }
    this.#admit(input.kid, publicKey, text);
    this.#publish();
  }

  /**
   * Stops accepting tokens signed with the key `kid`. The signing key cannot be removed (set another
   * one first).
   * @returns whether the ring held that key.
   * @throws {KeyError} when `kid` is the signing key's id.
   */
  removeVerificationKey(kid: string): boolean {
    const target = this.#verification.has(kid) ? kid : (this.#aliases.get(kid) ?? kid);
    if (this.#signing?.kid === target) {
      throw new KeyError('the signing key cannot be removed; set another signing key first');
    }
    const removed = this.#verification.delete(target);
    for (const [alias, of] of this.#aliases) if (of === target) this.#aliases.delete(alias);
    if (removed) this.#publish();
    return removed;
  }

  /**
   * Adds a verifying key under `kidInput` (or the id derived from its PASERK) and returns the id; the
   * caller publishes. Refuses an id that already names a different key (re-adding the same key is a
   * no-op), and a full ring: rotation adds a key each time (the old signing key keeps verifying), so
   * the cap applies to both ways in.
   */
  #admit(kidInput: string | undefined, key: PublicKey, publicText: string): string {
    const kid = resolveKid(kidInput, publicText);
    const existing = this.#verification.get(kid);
    if (existing !== undefined && existing.paserk !== publicText) {
      throw new KeyError(`the key id "${kid}" already names another key`);
    }
    if (this.#verification.size >= MAX_KEYS && !this.#verification.has(kid)) {
      throw new KeyError(`a key ring holds at most ${MAX_KEYS} keys; remove retired ones`);
    }
    this.#verification.set(kid, { key, paserk: publicText });
    if (kidInput === undefined) this.#aliases.set(legacyKid(publicText), kid);
    return kid;
  }

  #publish(): void {
    this.#version++;
    const verification = new Map<string, PublicKey>();
    for (const [kid, entry] of this.#verification) verification.set(kid, entry.key);
    // An alias never shadows a real id (an explicit kid that happens to equal it wins).
    for (const [alias, kid] of this.#aliases) {
      const entry = this.#verification.get(kid);
      if (entry !== undefined && !verification.has(alias)) verification.set(alias, entry.key);
    }
    states.set(this, Object.freeze({ signing: this.#signing, verification, version: this.#version }));
  }

  toString(): string {
    return `KeyRing { signing: ${this.#signing?.kid ?? 'none'}, verification: [${this.kids.join(', ')}] }`;
  }

  toJSON(): { signing: string | null; verification: string[] } {
    return { signing: this.#signing?.kid ?? null, verification: this.kids };
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function resolveKid(kid: string | undefined, publicText: string): string {
  if (kid === undefined) return defaultKid(publicText);
  if (typeof kid !== 'string' || !KID.test(kid)) {
    throw new InvalidOptionError('kid must be 1 to 64 letters, digits, ".", "_" or "-"');
  }
  return kid;
}

function defaultKid(publicText: string): string {
  return paserkPid(publicText);
}

/**
 * The PASERK `k4.pid` of a `k4.public` PASERK: `k4.pid.` + base64url (no padding) of the 264-bit
 * (33-byte) BLAKE2b of the bytes `k4.pid.` followed by the `k4.public.…` text.
 * @internal
 */
export function paserkPid(publicText: string): string {
  const digest = blake2b(new TextEncoder().encode(`k4.pid.${publicText}`), { dkLen: 33 });
  return `k4.pid.${Buffer.from(digest).toString('base64url')}`;
}

/**
 * The `k4.public` PASERK and default key id (`k4.pid`) of a `k4.secret` PASERK: what a resource server
 * that only verifies needs (the CLI's `keys public`).
 * @throws {KeyError} when the text is not a valid `k4.secret` PASERK.
 * @internal
 */
export async function publicKeyOf(secretText: string): Promise<{ kid: string; public: string }> {
  const text = typeof secretText === 'string' ? secretText.trim() : '';
  if (!text.startsWith('k4.secret.')) throw new KeyError('the key must be a k4.secret PASERK');
  let publicText: string;
  try {
    publicText = await v4.ExportPublicKey(
      await v4.GetPublicKey(await v4.ImportSecretKey(text as `k4.secret.${string}`)),
    );
  } catch (cause) {
    throw new KeyError('the key is not a valid k4.secret PASERK', { cause });
  }
  return { kid: defaultKid(publicText), public: publicText };
}

/** The default key id before k4.pid (kept as an alias so tokens signed under it keep verifying). */
function legacyKid(publicText: string): string {
  return sha256(`latchkey/kid\u0000${publicText}`).slice(0, 16);
}

async function readSource(source: KeySource | undefined, what: string): Promise<string> {
  if (typeof source === 'string') return source.trim();
  if (source === null || typeof source !== 'object' || typeof source.file !== 'string') {
    throw new InvalidOptionError(`the ${what} must be PASERK text or { file: path }`);
  }
  try {
    const info = await stat(source.file);
    if (!info.isFile() || info.size > MAX_KEY_FILE_BYTES) {
      throw new KeyError(`the ${what} file is not a PASERK key file`);
    }
    return (await readFile(source.file, 'utf8')).trim();
  } catch (cause) {
    if (cause instanceof KeyError) throw cause;
    throw new KeyError(`the ${what} file cannot be read`, { cause });
  }
}

/**
 * Generates a fresh Ed25519 key pair as PASERK text, for development and tests: store `secret` as
 * the signing key (`PASETO_SECRET_KEY`) and hand `public` to services that only verify.
 *
 * @example
 * const dev = await generateDevelopmentKey();
 * const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });
 */
export async function generateDevelopmentKey(): Promise<DevelopmentKey> {
  const pair = await v4Generate.GenerateKeyPair({ extractable: true });
  const secret = await v4Generate.ExportSecretKey(pair.secretKey);
  const publicText = await v4Generate.ExportPublicKey(pair.publicKey);
  return Object.freeze({ kid: defaultKid(publicText), secret, public: publicText });
}
