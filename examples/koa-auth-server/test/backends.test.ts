import { backendSuite } from '@latchkey/testing/backends';
import * as assert from 'uvu/assert';
import { UserStore } from '../src/users.js';
import { lastCode, startTestApp } from './helpers.js';

// The main flow over HTTP, and the user store, on the fake, a real redis-server and a real 3-master
// Redis Cluster (the same tests on each).

const DAY_MS = 24 * 3600_000;

backendSuite('the main flow over HTTP', (test) => {
  test('register → login → me → refresh → reuse → logout-all → reset', async ({
    redis,
    clock,
    prefix,
    keysWithoutTtl,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const browser = app.client();
      const email = 'flow@example.com';
      const registered = await browser.post('/auth/register', { email, password: 'first password' });
      assert.is(registered.status, 201);
      assert.is(
        (await app.client().post('/auth/register', { email, password: 'other password' })).status,
        409,
      );

      const login = await browser.post('/auth/login', { email, password: 'first password' });
      assert.is(login.status, 200);
      const me = await browser.get('/auth/me', { bearer: login.body.accessToken, cookies: false });
      assert.equal(me.body, {
        userId: registered.body.userId,
        email,
        emailVerified: false,
        sessionId: me.body.sessionId,
        via: 'bearer',
        mfa: { totp: false, passkeys: 0 },
        amr: ['pwd'],
      });
      assert.is((await browser.get('/auth/me')).body.via, 'session');
      assert.equal((await browser.get('/auth/me')).body.amr, ['pwd'], 'the session records a password login');

      const mobile = app.client();
      const refreshed = await mobile.post('/auth/refresh', { refreshToken: login.body.refreshToken });
      assert.is(refreshed.status, 200);
      const reused = await mobile.post('/auth/refresh', { refreshToken: login.body.refreshToken });
      assert.is(reused.status, 401);
      assert.is(reused.body.error, 'refresh_token_reused');
      assert.is((await browser.get('/auth/me')).status, 401, 'reuse revoked the whole session');

      const second = await browser.post('/auth/login', { email, password: 'first password' });
      const third = await mobile.post('/auth/login', { email, password: 'first password' });
      assert.is((await browser.post('/auth/logout-all')).status, 204);
      for (const body of [second.body, third.body]) {
        assert.is((await app.client().get('/auth/me', { bearer: body.accessToken })).status, 401);
        assert.is(
          (await app.client().post('/auth/refresh', { refreshToken: body.refreshToken })).status,
          401,
        );
      }
      assert.is((await mobile.get('/auth/me')).status, 401);
      await advance(1); // a login in the logout-all's own millisecond counts as racing it

      const phone = app.client();
      const before = await phone.post('/auth/login', { email, password: 'first password' });
      assert.is((await app.client().post('/auth/password-reset/request', { email })).status, 202);
      const code = lastCode(app, email, 'password-reset');
      const reset = await app
        .client()
        .post('/auth/password-reset/confirm', { email, code, newPassword: 'second password' });
      assert.is(reset.status, 204);
      await advance(1);
      assert.is((await phone.get('/auth/me')).status, 401);
      assert.is(
        (await phone.get('/auth/me', { bearer: before.body.accessToken, cookies: false })).status,
        401,
      );
      assert.is(
        (await app.client().post('/auth/refresh', { refreshToken: before.body.refreshToken })).status,
        401,
      );
      assert.is((await app.client().post('/auth/login', { email, password: 'first password' })).status, 401);
      assert.is((await app.client().post('/auth/login', { email, password: 'second password' })).status, 200);

      // The reset proved the mailbox: the account (record and email claim) is permanent now; everything
      // of latchkey still expires.
      const users = new UserStore({ redis, prefix: `${prefix}:app` });
      const permanent = (await keysWithoutTtl()).sort();
      const expected = [users.userKey(registered.body.userId), users.emailKey(email)].map((k) =>
        permanent.find((key) => key.endsWith(k)),
      );
      assert.is(permanent.length, 2, 'only the reset account is permanent');
      assert.ok(
        expected.every((k) => k !== undefined),
        'the user record and its claim',
      );
    } finally {
      await app.close();
    }
  });

  test('email verification makes the account permanent', async ({
    redis,
    clock,
    prefix,
    keysWithoutTtl,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const client = app.client();
      const email = 'verified@example.com';
      await client.post('/auth/register', { email, password: 'first password' });
      await client.post('/auth/login', { email, password: 'first password' });
      assert.is((await client.post('/auth/verify-email/request')).status, 202);
      const confirmed = await client.post('/auth/verify-email/confirm', {
        code: lastCode(app, email, 'verify-email'),
      });
      assert.equal(confirmed.body, { emailVerified: true });
      const permanent = await keysWithoutTtl();
      assert.is(permanent.length, 2, 'the user and its email index');
      await advance(30 * DAY_MS);
      assert.is((await app.client().post('/auth/login', { email, password: 'first password' })).status, 200);
    } finally {
      await app.close();
    }
  });
});

