import { countRoundTrips } from '@latchkey/testing';
import * as assert from 'uvu/assert';
import { lastCode, routeSuite, signUp } from './helpers.js';

// Every route of the account part of HTTP-API.md (sessions, password, email verification, password
// reset, dev outbox) and each of its error rows, on the embedded fake Redis.

const MINUTE = 60_000;

// --- GET /auth/sessions and DELETE /auth/sessions/:id --------------------------------------------

const list = routeSuite('GET /auth/sessions');

list(
  'lists the live sessions newest first with ISO times and the current one marked',
  async ({ app, clock }) => {
    const first = app.client();
    const user = await signUp(first);
    clock.advance(5 * MINUTE);
    const second = app.client();
    await second.post(
      '/auth/login',
      { email: user.email, password: user.password },
      {
        headers: { 'user-agent': 'phone/1.0' },
      },
    );
    const reply = await second.get('/auth/sessions');
    assert.is(reply.status, 200);
    const sessions = reply.body.sessions as Array<Record<string, unknown>>;
    assert.is(sessions.length, 2);
    for (const item of sessions) {
      const keys = Object.keys(item).filter((key) => key !== 'ip' && key !== 'userAgent');
      assert.equal(keys.sort(), ['createdAt', 'current', 'id', 'lastSeenAt']);
    }
    const [newest, oldest] = sessions as [Record<string, unknown>, Record<string, unknown>];
    assert.is(newest['current'], true);
    assert.is(oldest['current'], false);
    assert.ok(Date.parse(newest['createdAt'] as string) > Date.parse(oldest['createdAt'] as string));
    assert.is(newest['createdAt'], new Date(clock.now()).toISOString());
    assert.type(newest['lastSeenAt'], 'string');
    assert.is(newest['userAgent'], 'phone/1.0');
    const mine = await second.get('/auth/me');
    assert.is(newest['id'], mine.body.sessionId);
    const byBearer = await first.get('/auth/sessions', { bearer: user.accessToken, cookies: false });
    assert.is(byBearer.body.sessions[1].current, true, 'the bearer token’s session is current');
  },
);

list('is 401 without a credential', async ({ app }) => {
  assert.is((await app.client().get('/auth/sessions')).status, 401);
});

list.run();

const revoke = routeSuite('DELETE /auth/sessions/:id');

revoke('revokes one session of the user: 204, and that session’s tokens stop working', async ({ app }) => {
  const laptop = app.client();
  const user = await signUp(laptop);
  const phone = app.client();
  const phoneLogin = await phone.post('/auth/login', { email: user.email, password: user.password });
  const phoneId = (await phone.get('/auth/me')).body.sessionId as string;
  const reply = await laptop.delete(`/auth/sessions/${phoneId}`);
  assert.is(reply.status, 204);
  assert.equal(reply.setCookies, [], 'the laptop keeps its cookie');
  assert.is((await phone.get('/auth/me')).status, 401);
  assert.is((await phone.post('/auth/refresh', { refreshToken: phoneLogin.body.refreshToken })).status, 401);
  assert.is((await laptop.get('/auth/me')).status, 200);
  const again = await laptop.delete(`/auth/sessions/${phoneId}`);
  assert.is(again.status, 404, 'no longer a live session');
});

revoke('revoking the current cookie session clears the cookie', async ({ app }) => {
  const client = app.client();
  await signUp(client);
  const id = (await client.get('/auth/me')).body.sessionId as string;
  const reply = await client.delete(`/auth/sessions/${id}`);
  assert.is(reply.status, 204);
  assert.match(reply.setCookies[0] as string, /^sid=; /);
  assert.is((await client.get('/auth/me')).status, 401);
});

revoke('is 404 not_found for an id that is not one of the user’s live sessions', async ({ app }) => {
  const alice = app.client();
  await signUp(alice);
  const bob = app.client();
  await signUp(bob);
  const bobsId = (await bob.get('/auth/me')).body.sessionId as string;
  for (const id of [bobsId, 'AAAAAAAAAAAAAAAAAAAAAA', 'garbage', '%00', 'x'.repeat(300)]) {
    const reply = await alice.delete(`/auth/sessions/${id}`);
    assert.is(reply.status, 404, id.slice(0, 30));
    assert.is(reply.body.error, 'not_found');
  }
  assert.is((await bob.get('/auth/me')).status, 200, 'another user’s session is untouched');
});

