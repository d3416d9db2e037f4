import { hkdfSync, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { KeyError } from './errors.js';

const MIN_BYTES = 32;
const SALT = Buffer.from('latchkey/v1', 'utf8');

/** The purposes for which sub-keys are derived from the server secret. */
export type SecretPurpose =
  | 'code-hmac'
  | 'identifier-hmac'
  | 'refresh-successor'
  | 'known-device'
  | 'recovery-code-hmac'
  | 'secret-box'
  | (string & { readonly __custom?: never });

/**
 * The one server secret (`LATCHKEY_SECRET`, at least 32 random bytes) from which every keyed digest
 * is derived with HKDF-SHA256, one sub-key per purpose. The raw bytes never leave this object; it
 * prints as `ServerSecret [redacted]`.
 *
 * @example
 * const secret = ServerSecret.fromBase64url(process.env.LATCHKEY_SECRET!);
 */
export class ServerSecret {
  readonly #ikm: Buffer;
  readonly #cache = new Map<string, Buffer>();

  private constructor(ikm: Buffer) {
    this.#ikm = ikm;
  }

  /**
   * Loads a secret from base64url (or standard base64) text.
   * @throws {KeyError} when the text is not base64 or decodes to fewer than 32 bytes.
   */
  static fromBase64url(text: string): ServerSecret {
    if (typeof text !== 'string' || !/^[A-Za-z0-9_\-+/]+={0,2}$/.test(text.trim())) {
      throw new KeyError('the server secret must be base64url text');
    }
    const bytes = Buffer.from(text.trim().replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
    return ServerSecret.fromBytes(bytes);
  }

  /**
   * Wraps raw secret bytes (copied).
   * @throws {KeyError} when fewer than 32 bytes are given.
   */
  static fromBytes(bytes: Uint8Array): ServerSecret {
    if (!(bytes instanceof Uint8Array) || bytes.length < MIN_BYTES) {
      throw new KeyError(`the server secret must hold at least ${MIN_BYTES} random bytes`);
    }
    return new ServerSecret(Buffer.from(bytes));
  }

  /** A fresh random secret, for tests and development only: it changes on every start. */
  static generate(): ServerSecret {
    return new ServerSecret(randomBytes(MIN_BYTES));
  }

  /** Generates new secret text suitable for `LATCHKEY_SECRET`. */
  static generateText(): string {
    return randomBytes(MIN_BYTES).toString('base64url');
  }

  /** The 32-byte sub-key for one purpose (HKDF-SHA256, salt `latchkey/v1`, info = purpose). */
  derive(purpose: SecretPurpose): Buffer {
    let key = this.#cache.get(purpose);
    if (key === undefined) {
      key = Buffer.from(hkdfSync('sha256', this.#ikm, SALT, Buffer.from(purpose, 'utf8'), 32));
      this.#cache.set(purpose, key);
    }
    return key;
  }

  toString(): string {
    return 'ServerSecret [redacted]';
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
