import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits from the CSPRNG, base64url (43 characters). */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** A public, unguessable id (128 bits, base64url, 22 characters). */
export function randomId(): string {
  return randomBytes(16).toString('base64url');
}

type OneShotHash = (algorithm: string, data: string, encoding: 'base64url') => string;
/** `crypto.hash` (Node ≥ 20.12): one call, no Hash object; on the request path of every store. */
const oneShot = (nodeCrypto as { hash?: OneShotHash }).hash;

/** SHA-256 of `input` (UTF-8), base64url (43 characters). */
export function sha256(input: string): string {
  return oneShot === undefined
    ? createHash('sha256').update(input, 'utf8').digest('base64url')
    : oneShot('sha256', input, 'base64url');
}

/** HMAC-SHA256 of `input` under `key`, base64url (43 characters). */
export function hmac(key: Buffer, input: string): string {
  return createHmac('sha256', key).update(input, 'utf8').digest('base64url');
}

/** Constant-time equality of two strings (false when their lengths differ). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