revoke('is 401 without a credential', async ({ app }) => {
  assert.is((await app.client().delete('/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA')).status, 401);
});

revoke.run();

// --- POST /auth/password --------------------------------------------------------------------------

const password = routeSuite('POST /auth/password', { LOGIN_MAX_FAILURES: '3' });

password(
  'changes the password and revokes every other session; the current one stays',
  async ({ app, clock }) => {
    const laptop = app.client();
    const user = await signUp(laptop);
    const phone = app.client();
    const phoneLogin = await phone.post('/auth/login', { email: user.email, password: user.password });
    const reply = await laptop.post('/auth/password', {
      currentPassword: user.password,
      newPassword: 'new password!',
    });
    assert.is(reply.status, 204);
    assert.equal(reply.setCookies, []);
    assert.is((await laptop.get('/auth/me')).status, 200);
    assert.is((await laptop.get('/auth/me', { bearer: user.accessToken, cookies: false })).status, 200);
    assert.is((await laptop.post('/auth/refresh', { refreshToken: user.refreshToken })).status, 200);
    assert.is((await phone.get('/auth/me')).status, 401);
    assert.is(
      (await phone.post('/auth/refresh', { refreshToken: phoneLogin.body.refreshToken })).status,
      401,
    );
    clock.advance(1); // a login in the change's own millisecond counts as racing it
    const old = await app.client().post('/auth/login', { email: user.email, password: user.password });
    assert.is(old.status, 401);
    const fresh = await app.client().post('/auth/login', { email: user.email, password: 'new password!' });
    assert.is(fresh.status, 200);
  },
);

password(
  'a wrong current password is 403 invalid_credentials, counted by the login limiter',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    for (let i = 0; i < 3; i++) {
      const reply = await client.post('/auth/password', {
        currentPassword: 'wrong password',
        newPassword: 'new password!',
      });
      assert.is(reply.status, 403);
      assert.is(reply.body.error, 'invalid_credentials');
    }
    const refused = await client.post('/auth/password', {
      currentPassword: user.password,
      newPassword: 'new password!',
    });
    assert.is(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const login = await client.post('/auth/login', { email: user.email, password: user.password });
    assert.is(login.status, 429, 'the same account+IP budget as logins');
  },
);

password('an invalid body is 400 invalid_request, changes nothing and counts no failure', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  // More invalid requests than LOGIN_MAX_FAILURES (3), with the right current password or a wrong one.
  for (const body of [
    { currentPassword: user.password, newPassword: 'short' },
    { currentPassword: 'wrong password', newPassword: 'short' },
    { currentPassword: user.password },
    { newPassword: 'long enough' },
    { currentPassword: 5, newPassword: 'long enough' },
  ]) {
    const reply = await client.post('/auth/password', body);
    assert.is(reply.status, 400);
    assert.is(reply.body.error, 'invalid_request');
  }
  assert.is(
    (await app.client().post('/auth/login', { email: user.email, password: user.password })).status,
    200,
    'the password is unchanged',
  );
  const change = await client.post('/auth/password', {
    currentPassword: user.password,
    newPassword: 'long enough',
  });
  assert.is(change.status, 204, 'and the same client is not throttled');
});

password('is 401 without a credential', async ({ app }) => {
  const reply = await app
    .client()
    .post('/auth/password', { currentPassword: 'a', newPassword: 'long enough' });
  assert.is(reply.status, 401);
});

password.run();

// --- POST /auth/verify-email/request and /confirm -------------------------------------------------

const verify = routeSuite('POST /auth/verify-email/*');

