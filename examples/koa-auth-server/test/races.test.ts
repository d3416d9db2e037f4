import { generateDevelopmentKey, ServerSecret } from '@latchkey/core';
import { createFakeRedis, TestClock } from '@latchkey/testing';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type PasswordChecker, PasswordHasher } from '../src/passwords.js';
import { FAST_HASHING, lastCode, type Reply, signUp, startTestApp, type TestApp } from './helpers.js';

// A credential check takes a while (argon2id: tens of ms). Whatever lands while it runs — a password
// reset, a password change, a logout-all — must win: the login or change that checked the old
// password cannot leave a session or a password behind. The checks here are paused at will, and the
// clock stands still unless a test moves it (so "the same millisecond" is the default case).

/** argon2id that can hold one check after it computed its answer, until released. */
class PausableHasher implements PasswordChecker {
  readonly #inner = new PasswordHasher(FAST_HASHING);
  #gate: { readonly entered: () => void; readonly released: Promise<void> } | null = null;

  /** Holds the next check; `entered` resolves once it has run (against the hash it was given). */
  pauseNextCheck(): { entered: Promise<void>; release: () => void } {
    let entered = (): void => undefined;
    let release = (): void => undefined;
    const enteredPromise = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#gate = { entered, released };
    return { entered: enteredPromise, release };
  }

  hash(password: string): Promise<string> {
    return this.#inner.hash(password);
  }

  async verify(stored: string | undefined, password: string): Promise<boolean> {
    const answer = await this.#inner.verify(stored, password);
    const gate = this.#gate;
    if (gate !== null) {
      this.#gate = null;
      gate.entered();
      await gate.released;
    }
    return answer;
  }
}

interface Ctx {
  app: TestApp;
  clock: TestClock;
  hasher: PausableHasher;
}

const race = suite<Ctx>('races with a credential check in flight');
race.before.each(async (ctx) => {
  ctx.clock = new TestClock();
  ctx.clock.install();
  ctx.hasher = new PausableHasher();
  ctx.app = await startTestApp({ clock: ctx.clock, passwordHasher: ctx.hasher });
});
race.after.each(async (ctx) => {
  await ctx.app.close();
  ctx.clock.restore();
});

/** Starts `request` with the next credential check held; resolves once the check has run. */
async function held(
  hasher: PausableHasher,
  request: () => Promise<Reply>,
): Promise<{ release: () => Promise<Reply> }> {
  const gate = hasher.pauseNextCheck();
  const reply = request();
  await gate.entered;
  return {
    release: () => {
      gate.release();
      return reply;
    },
  };
}

async function resetPassword(app: TestApp, email: string, newPassword: string): Promise<void> {
  const requested = await app.client().post('/auth/password-reset/request', { email });
  assert.is(requested.status, 202);
  const confirmed = await app.client().post('/auth/password-reset/confirm', {
    email,
    code: lastCode(app, email, 'password-reset'),
    newPassword,
  });
  assert.is(confirmed.status, 204);
}

/** How many sessions the user has besides a fresh one (logged in a millisecond after the race). */
async function liveSessions(ctx: Ctx, email: string, password: string): Promise<number> {
  const { app, clock } = ctx;
  clock.advance(1);
  const client = app.client();
  const login = await client.post('/auth/login', { email, password });
  assert.is(login.status, 200, 'a fresh login works');
  return (await client.get('/auth/sessions')).body.sessions.length - 1;
}

