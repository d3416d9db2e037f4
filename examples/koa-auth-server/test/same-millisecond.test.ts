import { backendSuite } from '@latchkey/testing/backends';
import * as assert from 'uvu/assert';
import { type Client, lastCode, routeSuite, signUp, startTestApp } from './helpers.js';

// Issue 19: the revoke-before mark excludes the revocation's own millisecond, so a login sent right
// after a reset, a password change or a logout-all — in the same millisecond — is refused by the
// session store as stale. The example re-reads the hash and retries once when the password is the
// current one: such a login is never told invalid_credentials. The clock stands still in these tests
// (the test clock only moves when told), so every login here shares its revocation's millisecond.

const USERS = 100;
const ROUNDS = 10;

backendSuite('a login right after a password reset (same millisecond)', (test) => {
  test(`${USERS * ROUNDS} resets, each followed at once by a login with the new password: all 200`, async ({
    redis,
    clock,
    prefix,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    const started = performance.now();
    try {
      const users = await Promise.all(
        Array.from({ length: USERS }, (_, i) => signUp(app.client(), `same-ms-${i}@example.com`)),
      );
      const statuses = new Map<number, number>();
      for (let round = 0; round < ROUNDS; round++) {
        // Between rounds only: past the 60 s resend cooldown (each reset asks from a fresh address, so
        // no per-address cap is met). Within a round the clock stands still.
        await advance(61_000);
        const now = clock.now();
        await Promise.all(
          users.map(async (user) => {
            const client: Client = app.client();
            const asked = await client.post('/auth/password-reset/request', { email: user.email });
            assert.is(asked.status, 202);
            const password = `new password ${round}`;
            const reset = await client.post('/auth/password-reset/confirm', {
              email: user.email,
              code: lastCode(app, user.email, 'password-reset'),
              newPassword: password,
            });
            assert.is(reset.status, 204);
            const login = await client.post('/auth/login', { email: user.email, password });
            statuses.set(login.status, (statuses.get(login.status) ?? 0) + 1);
            if (login.status === 200) {
              const me = await client.get('/auth/me', { bearer: login.body.accessToken, cookies: false });
              assert.is(me.status, 200, 'the retried session is alive');
            }
          }),
        );
        assert.is(clock.now(), now, 'reset and login shared the millisecond');
      }
      assert.equal([...statuses], [[200, USERS * ROUNDS]]);
      // The request log (method, path, status) shows no refused login.
      const logins = app.logs
        .map((line) => JSON.parse(line) as { path?: string; status?: number })
        .filter((line) => line.path === '/auth/login');
      assert.ok(logins.length >= USERS * ROUNDS, 'the request log holds every login');
      const refusedLogins = logins.filter((line) => line.status !== 200);
      assert.equal(refusedLogins, [], 'no refused login in the request log');
    } finally {
      await app.close();
      process.stdout.write(
        `\n  (${USERS * ROUNDS} resets + logins in ${Math.round(performance.now() - started)} ms)\n`,
      );
    }
  });
});

const others = routeSuite('a login right after a password change or a logout-all (same millisecond)');

others('a password change followed at once by a login with the new password: 200', async ({ app }) => {
  const owner = app.client();
  const user = await signUp(owner);
  const changed = await owner.post('/auth/password', {
    currentPassword: user.password,
    newPassword: 'the changed password',
  });
  assert.is(changed.status, 204);
  const login = await app
    .client()
    .post('/auth/login', { email: user.email, password: 'the changed password' });
  assert.is(login.status, 200);
  const old = await app.client().post('/auth/login', { email: user.email, password: user.password });
  assert.is(old.status, 401, 'the old password stays wrong');
});

others('a logout-all followed at once by a login: 200', async ({ app }) => {
  const owner = app.client();
  const user = await signUp(owner);
  assert.is((await owner.post('/auth/logout-all')).status, 204);
  const login = await owner.post('/auth/login', { email: user.email, password: user.password });
  assert.is(login.status, 200);
  assert.is((await owner.get('/auth/me')).status, 200);
});

others('a reset followed at once by a login with the OLD password: 401, never a session', async ({ app }) => {
  const owner = app.client();
  const user = await signUp(owner);
  await owner.post('/auth/password-reset/request', { email: user.email });
  const reset = await owner.post('/auth/password-reset/confirm', {
    email: user.email,
    code: lastCode(app, user.email, 'password-reset'),
    newPassword: 'the reset password',
  });
  assert.is(reset.status, 204);
  const other = app.client();
  const login = await other.post('/auth/login', { email: user.email, password: user.password });
  assert.is(login.status, 401);
  assert.is(login.body.error, 'invalid_credentials');
  assert.not.ok(other.jar.has('sid'));
});

others.run();