verify('request answers 202 {"status":"sent"} and puts a 6-digit code in the outbox', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  const reply = await client.post('/auth/verify-email/request');
  assert.is(reply.status, 202);
  assert.equal(reply.body, { status: 'sent' });
  const messages = app.outbox?.list(user.email) ?? [];
  assert.is(messages.length, 1);
  assert.is(messages[0]?.purpose, 'verify-email');
  assert.match(messages[0]?.code ?? '', /^\d{6}$/);
});

verify(
  'request inside the 60 s cooldown is 429 with Retry-After; after it a new code is sent',
  async ({ app, clock }) => {
    const client = app.client();
    const user = await signUp(client);
    await client.post('/auth/verify-email/request');
    const early = await client.post('/auth/verify-email/request');
    assert.is(early.status, 429);
    assert.is(early.body.error, 'too_many_attempts');
    const wait = Number(early.headers.get('retry-after'));
    assert.ok(wait >= 1 && wait <= 60, String(wait));
    clock.advance(60_000);
    assert.is((await client.post('/auth/verify-email/request')).status, 202);
    assert.is(app.outbox?.list(user.email).length, 2);
  },
);

verify(
  'request over the issue cap (5 an hour) is 429 with the wait until a slot frees',
  async ({ app, clock }) => {
    const client = app.client();
    const user = await signUp(client);
    for (let i = 0; i < 5; i++) {
      assert.is((await client.post('/auth/verify-email/request')).status, 202, `code ${i + 1}`);
      clock.advance(61_000);
    }
    const capped = await client.post('/auth/verify-email/request');
    assert.is(capped.status, 429);
    const wait = Number(capped.headers.get('retry-after'));
    assert.ok(wait > 60 && wait <= 3600, String(wait));
    assert.is(app.outbox?.list(user.email).length, 5);
  },
);

verify('confirm with the code: 200 {"emailVerified":true}, and /auth/me shows it', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  await client.post('/auth/verify-email/request');
  const reply = await client.post('/auth/verify-email/confirm', {
    code: lastCode(app, user.email, 'verify-email'),
  });
  assert.is(reply.status, 200);
  assert.equal(reply.body, { emailVerified: true });
  assert.is((await client.get('/auth/me')).body.emailVerified, true);
});

verify('a wrong, malformed or used code is 400 invalid_code; 5 attempts burn the code', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  await client.post('/auth/verify-email/request');
  const code = lastCode(app, user.email, 'verify-email');
  const wrong = code === '000000' ? '111111' : '000000';
  for (const attempt of [wrong, 'abc', '', '1234567', wrong]) {
    const reply = await client.post('/auth/verify-email/confirm', { code: attempt });
    assert.is(reply.status, 400, attempt);
    assert.is(reply.body.error, 'invalid_code');
  }
  const burned = await client.post('/auth/verify-email/confirm', { code });
  assert.is(burned.status, 400, 'the fifth failure exhausted the code');
  assert.is(burned.body.error, 'invalid_code');
  assert.is((await client.get('/auth/me')).body.emailVerified, false);
});

verify('once verified, confirm is 200 whatever the code and consumes nothing', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  await client.post('/auth/verify-email/request');
  const code = lastCode(app, user.email, 'verify-email');
  const other = app.client();
  await other.post('/auth/login', { email: user.email, password: user.password });
  assert.is((await client.post('/auth/verify-email/confirm', { code })).status, 200);
  const counter = countRoundTrips(app.redis);
  for (const attempt of ['whatever', code, '000000']) {
    counter.reset();
    const reply = await other.post('/auth/verify-email/confirm', { code: attempt });
    assert.is(reply.status, 200);
    assert.equal(reply.body, { emailVerified: true });
    assert.not.ok(
      counter.commands.some((name) => name.startsWith('latchkey_code_')),
      `no code was looked at: ${counter.commands.join(', ')}`,
    );
  }
  assert.is((await other.post('/auth/verify-email/confirm', {})).status, 400, 'the body is still validated');
});

verify('an expired code is 400 invalid_code', async ({ app, clock }) => {
  const client = app.client();
  const user = await signUp(client);
  await client.post('/auth/verify-email/request');
  clock.advance(10 * MINUTE + 1);
  const reply = await client.post('/auth/verify-email/confirm', {
    code: lastCode(app, user.email, 'verify-email'),
  });
  assert.is(reply.status, 400);
  assert.is(reply.body.error, 'invalid_code');
});

