import { backendSuite } from '@latchkey/testing/backends';
import * as assert from 'uvu/assert';
import { UserStore } from '../src/users.js';
import { lastCode, routeSuite, signUp, startTestApp } from './helpers.js';

// HTTP-API.md, Running → codes: budgets and issue caps count per email, purpose and client IP bucket
// (with larger ones across IPs), so a stranger from one address cannot spend the owner's; and a
// successful reset marks the email verified and ends the expiry of an unverified account.

const MINUTE_MS = 60_000;
const STRANGER = '198.51.100.66';
const OWNER = '203.0.113.5';

const perIp = routeSuite('reset codes per client IP bucket');

perIp(
  "a stranger's reset requests from one address do not stop the owner's from another",
  async ({ app, clock }) => {
    const owner = app.client({ ip: OWNER });
    const user = await signUp(owner);
    const stranger = app.client({ ip: STRANGER });
    const sent = (): number =>
      app.outbox?.list(user.email).filter((m) => m.purpose === 'password-reset').length ?? 0;
    // Ten requests about 7 minutes apart: the stranger's own caps (5 per hour) stop his sending...
    for (let i = 0; i < 10; i++) {
      const reply = await stranger.post('/auth/password-reset/request', { email: user.email });
      assert.is(reply.status, 202);
      clock.advance(7 * MINUTE_MS);
    }
    assert.ok(sent() < 10, 'the stranger hit his cap');
    const before = sent();
    // ... and the owner's request still sends a code, which resets the password.
    const reply = await owner.post('/auth/password-reset/request', { email: user.email });
    assert.is(reply.status, 202);
    assert.is(sent(), before + 1, 'the owner was sent a code');
    const confirmed = await owner.post('/auth/password-reset/confirm', {
      email: user.email,
      code: lastCode(app, user.email, 'password-reset'),
      newPassword: 'a brand new password',
    });
    assert.is(confirmed.status, 204);
  },
);

perIp(
  "a stranger's 10 wrong confirms do not block the owner's reset from another IP",
  async ({ app, clock }) => {
    const owner = app.client({ ip: OWNER });
    const user = await signUp(owner);
    const stranger = app.client({ ip: STRANGER });
    for (let i = 0; i < 10; i++) {
      const reply = await stranger.post('/auth/password-reset/confirm', {
        email: user.email,
        code: String(100000 + i),
        newPassword: 'the stranger’s password',
      });
      assert.is(reply.status, 400);
      assert.is(reply.body.error, 'invalid_code');
    }
    // The stranger's bucket is spent: his later requests send nothing.
    const strangerAsks = await stranger.post('/auth/password-reset/request', { email: user.email });
    assert.is(strangerAsks.status, 202);
    assert.is(app.outbox?.list(user.email).length ?? 0, 0, 'nothing sent for the spent bucket');
    clock.advance(MINUTE_MS);
    assert.is((await owner.post('/auth/password-reset/request', { email: user.email })).status, 202);
    const confirmed = await owner.post('/auth/password-reset/confirm', {
      email: user.email,
      code: lastCode(app, user.email, 'password-reset'),
      newPassword: 'a brand new password',
    });
    assert.is(confirmed.status, 204);
    const login = await app
      .client()
      .post('/auth/login', { email: user.email, password: 'a brand new password' });
    assert.is(login.status, 200);
  },
);

perIp.run();

backendSuite('a password reset marks the email verified', (test) => {
  test('reset of an unverified account: /auth/me shows emailVerified, the user record has no TTL', async ({
    redis,
    clock,
    prefix,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const owner = app.client();
      const user = await signUp(owner);
      const users = new UserStore({ redis, prefix: `${prefix}:app` });
      const userKey = users.userKey(user.userId);
      const emailKey = users.emailKey(user.email);
      assert.ok((await redis.pttl(userKey)) > 0, 'unverified: the record expires');
      assert.ok((await redis.pttl(emailKey)) > 0, 'unverified: the claim expires');
      assert.is((await owner.post('/auth/password-reset/request', { email: user.email })).status, 202);
      const confirmed = await owner.post('/auth/password-reset/confirm', {
        email: user.email,
        code: lastCode(app, user.email, 'password-reset'),
        newPassword: 'the owner’s new password',
      });
      assert.is(confirmed.status, 204);
      assert.is(await redis.pttl(userKey), -1, 'the user record no longer expires');
      assert.is(await redis.pttl(emailKey), -1, 'the email claim no longer expires');
      const login = await owner.post('/auth/login', {
        email: user.email,
        password: 'the owner’s new password',
      });
      assert.is(login.status, 200);
      const me = await owner.get('/auth/me', { bearer: login.body.accessToken, cookies: false });
      assert.is(me.status, 200);
      assert.is(me.body.emailVerified, true);
    } finally {
      await app.close();
    }
  });
});
