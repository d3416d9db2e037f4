import * as assert from 'uvu/assert';
import { replaceScript, routeSuite, signUp } from './helpers.js';

// Every route of the login / token / logout part of HTTP-API.md and each of its error rows, on the
// embedded fake Redis.

// --- GET /healthz ---------------------------------------------------------------------------------

const health = routeSuite('GET /healthz');

health('answers 200 {"status":"ok"} while Redis answers', async ({ app }) => {
  const reply = await app.client().get('/healthz');
  assert.is(reply.status, 200);
  assert.equal(reply.body, { status: 'ok' });
});

health.run();

// --- POST /auth/register --------------------------------------------------------------------------

const register = routeSuite('POST /auth/register', { REGISTER_MAX_PER_IP: '3' });

register('creates the account: 201 {"userId"} and no session', async ({ app }) => {
  const client = app.client();
  const reply = await client.post('/auth/register', { email: 'new@example.com', password: 'correct horse' });
  assert.is(reply.status, 201);
  assert.equal(Object.keys(reply.body), ['userId']);
  assert.type(reply.body.userId, 'string');
  assert.equal(reply.setCookies, [], 'no session cookie');
  assert.is((await client.get('/auth/me')).status, 401);
});

register('a taken email is 409 email_taken, however it is typed', async ({ app }) => {
  const client = app.client();
  await client.post('/auth/register', { email: 'taken@example.com', password: 'correct horse' });
  const again = await client.post('/auth/register', {
    email: ' Taken@EXAMPLE.com',
    password: 'other password',
  });
  assert.is(again.status, 409);
  assert.equal(again.body, { error: 'email_taken', message: again.body.message });
});

register('20 concurrent registrations of one email: exactly one 201, the others 409', async ({ app }) => {
  const replies = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      app.client().post('/auth/register', { email: 'race@example.com', password: `password number ${i}` }),
    ),
  );
  const statuses = replies.map((r) => r.status).sort();
  assert.is(statuses.filter((s) => s === 201).length, 1);
  assert.is(statuses.filter((s) => s === 409).length, 19);
  const winner = replies.findIndex((r) => r.status === 201);
  const login = await app.client().post('/auth/login', {
    email: 'race@example.com',
    password: `password number ${winner}`,
  });
  assert.is(login.status, 200, 'the winner’s password is the one stored');
});

register(
  'is throttled per IP: 429 too_many_attempts with Retry-After past REGISTER_MAX_PER_IP',
  async ({ app }) => {
    const client = app.client();
    for (let i = 0; i < 3; i++) {
      const reply = await client.post('/auth/register', {
        email: `r${i}@example.com`,
        password: 'correct horse',
      });
      assert.is(reply.status, 201);
    }
    const refused = await client.post('/auth/register', {
      email: 'r9@example.com',
      password: 'correct horse',
    });
    assert.is(refused.status, 429);
    assert.is(refused.body.error, 'too_many_attempts');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const elsewhere = await app
      .client()
      .post('/auth/register', { email: 'r9@example.com', password: 'correct horse' });
    assert.is(elsewhere.status, 201, 'another IP is not affected');
  },
);

register('an invalid request counts against nothing and creates nothing', async ({ app }) => {
  const client = app.client();
  for (let i = 0; i < 5; i++) {
    assert.is(
      (await client.post('/auth/register', { email: 'x@example.com', password: 'short' })).status,
      400,
    );
  }
  assert.is(
    (await client.post('/auth/register', { email: 'x@example.com', password: 'long enough' })).status,
    201,
  );
});

register.run();

// --- POST /auth/login -----------------------------------------------------------------------------

const login = routeSuite('POST /auth/login', { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_FAILURES_PER_IP: '6' });

