import { KeyObject, verify } from 'node:crypto';
import { type PublicKey, PublicKeyToCryptoKey } from 'paseto/v4/public';

const HEADER = new TextEncoder().encode('v4.public.');
const SIGNATURE_BYTES = 64;
/** Strict like paseto's: a payload that is not UTF-8 is malformed, never decoded with replacements. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });
const keyObjects = new WeakMap<PublicKey, KeyObject>();

/** The node:crypto key of a paseto key, prepared once per key (keys live as long as their ring). */
function keyObjectOf(key: PublicKey): KeyObject {
  let found = keyObjects.get(key);
  if (found === undefined) {
    found = KeyObject.from(PublicKeyToCryptoKey(key));
    keyObjects.set(key, found);
  }
  return found;
}

/**
 * @internal PASETO's pre-authentication encoding (PAE): the number of pieces, then each piece's
 * length and bytes, lengths as unsigned 64-bit little-endian integers (top bit clear).
 */
export function pae(pieces: readonly Uint8Array[]): Buffer {
  let size = 8;
  for (const p of pieces) size += 8 + p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  const le64 = (n: number): void => {
    out.writeUInt32LE(n >>> 0, at);
    out.writeUInt32LE(Math.floor(n / 2 ** 32) & 0x7fffffff, at + 4);
    at += 8;
  };
  le64(pieces.length);
  for (const p of pieces) {
    le64(p.length);
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Whether `text` is the one base64url encoding of `bytes` that paseto accepts: no padding and unused
 * trailing bits zero, so each token has exactly one spelling. `bytes` is node's decoding of `text`
 * (which is lenient); re-encoding it gives back `text` only when `text` was canonical.
 */
function isCanonicalBase64url(text: string, bytes: Buffer): boolean {
  return bytes.toString('base64url') === text;
}

/**
 * @internal Opens a v4.public token in one pass, as the PASETO v4.public specification verifies it:
 * the payload decoded once into message ‖ 64-byte signature, the Ed25519 signature checked over
 * PAE(`v4.public.`, message, footer, implicit assertion) by node:crypto's synchronous verify on a key
 * object prepared once per key (Web Crypto's `subtle.verify`, which paseto's own verify uses, costs a
 * thread-pool hop per token), then the message read as UTF-8 JSON. The checks and their outcomes are
 * paseto's `Verify` (non-canonical base64url, a payload no longer than a signature, a non-object
 * message: `malformed`); paseto itself still signs. `body` and `footerText` are the token's payload
 * and footer segments, already matched against the base64url alphabet; `footer` is node's decoding
 * of `footerText`.
 *
 * @returns the claims object (unchecked: see `registeredClaimsFailure`), or why the token fails.
 */
export function openV4Public(
  key: PublicKey,
  body: string,
  footerText: string,
  footer: Buffer,
  implicitAssertion: Uint8Array,
): Record<string, unknown> | 'malformed' | 'invalid_signature' {
  const payload = Buffer.from(body, 'base64url');
  if (!isCanonicalBase64url(body, payload) || !isCanonicalBase64url(footerText, footer)) {
    return 'malformed';
  }
  if (payload.length <= SIGNATURE_BYTES) return 'malformed';
  const split = payload.length - SIGNATURE_BYTES;
  const message = payload.subarray(0, split);
  const signed = pae([HEADER, message, footer, implicitAssertion]);
  if (!verify(null, signed, keyObjectOf(key), payload.subarray(split))) return 'invalid_signature';
  let claims: unknown;
  try {
    claims = JSON.parse(UTF8.decode(message));
  } catch {
    return 'malformed';
  }
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) return 'malformed';
  return claims as Record<string, unknown>;
}
