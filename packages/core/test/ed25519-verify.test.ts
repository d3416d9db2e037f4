import { PublicProtocol } from 'paseto';
import { GenerateKeyPairFactory, SignFactory, VerifyFactory } from 'paseto/v4/public';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { NodeVerifyFactory, pae } from '../src/internal/ed25519-verify.js';

const paeSuite = suite('pae');

paeSuite('matches the PASETO specification examples', () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  assert.is(hex(pae([])), '0000000000000000');
  assert.is(hex(pae([new Uint8Array(0)])), '01000000000000000000000000000000');
  assert.is(hex(pae([new TextEncoder().encode('test')])), `0100000000000000040000000000000074657374`);
});

paeSuite.run();

const verifySuite = suite('NodeVerifyFactory');

const reference = new PublicProtocol(GenerateKeyPairFactory, SignFactory, VerifyFactory);
const candidate = new PublicProtocol(NodeVerifyFactory);

async function outcome(protocol: typeof candidate, key: unknown, token: string, implicit: Uint8Array) {
  return protocol
    .Verify(key as Parameters<typeof candidate.Verify>[0], token, { implicitAssertion: implicit })
    .then(
      (r) => JSON.stringify(r.claims),
      (e: unknown) => `error:${(e as Error).name}`,
    );
}

verifySuite('agrees with paseto Web Crypto verify on valid, tampered and foreign tokens', async () => {
  const { publicKey, secretKey } = await reference.GenerateKeyPair();
  const other = await reference.GenerateKeyPair();
  const implicit = new TextEncoder().encode('latchkey/access-token/v1');
  const token = await reference.Sign(
    secretKey,
    { sub: 'u1', sid: 's1', jti: 'j1' },
    { expiresIn: 900, footer: new TextEncoder().encode('{"kid":"k"}'), implicitAssertion: implicit },
  );
  const [v, p, body, footer] = token.split('.') as [string, string, string, string];
  const bytes = Buffer.from(body, 'base64url');
  const flip = (i: number) => {
    const b = Buffer.from(bytes);
    b[i] = (b[i] as number) ^ 1;
    return `${v}.${p}.${b.toString('base64url')}.${footer}`;
  };
  const cases: Array<[string, unknown, Uint8Array]> = [
    [token, publicKey, implicit],
    [token, other.publicKey, implicit],
    [token, publicKey, new TextEncoder().encode('another assertion')],
    [flip(0), publicKey, implicit],
    [flip(bytes.length - 1), publicKey, implicit],
    [`${v}.${p}.${body}.${Buffer.from('{"kid":"x"}').toString('base64url')}`, publicKey, implicit],
    [`${v}.${p}.${body.slice(0, 40)}.${footer}`, publicKey, implicit],
  ];
  const results: string[] = [];
  for (const [t, key, i] of cases) {
    const expected = await outcome(reference, key, t, i);
    assert.is(await outcome(candidate, key, t, i), expected, t.slice(-20));
    results.push(expected);
  }
  assert.not.match(results[0] as string, /^error/, 'the genuine token verifies');
  assert.ok(
    results.slice(1).every((r) => r.startsWith('error')),
    'every altered case fails',
  );
});

verifySuite.run();
