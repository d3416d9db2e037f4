import { inspect } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidInputError, InvalidOptionError, SecretBox, ServerSecret } from '../src/index.js';

const secret = ServerSecret.generate();
const box = new SecretBox(secret);
const test = suite('SecretBox');

test('seals and opens a value for its owner; each seal uses a fresh IV', () => {
  const a = box.seal('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', 'user-1');
  const b = box.seal('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', 'user-1');
  assert.match(a, /^sb1\.[A-Za-z0-9_-]+$/);
  assert.is.not(a, b);
  assert.not.ok(a.includes('JBSWY3DP'));
  assert.is(box.open(a, 'user-1'), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
  assert.is(box.open(box.seal('', 'u'), 'u'), '');
  assert.is(box.open(box.seal('ünïcode ✓', 'u'), 'u'), 'ünïcode ✓');
});

test('refuses a value with any byte altered', () => {
  const sealed = box.seal('secret value', 'user-1');
  const bytes = Buffer.from(sealed.slice(4), 'base64url');
  for (let i = 0; i < bytes.length; i++) {
    const copy = Buffer.from(bytes);
    copy[i] = (copy[i] as number) ^ 0x01;
    assert.is(box.open(`sb1.${copy.toString('base64url')}`, 'user-1'), null, `byte ${i}`);
  }
  assert.is(box.open(`sb1.${bytes.subarray(0, bytes.length - 1).toString('base64url')}`, 'user-1'), null);
});

test('refuses a value sealed for another owner (AAD) or under another server secret', () => {
  const sealed = box.seal('secret value', 'user-1');
  assert.is(box.open(sealed, 'user-2'), null);
  assert.is(box.open(sealed, 'user-1 '), null);
  assert.is(new SecretBox(ServerSecret.generate()).open(sealed, 'user-1'), null);
});

test('refuses malformed values and throws only for a bad owner or plaintext', () => {
  for (const bad of [
    '',
    'sb1.',
    'sb2.AAAA',
    'sb1.!!!',
    `sb1.${'A'.repeat(10)}`,
    'x'.repeat(20000),
    5,
    null,
  ]) {
    assert.is(box.open(bad as string, 'user-1'), null, String(bad));
  }
  assert.throws(
    () => box.open('sb1.AAAA', ''),
    (e: unknown) => e instanceof InvalidInputError,
  );
  assert.throws(
    () => box.seal('x', ''),
    (e: unknown) => e instanceof InvalidInputError,
  );
  assert.throws(
    () => box.seal('x'.repeat(5000), 'u'),
    (e: unknown) => e instanceof InvalidInputError,
  );
  assert.throws(
    () => new SecretBox('k' as unknown as ServerSecret),
    (e: unknown) => e instanceof InvalidOptionError,
  );
});

test('uses its own HKDF purpose and never prints its key', () => {
  assert.is(inspect(box), 'SecretBox [redacted]');
  assert.is(String(box), 'SecretBox [redacted]');
  assert.is.not(secret.derive('secret-box').toString('hex'), secret.derive('code-hmac').toString('hex'));
});

test.run();
