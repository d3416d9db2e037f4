import { performance } from 'node:perf_hooks';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { serializeError } from '../src/logger.js';
import { PasswordHasher } from '../src/passwords.js';
import { eventually, lastCode, replaceScript, signUp, startTestApp } from './helpers.js';

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

    // A request's line is written when its connection is done with it, which may be just after the
    // client has the answer: wait for all of them.
    await eventually(
      async () => app.logs.filter((line) => line.includes('"msg":"request"')).length === app.received(),
      5000,
      'every request line',
    );
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

logs(
  'at trace level, across every route and every kind of refusal, no secret reaches a log line',
  async () => {
    const app = await startTestApp({ env: { LOG_LEVEL: 'trace', LOGIN_MAX_FAILURES: '2' } });
    try {
      const secrets: string[] = [];
      const codes: string[] = [];
      const keep = <T extends string>(value: T): T => {
        secrets.push(value);
        return value;
      };
      const json = { 'content-type': 'application/json' };
      const browser = app.client();
      const password = keep('first secret password');
      const email = 'everything@example.com';
      await browser.post('/auth/register', { email, password });
      await browser.post('/auth/register', { email, password: keep('second secret password') }); // 409
      await browser.post('/auth/register', { email: 'short@example.com', password: keep('shortpw') }); // 400
      await browser.request('POST', '/auth/register', {
        body: JSON.stringify({ email, password: keep('oversized-body-secret'), pad: 'x'.repeat(20_000) }),
        headers: json,
      }); // 413
      await browser.request('POST', '/auth/register', {
        body: keep('text-body-secret'),
        headers: { 'content-type': 'text/plain' },
      }); // 415
      await browser.request('POST', '/auth/login', {
        body: `{"email":"${email}","password":"${keep('unterminated-secret')}`,
        headers: json,
      }); // 400
      await browser.post(
        '/auth/login',
        { email, password: keep('cross-site-secret') },
        { headers: { origin: 'https://evil.example' } },
      ); // 403
      const login = await browser.post('/auth/login', { email, password });
      keep(login.body.accessToken);
      keep(login.body.refreshToken);
      keep(browser.jar.get('sid') as string);
      const phone = app.client();
      const phoneLogin = await phone.post('/auth/login', { email, password });
      keep(phoneLogin.body.accessToken);
      keep(phoneLogin.body.refreshToken);
      keep(phone.jar.get('sid') as string);
      await browser.get('/auth/me');
      await browser.get('/auth/me', { bearer: login.body.accessToken });
      await browser.get('/auth/me', { bearer: keep('garbage-bearer-secret') });
      await browser.get('/auth/me', { headers: { cookie: `sid=${keep('v1.garbage-cookie-secret')}` } });
      const rotated = await app
        .client()
        .post('/auth/refresh', { refreshToken: phoneLogin.body.refreshToken });
      keep(rotated.body.accessToken);
      keep(rotated.body.refreshToken);
      await app.client().post('/auth/refresh', { refreshToken: phoneLogin.body.refreshToken }); // reuse
      await app.client().post('/auth/refresh', { refreshToken: keep('r1.invalid-refresh-secret') });
      const sessions = await browser.get('/auth/sessions');
      await browser.delete(`/auth/sessions/${sessions.body.sessions[0].id}`, {
        bearer: login.body.accessToken,
      });
      const again = await browser.post('/auth/login', { email, password });
      keep(again.body.accessToken);
      keep(again.body.refreshToken);
      keep(browser.jar.get('sid') as string);
      await browser.post('/auth/logout-others');
      await browser.delete('/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA'); // 404
      await browser.post('/auth/verify-email/request');
      codes.push(lastCode(app, email, 'verify-email'));
      await browser.post('/auth/verify-email/confirm', { code: keep('999999x') });
      await browser.post('/auth/verify-email/confirm', { code: codes[0] });
      const newPassword = keep('changed secret password');
      await browser.post('/auth/password', { currentPassword: keep('wrong current secret'), newPassword }); // 403
      await browser.post('/auth/password', { currentPassword: password, newPassword });
      for (let i = 0; i < 3; i++)
        await app
          .client({ ip: '10.9.9.9' })
          .post('/auth/login', { email, password: keep(`guess-${i}-secret`) }); // → 429
      await app.client().post('/auth/password-reset/request', { email });
      await app.client().post('/auth/password-reset/request', { email: 'nobody@example.com' });
      codes.push(lastCode(app, email, 'password-reset'));
      await app.client().post('/auth/password-reset/confirm', {
        email,
        code: keep('123x56'),
        newPassword: keep('reset-attempt-secret'),
      });
      await browser.post('/auth/password-reset/confirm', {
        email,
        code: codes[1],
        newPassword: keep('after-reset secret'),
      });
      await browser.get(`/dev/outbox?to=${encodeURIComponent(email)}`);
      // A Redis failure, with the arguments ioredis attaches to its errors: answered 503, logged without them.
      const fresh = app.client();
      await fresh.post('/auth/register', { email: 'outage@example.com', password });
      const restore = replaceScript(app.redis, 'refresh-issue', () =>
        Promise.reject(
          Object.assign(new Error('Connection is closed.'), {
            command: { name: 'evalsha', args: [keep('redis-argument-secret')] },
          }),
        ),
      );
      try {
        assert.is((await fresh.post('/auth/login', { email: 'outage@example.com', password })).status, 503);
      } finally {
        restore();
      }
      await browser.post('/auth/logout');
      await phone.post('/auth/logout-all', undefined, { bearer: rotated.body.accessToken });

      // A request's line is written when its connection is done with it, which may be just after the
      // client has the answer: wait for all of them.
      await eventually(
        async () => app.logs.filter((line) => line.includes('"msg":"request"')).length === app.received(),
        5000,
        'every request line',
      );
      const text = app.logs.join('\n');
      for (const secret of secrets)
        assert.not.ok(text.includes(secret), `a log line holds ${secret.slice(0, 16)}…`);
      for (const code of codes)
        assert.not.match(text, new RegExp(`(?<!\\d)${code}(?!\\d)`), 'a code is logged');
      assert.not.match(text, /cookie|authorization|set-cookie/i, 'no header is logged');
      assert.not.ok(text.includes(email), 'no address');
      const entries = app.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.ok(app.received() >= 35, 'the flow made its requests');
      assert.ok(
        entries.some((e) => e['msg'] === 'security event'),
        'security events were logged',
      );
      assert.ok(
        entries.some((e) => e['msg'] === 'Redis unavailable: answering 503 until it is back'),
        'the outage was logged',
      );
      const statuses = new Set(entries.filter((e) => e['msg'] === 'request').map((e) => e['status']));
      for (const status of [200, 201, 202, 204, 400, 401, 403, 404, 409, 413, 415, 429, 503]) {
        assert.ok(statuses.has(status), `a ${status} was logged`);
      }
    } finally {
      await app.close();
    }
  },
);

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
  // About 30 ms a check: scheduler noise on a loaded machine (a few ms) cannot swing the ratio, while a
  // check that skipped the dummy hash would take microseconds (ratio ≈ 0).
  const hasher = new PasswordHasher({ memoryCost: 32768, timeCost: 3 });
  const stored = await hasher.hash('correct horse');
  await hasher.warmUp();
  // Interleaved, and compared by median, so that load from elsewhere on the machine hits both alike.
  const real: number[] = [];
  const none: number[] = [];
  for (let i = 0; i < 11; i++) {
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
  assert.ok(ratio > 0.5 && ratio < 2, `no-user / real = ${ratio.toFixed(2)}`);
  assert.is(await hasher.verify(undefined, 'correct horse'), false);
  assert.is(await hasher.verify(stored, 'correct horse'), true);
  assert.is(await hasher.verify('not a hash', 'correct horse'), false);
});

timing('production defaults are argon2id with 19 MiB and 2 passes', async () => {
  const hash = await new PasswordHasher().hash('correct horse');
  assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
});

timing.run();