login(
  'answers 200 with accessToken, refreshToken, tokenType Bearer, expiresIn, and the session cookie',
  async ({ app }) => {
    const client = app.client();
    await client.post('/auth/register', { email: 'l@example.com', password: 'correct horse' });
    const reply = await client.post('/auth/login', { email: 'l@example.com', password: 'correct horse' });
    assert.is(reply.status, 200);
    assert.equal(Object.keys(reply.body).sort(), ['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
    assert.match(reply.body.accessToken, /^v4\.public\./);
    assert.match(reply.body.refreshToken, /^r1\./);
    assert.is(reply.body.tokenType, 'Bearer');
    assert.is(reply.body.expiresIn, 900);
    assert.is(reply.headers.get('cache-control'), 'no-store');
    assert.ok(client.jar.has('sid'));
    const viaBearer = await client.get('/auth/me', { bearer: reply.body.accessToken, cookies: false });
    assert.is(viaBearer.status, 200);
  },
);

login('unknown email and wrong password are the same 401 invalid_credentials', async ({ app }) => {
  const client = app.client();
  await client.post('/auth/register', { email: 'known@example.com', password: 'correct horse' });
  const wrong = await client.post('/auth/login', { email: 'known@example.com', password: 'wrong password' });
  const unknown = await app
    .client()
    .post('/auth/login', { email: 'unknown@example.com', password: 'wrong password' });
  assert.is(wrong.status, 401);
  assert.is(unknown.status, 401);
  assert.equal(wrong.body, unknown.body);
  assert.is(wrong.body.error, 'invalid_credentials');
  assert.equal(wrong.setCookies, []);
});

login(
  'failures per account+IP past LOGIN_MAX_FAILURES are 429 with Retry-After, even with the right password',
  async ({ app }) => {
    const client = app.client();
    await client.post('/auth/register', { email: 'locked@example.com', password: 'correct horse' });
    for (let i = 0; i < 3; i++) {
      assert.is(
        (await client.post('/auth/login', { email: 'locked@example.com', password: 'nope nope' })).status,
        401,
      );
    }
    const refused = await client.post('/auth/login', {
      email: 'locked@example.com',
      password: 'correct horse',
    });
    assert.is(refused.status, 429);
    assert.is(refused.body.error, 'too_many_attempts');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const otherIp = await app
      .client()
      .post('/auth/login', { email: 'locked@example.com', password: 'correct horse' });
    assert.is(otherIp.status, 200, 'the account+IP policy leaves other addresses alone');
  },
);

login('an invalid login request is 400 and counts no failure', async ({ app }) => {
  const client = app.client();
  const user = await signUp(app.client());
  for (const body of [
    { email: user.email },
    { email: user.email, password: '' },
    { email: user.email, password: ['x'] },
    { email: 'not an email', password: 'nope nope' },
    { email: user.email, password: 'p'.repeat(1025) },
  ]) {
    const reply = await client.post('/auth/login', body);
    assert.is(reply.status, 400);
    assert.is(reply.body.error, 'invalid_request');
  }
  assert.is((await client.post('/auth/login', { email: user.email, password: user.password })).status, 200);
});

login('failures per IP across accounts past LOGIN_MAX_FAILURES_PER_IP are 429', async ({ app }) => {
  const client = app.client();
  for (let i = 0; i < 6; i++) {
    assert.is(
      (await client.post('/auth/login', { email: `u${i}@example.com`, password: 'nope nope' })).status,
      401,
    );
  }
  const refused = await client.post('/auth/login', { email: 'u99@example.com', password: 'nope nope' });
  assert.is(refused.status, 429);
});

login(
  'unknown emails are throttled exactly like known ones (no enumeration through 429)',
  async ({ app }) => {
    const client = app.client();
    for (let i = 0; i < 3; i++)
      await client.post('/auth/login', { email: 'ghost@example.com', password: 'nope nope' });
    assert.is(
      (await client.post('/auth/login', { email: 'ghost@example.com', password: 'nope nope' })).status,
      429,
    );
  },
);

login('a session cookie already present is replaced and its session revoked', async ({ app }) => {
  const client = app.client();
  const first = await signUp(client);
  const oldCookie = client.jar.get('sid') as string;
  const again = await client.post('/auth/login', { email: first.email, password: first.password });
  assert.is(again.status, 200);
  assert.is.not(client.jar.get('sid'), oldCookie);
  const stale = await client.get('/auth/me', { headers: { cookie: `sid=${oldCookie}` } });
  assert.is(stale.status, 401, 'the old session is gone');
  assert.is((await client.get('/auth/me', { bearer: first.accessToken, cookies: false })).status, 401);
  const sessions = await client.get('/auth/sessions');
  assert.is(sessions.body.sessions.length, 1);
});

login(
  'a login that fails after its session was created (Redis lost, or revoked meanwhile) sets no live cookie',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const old = client.jar.get('sid') as string;
    for (const [fault, status] of [
      [() => Promise.reject(new Error('Connection is closed.')), 503],
      [() => Promise.resolve(0), 401], // the session was revoked between its creation and the token
    ] as const) {
      const restore = replaceScript(app.redis, 'refresh-issue', fault);
      let reply: Awaited<ReturnType<typeof client.post>>;
      try {
        reply = await client.post('/auth/login', { email: user.email, password: user.password });
      } finally {
        restore();
      }
      assert.is(reply.status, status);
      // The one Set-Cookie clears: the cookie of the session the login made never reaches the client.
      assert.is(reply.setCookies.length, 1);
      assert.match(reply.setCookies[0] as string, /^sid=; .*Max-Age=0/);
      assert.not.ok(client.jar.has('sid'));
    }
    assert.is((await client.get('/auth/me', { headers: { cookie: `sid=${old}` } })).status, 401);
  },
);

login.run();

// --- GET /auth/me ---------------------------------------------------------------------------------

const me = routeSuite('GET /auth/me');

me(
  'answers userId, email, emailVerified, sessionId, via, mfa and amr ["pwd"] for the cookie and a bearer token',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client, 'me@example.com');
    const byCookie = await client.get('/auth/me');
    assert.is(byCookie.status, 200);
    assert.equal(byCookie.body, {
      userId: user.userId,
      email: 'me@example.com',
      emailVerified: false,
      sessionId: byCookie.body.sessionId,
      via: 'session',
      mfa: { totp: false, passkeys: 0 },
      amr: ['pwd'],
    });
    const byBearer = await client.get('/auth/me', { bearer: user.accessToken, cookies: false });
    assert.equal(byBearer.body, { ...byCookie.body, via: 'bearer' });
    const listed = await client.get('/auth/sessions');
    assert.is(
      listed.body.sessions[0].id,
      byCookie.body.sessionId,
      'sessionId is the public id /auth/sessions lists',
    );
  },
);

