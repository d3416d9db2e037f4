import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signUp, startTestApp, type TestApp } from './helpers.js';

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