verify('a missing or non-string code is 400 invalid_request and counts no attempt', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  await client.post('/auth/verify-email/request');
  for (let i = 0; i < 6; i++) {
    for (const body of [{}, { code: 123456 }, { code: null }, { code: ['123456'] }]) {
      const reply = await client.post('/auth/verify-email/confirm', body);
      assert.is(reply.status, 400);
      assert.is(reply.body.error, 'invalid_request');
    }
  }
  const reply = await client.post('/auth/verify-email/confirm', {
    code: lastCode(app, user.email, 'verify-email'),
  });
  assert.is(reply.status, 200);
});

verify('both routes are 401 without a credential', async ({ app }) => {
  assert.is((await app.client().post('/auth/verify-email/request')).status, 401);
  assert.is((await app.client().post('/auth/verify-email/confirm', { code: '123456' })).status, 401);
});

verify.run();

// --- POST /auth/password-reset/request and /confirm -----------------------------------------------

const reset = routeSuite('POST /auth/password-reset/*', { RESET_MAX_PER_IP: '4' });

reset(
  'request answers the same 202 for known and unknown emails; only a known one gets a code',
  async ({ app }) => {
    const user = await signUp(app.client());
    const known = await app.client().post('/auth/password-reset/request', { email: user.email });
    const unknown = await app.client().post('/auth/password-reset/request', { email: 'nobody@example.com' });
    assert.is(known.status, 202);
    assert.is(unknown.status, 202);
    assert.equal(known.body, { status: 'sent' });
    assert.equal(unknown.body, known.body);
    assert.is(app.outbox?.list(user.email).length, 1);
    assert.is(app.outbox?.list('nobody@example.com').length, 0);
  },
);

reset('request inside the cooldown answers the same 202 and sends nothing', async ({ app }) => {
  const user = await signUp(app.client());
  await app.client().post('/auth/password-reset/request', { email: user.email });
  const again = await app.client().post('/auth/password-reset/request', { email: user.email });
  assert.is(again.status, 202);
  assert.equal(again.body, { status: 'sent' });
  assert.is(app.outbox?.list(user.email).length, 1);
});

reset('request over the issue cap answers the same 202 and sends nothing', async ({ app, clock }) => {
  const user = await signUp(app.client());
  // The caps count per email, purpose and client IP bucket: one address, 10 per day. 16 minutes apart
  // stays under RESET_MAX_PER_IP (4 per hour here) and the 5-per-hour cap.
  const client = app.client();
  for (let i = 0; i < 11; i++) {
    const reply = await client.post('/auth/password-reset/request', { email: user.email });
    assert.is(reply.status, 202);
    assert.equal(reply.body, { status: 'sent' });
    clock.advance(16 * 60_000);
  }
  assert.is(app.outbox?.list(user.email).length, 10);
});

reset(
  'once the failure budget (10 per 24 h) is spent, no code works and nothing more is sent until it recovers',
  async ({ app, clock }) => {
    const user = await signUp(app.client());
    // The budget counts per email, purpose and client IP bucket: one address.
    const client = app.client();
    const attempt = (code: string) =>
      client.post('/auth/password-reset/confirm', { email: user.email, code, newPassword: 'brand new pw' });
    for (let round = 0; round < 2; round++) {
      await client.post('/auth/password-reset/request', { email: user.email });
      const code = lastCode(app, user.email, 'password-reset');
      const wrong = code === '000000' ? '111111' : '000000';
      for (let i = 0; i < 5; i++) assert.is((await attempt(wrong)).status, 400);
      clock.advance(61_000);
    }
    const sent = app.outbox?.list(user.email).length;
    assert.is((await client.post('/auth/password-reset/request', { email: user.email })).status, 202);
    assert.is(app.outbox?.list(user.email).length, sent, 'nothing sent while the budget is spent');
    clock.advance(24 * 3600_000);
    await client.post('/auth/password-reset/request', { email: user.email });
    assert.is(app.outbox?.list(user.email).length, (sent ?? 0) + 1, 'sent again once it recovered');
    assert.is((await attempt(lastCode(app, user.email, 'password-reset'))).status, 204);
  },
);