me('is 401 without a credential', async ({ app }) => {
  const reply = await app.client().get('/auth/me');
  assert.is(reply.status, 401);
  assert.is(reply.headers.get('www-authenticate'), 'Bearer');
});

me.run();

// --- POST /auth/refresh ---------------------------------------------------------------------------

const refresh = routeSuite('POST /auth/refresh');

refresh(
  'rotates: 200 with new tokens of the same shape, no cookie; the new access token works',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const reply = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(reply.status, 200);
    assert.equal(Object.keys(reply.body).sort(), ['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
    assert.is.not(reply.body.refreshToken, user.refreshToken);
    assert.equal(reply.setCookies, []);
    const check = await app.client().get('/auth/me', { bearer: reply.body.accessToken });
    assert.is(check.body.userId, user.userId);
    const next = await app.client().post('/auth/refresh', { refreshToken: reply.body.refreshToken });
    assert.is(next.status, 200, 'the successor rotates in turn');
  },
);

refresh('a token that was never issued is 401 invalid_refresh_token', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  const forged = `${user.refreshToken.slice(0, -5)}AAAAA`;
  for (const token of ['garbage', '', forged, 'r1.a.b.c', `${user.refreshToken}x`]) {
    const reply = await client.post('/auth/refresh', { refreshToken: token });
    assert.is(reply.status, 401, token);
    assert.is(reply.body.error, 'invalid_refresh_token');
  }
  assert.is(
    (await client.post('/auth/refresh', { refreshToken: user.refreshToken })).status,
    200,
    'nothing was revoked',
  );
});

refresh('reuse of a rotated token is 401 refresh_token_reused and revokes the session', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  const rotated = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
  assert.is(rotated.status, 200);
  const reused = await app.client().post('/auth/refresh', { refreshToken: user.refreshToken });
  assert.is(reused.status, 401);
  assert.is(reused.body.error, 'refresh_token_reused');
  assert.is(
    (await app.client().post('/auth/refresh', { refreshToken: rotated.body.refreshToken })).status,
    401,
  );
  assert.is((await client.get('/auth/me', { bearer: rotated.body.accessToken, cookies: false })).status, 401);
  assert.is((await client.get('/auth/me')).status, 401, 'the cookie of that session is dead too');
});

refresh(
  'a reuse that revokes the request’s own cookie session clears that cookie, and only that one',
  async ({ app }) => {
    const browser = app.client();
    const user = await signUp(browser);
    const rotated = await browser.post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(rotated.status, 200);
    assert.equal(rotated.setCookies, [], 'a refresh sets no cookie, also when one was sent');
    // Another session's token reused with this cookie: this cookie stays.
    const other = await app.client().post('/auth/login', { email: user.email, password: user.password });
    await app.client().post('/auth/refresh', { refreshToken: other.body.refreshToken });
    const foreign = await browser.post('/auth/refresh', { refreshToken: other.body.refreshToken });
    assert.is(foreign.body.error, 'refresh_token_reused');
    assert.equal(foreign.setCookies, []);
    assert.is((await browser.get('/auth/me')).status, 200);
    // This session's own token reused: the session ends, and so does its cookie.
    const own = await browser.post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(own.status, 401);
    assert.is(own.body.error, 'refresh_token_reused');
    assert.is(own.setCookies.length, 1);
    assert.match(own.setCookies[0] as string, /^sid=; .*Max-Age=0/);
  },
);

refresh('a missing or non-string refreshToken is 400 invalid_request', async ({ app }) => {
  const client = app.client();
  for (const body of [
    {},
    { refreshToken: 5 },
    { refreshToken: null },
    { refreshToken: ['x'] },
    { refreshToken: 'x'.repeat(600) },
  ]) {
    const reply = await client.post('/auth/refresh', body);
    assert.is(reply.status, 400, JSON.stringify(body).slice(0, 40));
    assert.is(reply.body.error, 'invalid_request');
  }
});