backendSuite('UserStore', (test) => {
  test('20 concurrent registrations of one email: exactly one succeeds', async ({
    redis,
    clock,
    prefix,
    connect,
  }) => {
    // Several connections, so that the commands really interleave on real servers.
    const clients = [redis, connect(), connect(), connect()];
    const stores = clients.map((client) => new UserStore({ redis: client, clock, prefix }));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (stores[i % stores.length] as UserStore).register('same@example.com', async () => `hash-${i}`),
      ),
    );
    const winners = results.filter((r) => r.ok);
    assert.is(winners.length, 1);
    const found = await (stores[0] as UserStore).findByEmail('same@example.com');
    assert.is(found?.id, winners[0]?.ok === true ? winners[0].user.id : undefined);
  });

  test('an unverified account expires with its email index after 7 days; the address is free again', async ({
    redis,
    clock,
    prefix,
    keys,
    advance,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    const first = await users.register('temp@example.com', async () => 'hash');
    assert.ok(first.ok);
    assert.is((await keys()).length, 2);
    for (const key of await keys()) {
      const ttl = await redis.pttl(key);
      assert.ok(ttl > 7 * DAY_MS - 60_000 && ttl <= 7 * DAY_MS, `${key}: ${ttl}`);
    }
    await advance(7 * DAY_MS - 1000);
    assert.ok(await users.findByEmail('temp@example.com'));
    await advance(2000);
    assert.is(await users.findByEmail('temp@example.com'), null);
    assert.equal(await keys(), []);
    assert.ok((await users.register('temp@example.com', async () => 'hash')).ok);
  });

  test('verification removes the TTL of the user and of its email index', async ({
    redis,
    clock,
    prefix,
    keysWithoutTtl,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    const registered = await users.register('keep@example.com', async () => 'hash');
    assert.ok(registered.ok);
    if (!registered.ok) return;
    assert.ok(await users.markEmailVerified(registered.user));
    assert.equal(
      (await keysWithoutTtl()).sort(),
      [users.emailKey('keep@example.com'), users.userKey(registered.user.id)].sort(),
    );
    assert.is((await users.findById(registered.user.id))?.emailVerified, true);
  });

  test('a registration that fails after claiming releases the address', async ({
    redis,
    clock,
    prefix,
    keys,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    let failed = false;
    try {
      await users.register('fail@example.com', async () => {
        throw new Error('hashing failed');
      });
    } catch {
      failed = true;
    }
    assert.ok(failed, 'the failure reaches the caller');
    assert.equal(await keys(), []);
    assert.ok((await users.register('fail@example.com', async () => 'hash')).ok);
  });

  test('a claim without its user blocks the address for a minute only (an interrupted registration)', async ({
    redis,
    clock,
    prefix,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    await redis.set(users.emailKey('orphan@example.com'), `ghostUserId|${clock.now()}`, 'PX', 7 * DAY_MS);
    assert.is(
      (await users.register('orphan@example.com', async () => 'hash')).ok,
      false,
      'maybe still in flight',
    );
    assert.is(await users.findByEmail('orphan@example.com'), null, 'invisible to lookups');
    clock.advance(60_000);
    const taken = await users.register('orphan@example.com', async () => 'hash');
    assert.ok(taken.ok, 'taken over once it is surely an orphan');
    assert.ok(await users.findByEmail('orphan@example.com'));
  });

  test('passwords change only on existing users; nothing is resurrected without a TTL', async ({
    redis,
    clock,
    prefix,
    keys,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    assert.is(await users.setPasswordHash('nobody', 'hash'), false);
    assert.is(
      await users.markEmailVerified({
        id: 'nobody',
        email: 'n@example.com',
        emailVerified: false,
        createdAt: 0,
      }),
      false,
    );
    assert.equal(await keys(), []);
  });

  test('a password change over an expected hash is compare-and-set; a reset writes unconditionally', async ({
    redis,
    clock,
    prefix,
    keysWithoutTtl,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    const registered = await users.register('cas@example.com', async () => 'hash-1');
    assert.ok(registered.ok);
    if (!registered.ok) return;
    const id = registered.user.id;
    assert.is(await users.setPasswordHash(id, 'hash-2', 'not-the-hash'), false);
    assert.is((await users.findById(id))?.passwordHash, 'hash-1', 'unchanged');
    assert.is(await users.setPasswordHash(id, 'hash-2', 'hash-1'), true);
    assert.is((await users.findById(id))?.passwordHash, 'hash-2');
    assert.is(await users.setPasswordHash(id, 'hash-3'), true, 'no expectation: a reset');
    assert.is((await users.findById(id))?.passwordHash, 'hash-3');
    assert.is(await users.setPasswordHash('nobody', 'hash', 'hash-3'), false);
    assert.equal(await keysWithoutTtl(), [], 'nothing lost its TTL');
  });

  test('user and email keys sit in their own hash tags and never break on odd input', async ({
    redis,
    clock,
    prefix,
  }) => {
    const users = new UserStore({ redis, clock, prefix });
    const email = 'we{ird}"quo:te@exa{mple}.com';
    const registered = await users.register(email, async () => 'hash');
    assert.ok(registered.ok);
    assert.match(users.emailKey(email), /^[^{}]*:ue:\{[A-Za-z0-9_-]{43}\}$/);
    assert.is((await users.findByEmail(email))?.email, email);
  });
});