reset('request past RESET_MAX_PER_IP is 429 too_many_attempts', async ({ app }) => {
  const client = app.client();
  for (let i = 0; i < 4; i++) {
    assert.is(
      (await client.post('/auth/password-reset/request', { email: `x${i}@example.com` })).status,
      202,
    );
  }
  const refused = await client.post('/auth/password-reset/request', { email: 'x9@example.com' });
  assert.is(refused.status, 429);
  assert.is(refused.body.error, 'too_many_attempts');
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
});

reset('request with an invalid email is 400 invalid_request', async ({ app }) => {
  for (const body of [{}, { email: 'nope' }, { email: 3 }]) {
    assert.is((await app.client().post('/auth/password-reset/request', body)).status, 400);
  }
});

reset(
  'confirm: 204, the password changes and every session, refresh and access token is revoked',
  async ({ app, clock }) => {
    const laptop = app.client();
    const user = await signUp(laptop);
    const phone = app.client();
    const phoneLogin = await phone.post('/auth/login', { email: user.email, password: user.password });
    await app.client().post('/auth/password-reset/request', { email: user.email });
    const code = lastCode(app, user.email, 'password-reset');
    const reply = await laptop.post('/auth/password-reset/confirm', {
      email: user.email,
      code,
      newPassword: 'brand new pw',
    });
    assert.is(reply.status, 204);
    assert.match(
      reply.setCookies[0] as string,
      /^sid=; /,
      'the browser’s own session of that user is cleared',
    );
    for (const [client, token, refreshToken] of [
      [laptop, user.accessToken, user.refreshToken],
      [phone, phoneLogin.body.accessToken, phoneLogin.body.refreshToken],
    ] as const) {
      assert.is((await client.get('/auth/me', { bearer: token })).status, 401);
      assert.is((await client.post('/auth/refresh', { refreshToken })).status, 401);
    }
    assert.is((await phone.get('/auth/me')).status, 401);
    clock.advance(1); // a login in the reset's own millisecond counts as racing it
    assert.is(
      (await app.client().post('/auth/login', { email: user.email, password: user.password })).status,
      401,
    );
    assert.is(
      (await app.client().post('/auth/login', { email: user.email, password: 'brand new pw' })).status,
      200,
    );
    const reused = await app
      .client()
      .post('/auth/password-reset/confirm', { email: user.email, code, newPassword: 'x'.repeat(9) });
    assert.is(reused.status, 400, 'the code is single use');
  },
);

reset('confirm with a wrong code, or for an unknown email, is 400 invalid_code', async ({ app }) => {
  const user = await signUp(app.client());
  await app.client().post('/auth/password-reset/request', { email: user.email });
  const code = lastCode(app, user.email, 'password-reset');
  const wrong = await app.client().post('/auth/password-reset/confirm', {
    email: user.email,
    code: code === '000000' ? '111111' : '000000',
    newPassword: 'brand new pw',
  });
  assert.is(wrong.status, 400);
  assert.is(wrong.body.error, 'invalid_code');
  const unknown = await app.client().post('/auth/password-reset/confirm', {
    email: 'nobody@example.com',
    code,
    newPassword: 'brand new pw',
  });
  assert.equal(unknown.body, wrong.body);
  assert.is(
    (await app.client().post('/auth/login', { email: user.email, password: user.password })).status,
    200,
  );
});