refresh.run();

// --- POST /auth/logout ----------------------------------------------------------------------------

const logout = routeSuite('POST /auth/logout');

logout(
  'with the cookie: 204, a clearing cookie, and the session, its refresh and access tokens revoked',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const cookie = client.jar.get('sid') as string;
    const reply = await client.post('/auth/logout');
    assert.is(reply.status, 204);
    assert.is(reply.setCookies.length, 1);
    assert.match(reply.setCookies[0] as string, /^sid=; .*Max-Age=0/);
    assert.is((await client.get('/auth/me', { headers: { cookie: `sid=${cookie}` } })).status, 401);
    assert.is((await client.get('/auth/me', { bearer: user.accessToken })).status, 401);
    assert.is((await client.post('/auth/refresh', { refreshToken: user.refreshToken })).status, 401);
  },
);

logout(
  'with a bearer token: 204 and its session revoked (cookie, refresh and access tokens)',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const reply = await app.client().post('/auth/logout', undefined, { bearer: user.accessToken });
    assert.is(reply.status, 204);
    assert.is((await client.get('/auth/me', { bearer: user.accessToken })).status, 401);
    assert.is((await client.get('/auth/me')).status, 401, 'the cookie of the same session');
    assert.is((await client.post('/auth/refresh', { refreshToken: user.refreshToken })).status, 401);
  },
);

logout('is 204 without credentials and with invalid ones, ending nothing', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  assert.is((await app.client().post('/auth/logout')).status, 204);
  assert.is((await app.client().post('/auth/logout', undefined, { bearer: 'garbage' })).status, 204);
  assert.is(
    (await app.client().post('/auth/logout', undefined, { headers: { cookie: 'sid=v1.junk' } })).status,
    204,
  );
  // An invalid Authorization header wins over a valid cookie: nothing is ended.
  assert.is((await client.post('/auth/logout', undefined, { bearer: 'garbage' })).status, 204);
  assert.is((await client.get('/auth/me')).status, 200);
  assert.is((await client.get('/auth/me', { bearer: user.accessToken })).status, 200);
});

logout.run();

// --- POST /auth/logout-others and /auth/logout-all -----------------------------------------------

const others = routeSuite('POST /auth/logout-others');

others('revokes every other session of the user; the current one stays', async ({ app }) => {
  const laptop = app.client();
  const user = await signUp(laptop);
  const phone = app.client();
  const phoneLogin = await phone.post('/auth/login', { email: user.email, password: user.password });
  const reply = await laptop.post('/auth/logout-others');
  assert.is(reply.status, 204);
  assert.equal(reply.setCookies, [], 'the current cookie stays');
  assert.is((await laptop.get('/auth/me')).status, 200);
  assert.is((await laptop.get('/auth/me', { bearer: user.accessToken, cookies: false })).status, 200);
  assert.is((await phone.get('/auth/me')).status, 401);
  assert.is((await phone.post('/auth/refresh', { refreshToken: phoneLogin.body.refreshToken })).status, 401);
  const viaBearer = await phone.post('/auth/logout-others', undefined, { bearer: user.accessToken });
  assert.is(viaBearer.status, 204, 'a bearer token counts as the current session too');
});

others('is 401 without a credential', async ({ app }) => {
  assert.is((await app.client().post('/auth/logout-others')).status, 401);
});

others.run();

const all = routeSuite('POST /auth/logout-all');

all(
  'revokes every session, refresh token and access token of the user, and clears the cookie',
  async ({ app, clock }) => {
    const laptop = app.client();
    const user = await signUp(laptop);
    const phone = app.client();
    const phoneLogin = await phone.post('/auth/login', { email: user.email, password: user.password });
    const reply = await laptop.post('/auth/logout-all');
    assert.is(reply.status, 204);
    assert.match(reply.setCookies[0] as string, /^sid=; /);
    for (const [client, token, refreshToken] of [
      [laptop, user.accessToken, user.refreshToken],
      [phone, phoneLogin.body.accessToken, phoneLogin.body.refreshToken],
    ] as const) {
      assert.is((await client.get('/auth/me', { bearer: token })).status, 401);
      assert.is((await client.post('/auth/refresh', { refreshToken })).status, 401);
    }
    assert.is((await phone.get('/auth/me')).status, 401);
    clock.advance(1); // a login in the logout-all's own millisecond counts as racing it
    const fresh = await laptop.post('/auth/login', { email: user.email, password: user.password });
    assert.is(fresh.status, 200, 'logging in again works');
  },
);

all('is 401 without a credential', async ({ app }) => {
  assert.is((await app.client().post('/auth/logout-all')).status, 401);
});

all.run();
