import { performance } from 'node:perf_hooks';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { serializeError } from '../src/logger.js';
import { PasswordHasher } from '../src/passwords.js';
import { lastCode, signUp, startTestApp } from './helpers.js';

// Logs are structured and never hold a secret; login answers take the same time for unknown users.

const logs = suite('request logs');

logs('one line per request with method, path, status and duration — and no secret anywhere', async () => {
  const app = await startTestApp();
  try {
    const client = app.client();
    const user = await signUp(client, 'logged@example.com', 'very secret password');
    const cookie = client.jar.get('sid') as string;
    const refreshed = await client.post('/auth/refresh', { refreshToken: user.refreshToken });
    await client.post('/auth/verify-email/request');
    const code = lastCode(app, user.email, 'verify-email');
    await client.post('/auth/verify-email/confirm', { code });
    await client.post('/auth/password-reset/request', { email: user.email });
    const resetCode = lastCode(app, user.email, 'password-reset');
    await client.post('/auth/password-reset/confirm', {
      email: user.email,
      code: resetCode,
      newPassword: 'another secret pw',
    });
    await client.request('POST', '/auth/login', {
      body: '{"email":"logged@example.com","password":"leaked-through-parse-error',
      headers: { 'content-type': 'application/json' },
    });
    await client.get(`/dev/outbox?to=${encodeURIComponent(user.email)}`);
    await client.get('/auth/me', { bearer: 'Bearer-garbage-token-value' });

    const text = app.logs.join('\n');
    const secrets = [
      user.password,
      'another secret pw',
      'leaked-through-parse-error',
      user.accessToken,
      user.refreshToken,
      refreshed.body.refreshToken,
      refreshed.body.accessToken,
      cookie,
      `"${code}"`,
      `"${resetCode}"`,
      'Bearer-garbage-token-value',
    ];
    for (const secret of secrets)
      assert.not.ok(text.includes(secret), `a log line holds ${secret.slice(0, 12)}…`);
    assert.not.ok(/cookie|authorization/i.test(text), 'no header is logged');
    assert.not.ok(text.includes(user.email), 'no address (query strings are not logged)');

    const requests = app.logs.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request');
    assert.ok(requests.length >= 10);
    for (const entry of requests) {
      assert.equal(Object.keys(entry).sort(), [
        'durationMs',
        'level',
        'method',
        'msg',
        'path',
        'status',
        'time',
      ]);
    }
    const parseError = requests.find((entry) => entry.status === 400 && entry.path === '/auth/login');
    assert.ok(parseError, 'the malformed body was answered 400 and logged as a request line only');
  } finally {
    await app.close();
  }
});

logs('the error serializer keeps type, code, status and message, never the raw body or arguments', () => {
  const error = Object.assign(new SyntaxError('Unexpected end of JSON input'), {
    status: 400,
    body: '{"password":"hunter22"}',
    command: { name: 'evalsha', args: ['secret'] },
  });
  const out = serializeError(error);
  assert.is(out['type'], 'SyntaxError');
  assert.is(out['status'], 400);
  assert.not.ok('body' in out);
  assert.not.ok(JSON.stringify(out).includes('hunter22'));
  assert.not.ok(JSON.stringify(out).includes('secret'));
});

logs.run();

const timing = suite('password checks');

timing('a check against no user costs about as much as a real one (a dummy hash is verified)', async () => {
  const hasher = new PasswordHasher({ memoryCost: 4096, timeCost: 2 });
  const stored = await hasher.hash('correct horse');
  await hasher.warmUp();
  // Interleaved, and compared by median, so that load from elsewhere on the machine hits both alike.
  const real: number[] = [];
  const none: number[] = [];
  for (let i = 0; i < 9; i++) {
    let started = performance.now();
    await hasher.verify(stored, 'wrong password');
    real.push(performance.now() - started);
    started = performance.now();
    await hasher.verify(undefined, 'wrong password');
    none.push(performance.now() - started);
  }
  const median = (values: number[]): number =>
    values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  const ratio = median(none) / median(real);
  assert.ok(ratio > 0.4 && ratio < 2.5, `no-user / real = ${ratio.toFixed(2)}`);
  assert.is(await hasher.verify(undefined, 'correct horse'), false);
  assert.is(await hasher.verify(stored, 'correct horse'), true);
  assert.is(await hasher.verify('not a hash', 'correct horse'), false);
});

timing('production defaults are argon2id with 19 MiB and 2 passes', async () => {
  const hash = await new PasswordHasher().hash('correct horse');
  assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
});

timing.run();
