import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lastCode, signUp, startTestApp, type TestApp } from './helpers.js';

// The cross-site rule of HTTP-API.md: every POST, PUT, PATCH and DELETE without Authorization passes
// Go's CrossOriginProtection check; a refusal is 403 csrf_rejected and changes nothing.

const csrf = suite<{ app: TestApp }>('cross-site requests');
csrf.before.each(async (ctx) => {
  ctx.app = await startTestApp({ env: { CSRF_TRUSTED_ORIGINS: 'https://partner.example' } });
});
csrf.after.each(async (ctx) => {
  await ctx.app.close();
});

const REFUSED: Array<Record<string, string>> = [
  { 'sec-fetch-site': 'cross-site' },
  { 'sec-fetch-site': 'same-site' },
  { 'sec-fetch-site': 'cross-site', origin: 'PLACEHOLDER' }, // Sec-Fetch-Site wins over a same-origin Origin
  { origin: 'https://evil.example' },
  { origin: 'null' },
  { origin: 'http://127.0.0.1:1' },
];

function headersFor(app: TestApp, headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, v === 'PLACEHOLDER' ? `http://${app.host}` : v]),
  );
}

csrf('a cross-site login is 403 csrf_rejected and sets no cookie (login CSRF)', async ({ app }) => {
  const client = app.client();
  await client.post('/auth/register', { email: 'v@example.com', password: 'correct horse' });
  for (const headers of REFUSED) {
    const reply = await client.post(
      '/auth/login',
      { email: 'v@example.com', password: 'correct horse' },
      {
        headers: headersFor(app, headers),
      },
    );
    assert.is(reply.status, 403, JSON.stringify(headers));
    assert.equal(reply.body, { error: 'csrf_rejected', message: reply.body.message });
    assert.equal(reply.setCookies, []);
  }
});

csrf(
  'a refused cookie request changes nothing: logout, logout-all, password, DELETE session',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const sessionId = (await client.get('/auth/me')).body.sessionId as string;
    const evil = { origin: 'https://evil.example' };
    assert.is((await client.post('/auth/logout', undefined, { headers: evil })).status, 403);
    assert.is((await client.post('/auth/logout-all', undefined, { headers: evil })).status, 403);
    assert.is(
      (
        await client.post(
          '/auth/password',
          { currentPassword: user.password, newPassword: 'hijacked pw' },
          { headers: evil },
        )
      ).status,
      403,
    );
    assert.is((await client.delete(`/auth/sessions/${sessionId}`, { headers: evil })).status, 403);
    assert.is((await client.get('/auth/me')).status, 200, 'the session is alive');
    assert.is(
      (await app.client().post('/auth/login', { email: user.email, password: user.password })).status,
      200,
      'the password is unchanged',
    );
  },
);

