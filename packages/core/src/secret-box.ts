import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { InvalidInputError } from './errors.js';
import { requireSecret } from './internal/options.js';
import type { ServerSecret } from './secret.js';

const VERSION = 'sb1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A sealed value's plaintext is at most this many bytes (TOTP secrets are 32 characters). */
const MAX_PLAINTEXT = 4096;
const SEALED = /^sb1\.([A-Za-z0-9_-]+)$/;

/**
 * Seals small secrets the application stores itself (a user's TOTP secret in the user record):
 * AES-256-GCM under a key derived from the {@link ServerSecret} with HKDF (purpose `secret-box`), a
 * random 96-bit IV per value, and the value bound to its owner as additional authenticated data — a
 * sealed value copied to another user's record does not open there. No Redis.
 *
 * @example
 * const box = new SecretBox(secret);
 * user.totpSecret = box.seal(Totp.generateSecret(), user.id); // 'sb1.…'
 * const totpSecret = box.open(user.totpSecret, user.id);       // null if tampered or misplaced
 */
export class SecretBox {
  readonly #key: Buffer;

  /**
   * @throws {InvalidOptionError} when `secret` is not a ServerSecret.
   */
  constructor(secret: ServerSecret) {
    this.#key = requireSecret(secret).derive('secret-box');
  }

  /**
   * Encrypts `plaintext` for the owner `boundTo` (use the user id).
   * @returns `sb1.<base64url(iv ‖ ciphertext ‖ tag)>`.
   * @throws {InvalidInputError} when either argument is not a string, `boundTo` is empty or the
   *   plaintext is longer than 4096 bytes.
   */
  seal(plaintext: string, boundTo: string): string {
    if (typeof plaintext !== 'string' || Buffer.byteLength(plaintext, 'utf8') > MAX_PLAINTEXT) {
      throw new InvalidInputError(`plaintext must be a string of at most ${MAX_PLAINTEXT} bytes`);
    }
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(boundTo));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
  }

  /**
   * Decrypts a value sealed for `boundTo`.
   * @returns the plaintext, or `null` when the value is malformed, was altered, was sealed for
   *   another owner, or under another server secret.
   * @throws {InvalidInputError} when `boundTo` is not a non-empty string.
   */
  open(sealed: string, boundTo: string): string | null {
    const data = aad(boundTo);
    if (typeof sealed !== 'string' || sealed.length > 2 * MAX_PLAINTEXT) return null;
    const match = SEALED.exec(sealed);
    if (match === null) return null;
    const bytes = Buffer.from(match[1] as string, 'base64url');
    if (bytes.length < IV_BYTES + TAG_BYTES) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, IV_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(data);
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      const body = bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      return null;
    }
  }

  toString(): string {
    return 'SecretBox [redacted]';
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function aad(boundTo: unknown): Buffer {
  if (typeof boundTo !== 'string' || boundTo.length === 0 || boundTo.length > 1024) {
    throw new InvalidInputError('boundTo must be a string of 1 to 1024 characters');
  }
  return Buffer.from(`latchkey/secret-box/v1\u0000${boundTo}`, 'utf8');
}
