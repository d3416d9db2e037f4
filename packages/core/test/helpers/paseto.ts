import { createPrivateKey, sign } from 'node:crypto';

/**
 * Signs `payload` with the Ed25519 key of a `k4.secret` PASERK, straight from the PASETO v4.public
 * specification (node:crypto, not the paseto package): for tokens paseto's Sign refuses to produce
 * (claims of the wrong type, unparsable dates, footers of another shape), and as an interoperability
 * check of the verifier. Text is written as UTF-8, bytes as they are. The footer is always appended.
 */
export function signV4Public(
  paserk: string,
  payload: string | Uint8Array,
  footer: string | Uint8Array,
  implicitAssertion: string | Uint8Array,
): string {
  const material = Buffer.from(paserk.slice('k4.secret.'.length), 'base64url');
  const key = createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'OKP',
      crv: 'Ed25519',
      d: material.subarray(0, 32).toString('base64url'),
      x: material.subarray(32).toString('base64url'),
    },
  });
  const header = Buffer.from('v4.public.');
  const message = Buffer.from(payload);
  const footerBytes = Buffer.from(footer);
  const signature = sign(null, pae([header, message, footerBytes, Buffer.from(implicitAssertion)]), key);
  return `v4.public.${Buffer.concat([message, signature]).toString('base64url')}.${footerBytes.toString('base64url')}`;
}

/** PASETO's pre-authentication encoding. */
function pae(pieces: Buffer[]): Buffer {
  const le64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  return Buffer.concat([le64(pieces.length), ...pieces.flatMap((p) => [le64(p.length), p])]);
}

/** An instant as a PASETO date claim, in whole seconds as paseto writes them. */
export function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
