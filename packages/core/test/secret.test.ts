import { inspect } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyError, ServerSecret } from '../src/index.js';

const secret = suite('ServerSecret');

secret('derives a distinct, stable 32-byte sub-key per purpose', () => {
  const text = ServerSecret.generateText();
  const a = ServerSecret.fromBase64url(text);
  const b = ServerSecret.fromBase64url(text);
  assert.is(a.derive('code-hmac').length, 32);
  assert.ok(a.derive('code-hmac').equals(b.derive('code-hmac')));
  assert.not.ok(a.derive('code-hmac').equals(a.derive('identifier-hmac')));
  assert.not.ok(a.derive('code-hmac').equals(ServerSecret.generate().derive('code-hmac')));
});

secret('refuses fewer than 32 bytes and non-base64 text', () => {
  for (const bad of ['', 'short', Buffer.alloc(31).toString('base64url'), 'not base64!!', '{}']) {
    assert.throws(
      () => ServerSecret.fromBase64url(bad),
      (e: unknown) => e instanceof KeyError,
      bad,
    );
  }
});

secret('never prints its bytes', () => {
  const text = ServerSecret.generateText();
  const s = ServerSecret.fromBase64url(text);
  for (const shown of [String(s), JSON.stringify({ s }), inspect(s)]) {
    assert.not.ok(shown.includes(text));
    assert.ok(shown.includes('redacted'));
  }
});

secret.run();