for (const [when, ms] of [
  ['in the same millisecond', 0],
  ['a second later', 1000],
] as const) {
  race(`a login that checked the old password loses to a password reset ${when}`, async (ctx) => {
    const { app, clock, hasher } = ctx;
    const user = await signUp(app.client());
    const attacker = app.client();
    const login = await held(hasher, () =>
      attacker.post('/auth/login', { email: user.email, password: user.password }),
    );
    clock.advance(ms);
    await resetPassword(app, user.email, 'the owner’s new password');
    const reply = await login.release();
    assert.is(reply.status, 401);
    assert.is(reply.body.error, 'invalid_credentials');
    assert.not.ok(attacker.jar.has('sid'), 'no session cookie');
    assert.is(await liveSessions(ctx, user.email, 'the owner’s new password'), 0, 'no session survived');
  });

  race(`a login that checked the old password loses to a password change ${when}`, async (ctx) => {
    const { app, clock, hasher } = ctx;
    const owner = app.client();
    const user = await signUp(owner);
    const attacker = app.client();
    const login = await held(hasher, () =>
      attacker.post('/auth/login', { email: user.email, password: user.password }),
    );
    clock.advance(ms);
    const changed = await owner.post('/auth/password', {
      currentPassword: user.password,
      newPassword: 'the owner’s new password',
    });
    assert.is(changed.status, 204);
    const reply = await login.release();
    assert.is(reply.status, 401);
    assert.not.ok(attacker.jar.has('sid'));
    // The owner's own session is the one that stays.
    assert.is(await liveSessions(ctx, user.email, 'the owner’s new password'), 1);
  });

  race(`a password change that checked the old password loses to a reset ${when}`, async (ctx) => {
    const { app, clock, hasher } = ctx;
    const attacker = app.client();
    const user = await signUp(attacker); // the attacker knows the password and holds a session
    const change = await held(hasher, () =>
      attacker.post('/auth/password', { currentPassword: user.password, newPassword: 'the attacker’s pw' }),
    );
    clock.advance(ms);
    await resetPassword(app, user.email, 'the owner’s new password');
    const reply = await change.release();
    assert.is.not(reply.status, 204, 'the change did not go through');
    assert.ok(reply.status === 401 || reply.status === 403, String(reply.status));
    const withAttackers = await app.client().post('/auth/login', {
      email: user.email,
      password: 'the attacker’s pw',
    });
    assert.is(withAttackers.status, 401, 'the reset’s password stands');
    assert.is(await liveSessions(ctx, user.email, 'the owner’s new password'), 0);
  });
}

race('a login whose check began before a logout-all cannot create a session', async (ctx) => {
  const { app, clock, hasher } = ctx;
  const owner = app.client();
  const user = await signUp(owner);
  const other = app.client();
  const login = await held(hasher, () =>
    other.post('/auth/login', { email: user.email, password: user.password }),
  );
  clock.advance(1);
  assert.is((await owner.post('/auth/logout-all')).status, 204);
  const reply = await login.release();
  assert.is(reply.status, 401);
  assert.not.ok(other.jar.has('sid'));
  clock.advance(1);
  assert.is(await liveSessions(ctx, user.email, user.password), 0);
});

race('without a race the same paused login succeeds (the pause itself changes nothing)', async (ctx) => {
  const { app, hasher } = ctx;
  const user = await signUp(app.client());
  const client = app.client();
  const login = await held(hasher, () =>
    client.post('/auth/login', { email: user.email, password: user.password }),
  );
  const reply = await login.release();
  assert.is(reply.status, 200);
  assert.ok(client.jar.has('sid'));
});

race.run();

const skew = suite('races across servers whose clocks differ');

skew('a login on a server whose clock is ahead of the one that reset the password still loses', async () => {
  const clock = new TestClock();
  clock.install();
  const redis = createFakeRedis();
  // Two servers of one deployment: the same keys, the same Redis, clocks 10 s apart.
  const env = {
    PASETO_SECRET_KEY: (await generateDevelopmentKey()).secret,
    LATCHKEY_SECRET: ServerSecret.generateText(),
  };
  const hasher = new PausableHasher();
  const ahead = await startTestApp({
    env,
    redis,
    clock: { now: () => clock.now() + 10_000 },
    passwordHasher: hasher,
  });
  const behind = await startTestApp({ env, redis, clock });
  try {
    const user = await signUp(behind.client());
    const attacker = ahead.client();
    const login = await held(hasher, () =>
      attacker.post('/auth/login', { email: user.email, password: user.password }),
    );
    clock.advance(1000);
    await resetPassword(behind, user.email, 'the owner’s new password');
    // Its revoke-before mark (behind's clock) is earlier than the login's authenticatedAt (ahead's).
    const reply = await login.release();
    assert.is(reply.status, 401);
    assert.not.ok(attacker.jar.has('sid'));
    clock.advance(20_000);
    assert.is(await liveSessions({ app: behind, clock, hasher }, user.email, 'the owner’s new password'), 0);
  } finally {
    await ahead.close();
    await behind.close();
    redis.disconnect();
    clock.restore();
  }
});

skew.run();