csrf(
  'a refused anonymous request changes nothing: register, reset request and confirm, verify confirm, logout-others',
  async ({ app }) => {
    const evil = { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' };
    const client = app.client();
    const user = await signUp(client);
    const other = app.client();
    await other.post('/auth/login', { email: user.email, password: user.password });

    const register = await client.post(
      '/auth/register',
      { email: 'new@example.com', password: 'correct horse' },
      { headers: evil },
    );
    assert.is(register.status, 403);
    const taken = await app
      .client()
      .post('/auth/register', { email: 'new@example.com', password: 'correct horse' });
    assert.is(taken.status, 201, 'no account was created');

    const request = await client.post(
      '/auth/password-reset/request',
      { email: user.email },
      { headers: evil },
    );
    assert.is(request.status, 403);
    assert.equal(app.outbox?.list(user.email), [], 'no code was sent');

    assert.is((await app.client().post('/auth/password-reset/request', { email: user.email })).status, 202);
    const code = lastCode(app, user.email, 'password-reset');
    const confirm = await client.post(
      '/auth/password-reset/confirm',
      { email: user.email, code, newPassword: 'hijacked pw' },
      { headers: evil },
    );
    assert.is(confirm.status, 403);

    await client.post('/auth/verify-email/request');
    const verifyCode = lastCode(app, user.email, 'verify-email');
    const verify = await client.post('/auth/verify-email/confirm', { code: verifyCode }, { headers: evil });
    assert.is(verify.status, 403);
    assert.is((await client.get('/auth/me')).body.emailVerified, false);

    assert.is((await client.post('/auth/logout-others', undefined, { headers: evil })).status, 403);
    assert.is((await other.get('/auth/me')).status, 200, 'the other session lives');

    // The codes the refused requests carried were not spent: they still work.
    assert.is((await client.post('/auth/verify-email/confirm', { code: verifyCode })).status, 200);
    const reset = await app
      .client()
      .post('/auth/password-reset/confirm', { email: user.email, code, newPassword: 'owner’s new pw' });
    assert.is(reset.status, 204);
  },
);

csrf('the check comes before the body is read and before any limiter counts', async ({ app }) => {
  const evil = { origin: 'https://evil.example' };
  const client = app.client();
  const huge = await client.request('POST', '/auth/login', {
    body: JSON.stringify({ pad: 'x'.repeat(64 * 1024) }),
    headers: { 'content-type': 'application/json', ...evil },
  });
  assert.is(huge.status, 403, 'not 413');
  const xml = await client.request('POST', '/auth/login', {
    body: '<a/>',
    headers: { 'content-type': 'application/xml', ...evil },
  });
  assert.is(xml.status, 403, 'not 415');
  const user = await signUp(app.client());
  // Far more cross-site guesses than LOGIN_MAX_FAILURES: none of them is counted.
  for (let i = 0; i < 8; i++) {
    const reply = await client.post(
      '/auth/login',
      { email: user.email, password: 'guess guess' },
      { headers: evil },
    );
    assert.is(reply.status, 403);
  }
  const login = await client.post('/auth/login', { email: user.email, password: user.password });
  assert.is(login.status, 200, 'the same IP logs in: no failure was recorded');
});

csrf('same-origin browsers, trusted origins and clients without either header pass', async ({ app }) => {
  const client = app.client();
  const passing: Array<Record<string, string>> = [
    {},
    { 'sec-fetch-site': 'same-origin' },
    { 'sec-fetch-site': 'none' },
    { origin: `http://${app.host}` },
    { origin: `https://${app.host}` }, // the scheme is ignored, as Go does (TLS may end at a proxy)
    { origin: 'https://partner.example' },
    { 'sec-fetch-site': 'cross-site', origin: 'https://partner.example' },
  ];
  let n = 0;
  for (const headers of passing) {
    const reply = await client.post(
      '/auth/register',
      { email: `p${n++}@example.com`, password: 'correct horse' },
      {
        headers,
      },
    );
    assert.is(reply.status, 201, JSON.stringify(headers));
  }
});

csrf(
  'requests with an Authorization header are exempt (browsers cannot send one cross-site)',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const reply = await app.client().post('/auth/logout-others', undefined, {
      bearer: user.accessToken,
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    assert.is(reply.status, 204);
  },
);

csrf('safe methods are not checked', async ({ app }) => {
  const client = app.client();
  await signUp(client);
  const reply = await client.get('/auth/me', {
    headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
  });
  assert.is(reply.status, 200);
});

csrf.run();

const publicOrigin = suite('cross-site requests with PUBLIC_ORIGIN');

publicOrigin('with PUBLIC_ORIGIN, Origin must name its host and port, not the Host header', async () => {
  const app = await startTestApp({ env: { PUBLIC_ORIGIN: 'https://auth.example.com' } });
  try {
    const client = app.client();
    const own = await client.post(
      '/auth/register',
      { email: 'a@example.com', password: 'correct horse' },
      {
        headers: { origin: 'https://auth.example.com' },
      },
    );
    assert.is(own.status, 201);
    const hostOnly = await client.post(
      '/auth/register',
      { email: 'b@example.com', password: 'correct horse' },
      {
        headers: { origin: `http://${app.host}` },
      },
    );
    assert.is(hostOnly.status, 403);
  } finally {
    await app.close();
  }
});

publicOrigin.run();