reset(
  'confirm validates the whole request first: an invalid newPassword burns no code attempt',
  async ({ app }) => {
    const user = await signUp(app.client());
    await app.client().post('/auth/password-reset/request', { email: user.email });
    const code = lastCode(app, user.email, 'password-reset');
    for (let i = 0; i < 6; i++) {
      const reply = await app
        .client()
        .post('/auth/password-reset/confirm', { email: user.email, code, newPassword: 'short' });
      assert.is(reply.status, 400);
      assert.is(reply.body.error, 'invalid_request');
    }
    for (const body of [
      { email: user.email, newPassword: 'long enough' },
      { email: user.email, code: 5, newPassword: 'long enough' },
      { code, newPassword: 'long enough' },
    ]) {
      assert.is(
        (await app.client().post('/auth/password-reset/confirm', body)).body.error,
        'invalid_request',
      );
    }
    const reply = await app
      .client()
      .post('/auth/password-reset/confirm', { email: user.email, code, newPassword: 'long enough' });
    assert.is(reply.status, 204);
  },
);

reset(
  'confirm is throttled per IP at 5 per reset request allowed (RESET_MAX_PER_IP × 5): 429, spending no code',
  async ({ app }) => {
    const user = await signUp(app.client());
    await app.client().post('/auth/password-reset/request', { email: user.email });
    const code = lastCode(app, user.email, 'password-reset');
    const guesser = app.client();
    // Invalid requests are refused before the throttle and count nothing.
    for (let i = 0; i < 5; i++) {
      const invalid = await guesser.post('/auth/password-reset/confirm', { email: user.email, code });
      assert.is(invalid.body.error, 'invalid_request');
    }
    // Guesses spread over many accounts (here unknown ones): each account's own budget is untouched.
    for (let i = 0; i < 20; i++) {
      const reply = await guesser.post('/auth/password-reset/confirm', {
        email: `victim${i}@example.com`,
        code: '000000',
        newPassword: 'brand new pw',
      });
      assert.is(reply.status, 400, `guess ${i + 1}`);
      assert.is(reply.body.error, 'invalid_code');
    }
    const refused = await guesser.post('/auth/password-reset/confirm', {
      email: user.email,
      code,
      newPassword: 'brand new pw',
    });
    assert.is(refused.status, 429);
    assert.is(refused.body.error, 'too_many_attempts');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const owner = await app.client().post('/auth/password-reset/confirm', {
      email: user.email,
      code,
      newPassword: 'brand new pw',
    });
    assert.is(owner.status, 204, 'the refused attempt spent nothing: the code still works elsewhere');
  },
);

reset.run();

// --- GET /dev/outbox ------------------------------------------------------------------------------

const outbox = routeSuite('GET /dev/outbox');

outbox(
  'lists {to, purpose, code, sentAt} oldest first for one address, the last 100',
  async ({ app, clock }) => {
    const client = app.client();
    const user = await signUp(client);
    await client.post('/auth/verify-email/request');
    clock.advance(61_000);
    await app.client().post('/auth/password-reset/request', { email: user.email });
    const reply = await app.client().get(`/dev/outbox?to=${encodeURIComponent(user.email.toUpperCase())}`);
    assert.is(reply.status, 200);
    const messages = reply.body.messages as Array<Record<string, string>>;
    assert.equal(
      messages.map((m) => [m['to'], m['purpose']]),
      [
        [user.email, 'verify-email'],
        [user.email, 'password-reset'],
      ],
    );
    assert.match(messages[0]?.['code'] ?? '', /^\d{6}$/);
    assert.ok(Date.parse(messages[0]?.['sentAt'] ?? '') < Date.parse(messages[1]?.['sentAt'] ?? ''));
    assert.equal((await app.client().get('/dev/outbox?to=other@example.com')).body, { messages: [] });
    for (let i = 0; i < 120; i++)
      app.outbox?.send({ to: 'bulk@example.com', purpose: 'verify-email', code: String(i) });
    const bulk = await app.client().get('/dev/outbox?to=bulk@example.com');
    assert.is(bulk.body.messages.length, 100);
    assert.is(bulk.body.messages[0].code, '20');
    assert.is(bulk.body.messages[99].code, '119');
  },
);

outbox('a missing or invalid address is 400 invalid_request', async ({ app }) => {
  assert.is((await app.client().get('/dev/outbox')).status, 400);
  assert.is((await app.client().get('/dev/outbox?to=nope')).status, 400);
  assert.is((await app.client().get('/dev/outbox?to=a@example.com&to=b@example.com')).status, 400);
});

outbox.run();
