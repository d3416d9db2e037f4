import { backendSuite } from '@latchkey/testing/backends';
import * as OTPAuth from 'otpauth';
import * as assert from 'uvu/assert';
import {
  type Client,
  lastCode,
  type Reply,
  routeSuite,
  signUp,
  startTestApp,
  type TestApp,
} from './helpers.js';
import { SoftAuthenticator } from './webauthn.js';

// The second-factor routes of HTTP-API.md §"Second factors and passkeys" (TOTP, recovery codes, email
// codes, the two-step login) and their error rows; the races and key hygiene on all three backends.

const MINUTE = 60_000;
const STEP = 30_000;

/** The TOTP code of `secret` at `at` (RFC 6238 with the contract's parameters), as an app computes it. */
function totpCode(secret: string, at: number): string {
  return OTPAuth.TOTP.generate({
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    timestamp: at,
  });
}

function assertRefused(reply: Reply, status: number, error: string): void {
  assert.is(reply.status, status, reply.text);
  assert.is(reply.body?.error, error, reply.text);
  assert.type(reply.body?.message, 'string');
}

type SignedUp = Awaited<ReturnType<typeof signUp>>;

interface TotpUser extends SignedUp {
  readonly secret: string;
  readonly recoveryCodes: string[];
}

/** A test's time: a route suite's clock, or a backend suite's clock with its `advance` (TTLs move too). */
interface Time {
  now(): number;
  advance(ms: number): unknown;
}

/** Signs up on `client` and turns TOTP on through setup + confirm; the clock then moves one step on. */
async function totpUser(
  app: TestApp,
  client: Client,
  time: Time,
  options: { verified?: boolean } = {},
): Promise<TotpUser> {
  const user = await signUp(client);
  if (options.verified === true) {
    assert.is((await client.post('/auth/verify-email/request')).status, 202);
    const code = lastCode(app, user.email, 'verify-email');
    assert.is((await client.post('/auth/verify-email/confirm', { code })).status, 200);
  }
  const setup = await client.post('/auth/mfa/totp/setup');
  assert.is(setup.status, 200, setup.text);
  const confirmed = await client.post('/auth/mfa/totp/confirm', {
    code: totpCode(setup.body.secret, time.now()),
  });
  assert.is(confirmed.status, 200, confirmed.text);
  // The confirmation's step is spent: a login code comes from the next one.
  await time.advance(STEP);
  return { ...user, secret: setup.body.secret, recoveryCodes: confirmed.body.recoveryCodes };
}

/** The password step of a TOTP account: asserts the mfaRequired shape and returns the mfaToken. */
async function passwordStep(client: Client, user: SignedUp): Promise<string> {
  const reply = await client.post('/auth/login', { email: user.email, password: user.password });
  assert.is(reply.status, 200, reply.text);
  assert.is(reply.body.mfaRequired, true);
  assert.type(reply.body.mfaToken, 'string');
  return reply.body.mfaToken;
}

/** The second step of a pending login with `user`'s TOTP code of the current step. */
function totpStep(client: Client, mfaToken: string, user: TotpUser, time: Time): Promise<Reply> {
  return client.post('/auth/login/mfa', {
    mfaToken,
    method: 'totp',
    code: totpCode(user.secret, time.now()),
  });
}

// --- TOTP setup and confirmation --------------------------------------------------------------------

const setup = routeSuite('TOTP setup, confirm, disable');

setup(
  'setup answers a base32 secret and its otpauth:// URI; TOTP is off until confirmed',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const reply = await client.post('/auth/mfa/totp/setup');
    assert.is(reply.status, 200, reply.text);
    assert.equal(Object.keys(reply.body).sort(), ['otpauthUri', 'secret']);
    assert.match(reply.body.secret, /^[A-Z2-7]{32}$/);
    assert.is(reply.headers.get('cache-control'), 'no-store');
    const uri = new URL(reply.body.otpauthUri);
    assert.is(uri.protocol, 'otpauth:');
    assert.is(uri.searchParams.get('secret'), reply.body.secret);
    assert.match(decodeURIComponent(uri.pathname), new RegExp(user.email.replace(/[.+]/g, '\\$&')));
    assert.equal((await client.get('/auth/me')).body.mfa, { totp: false, passkeys: 0 });
    // The login is unchanged until the setup is confirmed.
    const login = await app.client().post('/auth/login', { email: user.email, password: user.password });
    assert.type(login.body.accessToken, 'string');
    // The QR code of the pending setup, drawn on the server as SVG.
    const qr = await client.get('/auth/mfa/totp/setup/qr.svg');
    assert.is(qr.status, 200);
    assert.match(qr.headers.get('content-type') ?? '', /^image\/svg\+xml/);
    assert.match(qr.text, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  },
);

setup(
  'confirm with a valid code: 200 and 10 recovery codes; TOTP is on; other sessions are revoked',
  async ({ app, clock }) => {
    const client = app.client();
    const user = await signUp(client);
    const other = app.client();
    assert.is((await other.post('/auth/login', { email: user.email, password: user.password })).status, 200);
    const { secret } = (await client.post('/auth/mfa/totp/setup')).body;
    assertRefused(await client.post('/auth/mfa/totp/confirm', { code: '000000' }), 400, 'invalid_code');
    const reply = await client.post('/auth/mfa/totp/confirm', { code: totpCode(secret, clock.now()) });
    assert.is(reply.status, 200, reply.text);
    assert.is(reply.body.recoveryCodes.length, 10);
    assert.is(new Set(reply.body.recoveryCodes).size, 10);
    assert.is(reply.headers.get('cache-control'), 'no-store');
    assert.equal((await client.get('/auth/me')).body.mfa, { totp: true, passkeys: 0 });
    assert.is((await other.get('/auth/me')).status, 401, 'the other session was revoked');
    assertRefused(await client.post('/auth/mfa/totp/setup'), 409, 'mfa_already_enabled');
    assertRefused(
      await client.post('/auth/mfa/totp/confirm', { code: totpCode(secret, clock.now()) }),
      409,
      'no_pending_setup',
    );
  },
);

setup(
  'confirm without a setup is 409 no_pending_setup; a new setup replaces an unconfirmed one',
  async ({ app, clock }) => {
    const client = app.client();
    await signUp(client);
    assertRefused(await client.post('/auth/mfa/totp/confirm', { code: '123456' }), 409, 'no_pending_setup');
    const first = (await client.post('/auth/mfa/totp/setup')).body.secret;
    const second = (await client.post('/auth/mfa/totp/setup')).body.secret;
    assert.is.not(first, second);
    assertRefused(
      await client.post('/auth/mfa/totp/confirm', { code: totpCode(first, clock.now()) }),
      400,
      'invalid_code',
    );
    clock.advance(STEP);
    assert.is(
      (await client.post('/auth/mfa/totp/confirm', { code: totpCode(second, clock.now()) })).status,
      200,
    );
  },
);

setup('an unconfirmed setup expires after 15 minutes', async ({ app, clock }) => {
  const client = app.client();
  await signUp(client);
  const { secret } = (await client.post('/auth/mfa/totp/setup')).body;
  clock.advance(15 * MINUTE + 1);
  assertRefused(
    await client.post('/auth/mfa/totp/confirm', { code: totpCode(secret, clock.now()) }),
    409,
    'no_pending_setup',
  );
});

setup(
  'setup and disable need a fresh authentication; confirm and every route need one at all',
  async ({ app, clock }) => {
    for (const [method, path] of [
      ['POST', '/auth/mfa/totp/setup'],
      ['POST', '/auth/mfa/totp/confirm'],
      ['DELETE', '/auth/mfa/totp'],
      ['POST', '/auth/mfa/recovery-codes'],
    ] as const) {
      assertRefused(
        await app.client().request(method, path, { json: { code: '123456' } }),
        401,
        'unauthenticated',
      );
    }
    const client = app.client();
    await totpUser(app, client, clock);
    clock.advance(11 * MINUTE);
    for (const [method, path] of [
      ['DELETE', '/auth/mfa/totp'],
      ['POST', '/auth/mfa/recovery-codes'],
    ] as const) {
      const stale = await client.request(method, path, { json: { code: '123456' } });
      assertRefused(stale, 401, 'reauthentication_required');
      assert.is(
        stale.headers.get('www-authenticate'),
        'Bearer error="insufficient_user_authentication", max_age=600',
      );
    }
  },
);

setup(
  'disable with a TOTP code or a recovery code: 204, TOTP off, other sessions revoked; a bad code is 400',
  async ({ app, clock }) => {
    const client = app.client();
    const user = await totpUser(app, client, clock);
    const other = app.client();
    const token = await passwordStep(other, user);
    assert.is((await totpStep(other, token, user, clock)).status, 200);
    clock.advance(STEP);
    for (const code of ['000000', 'AAAA-BBBB-CCCC-DDDD', '１２３４５６', '']) {
      assertRefused(await client.delete('/auth/mfa/totp', { json: { code } }), 400, 'invalid_code');
    }
    assertRefused(await client.delete('/auth/mfa/totp', { json: {} }), 400, 'invalid_request');
    assert.is(
      (await client.delete('/auth/mfa/totp', { json: { code: totpCode(user.secret, clock.now()) } })).status,
      204,
    );
    assert.equal((await client.get('/auth/me')).body.mfa, { totp: false, passkeys: 0 });
    assert.is((await other.get('/auth/me')).status, 401, 'the other session was revoked');
    assertRefused(await client.delete('/auth/mfa/totp', { json: { code: '123456' } }), 404, 'not_found');
    // Logins are one step again, and the old recovery codes are gone with TOTP.
    const login = await app.client().post('/auth/login', { email: user.email, password: user.password });
    assert.type(login.body.accessToken, 'string');

    // Again, disabled with a recovery code this time.
    clock.advance(STEP);
    const { secret } = (await client.post('/auth/mfa/totp/setup')).body;
    const codes = (await client.post('/auth/mfa/totp/confirm', { code: totpCode(secret, clock.now()) })).body
      .recoveryCodes as string[];
    assertRefused(
      await client.delete('/auth/mfa/totp', { json: { code: user.recoveryCodes[0] } }),
      400,
      'invalid_code',
    );
    assert.is((await client.delete('/auth/mfa/totp', { json: { code: codes[0] } })).status, 204);
  },
);

setup(
  'recovery codes are replaced on request (the old ones stop working); 404 without TOTP',
  async ({ app, clock }) => {
    const client = app.client();
    const plain = app.client();
    await signUp(plain);
    assertRefused(await plain.post('/auth/mfa/recovery-codes'), 404, 'not_found');
    const user = await totpUser(app, client, clock);
    const reply = await client.post('/auth/mfa/recovery-codes');
    assert.is(reply.status, 200);
    assert.is(reply.body.recoveryCodes.length, 10);
    const browser = app.client();
    const token = await passwordStep(browser, user);
    assertRefused(
      await browser.post('/auth/login/mfa', {
        mfaToken: token,
        method: 'recovery-code',
        code: user.recoveryCodes[0],
      }),
      400,
      'invalid_code',
    );
    const fresh = await browser.post('/auth/login/mfa', {
      mfaToken: token,
      method: 'recovery-code',
      code: reply.body.recoveryCodes[0],
    });
    assert.is(fresh.status, 200, fresh.text);
  },
);

setup.run();

const shortFresh = routeSuite('FRESH_AUTH_SECONDS', { FRESH_AUTH_SECONDS: '120' });

shortFresh(
  'sets how recent a login must be for the fresh routes, and the challenge says so',
  async ({ app, clock }) => {
    const client = app.client();
    await signUp(client);
    clock.advance(119_000);
    assert.is((await client.post('/auth/mfa/totp/setup')).status, 200);
    clock.advance(1000);
    const stale = await client.post('/auth/mfa/totp/setup');
    assertRefused(stale, 401, 'reauthentication_required');
    assert.is(
      stale.headers.get('www-authenticate'),
      'Bearer error="insufficient_user_authentication", max_age=120',
    );
  },
);

shortFresh.run();

const limited = routeSuite('the password step of a TOTP account and the login limiter', {
  LOGIN_MAX_FAILURES: '3',
});

limited('counts its failures and its success exactly as a login does', async ({ app, clock }) => {
  const user = await totpUser(app, app.client(), clock);
  const client = app.client();
  const wrong = () => client.post('/auth/login', { email: user.email, password: 'not the password' });
  assertRefused(await wrong(), 401, 'invalid_credentials');
  assertRefused(await wrong(), 401, 'invalid_credentials');
  // The right password (answered mfaRequired) is a success: it clears the account's failures.
  await passwordStep(client, user);
  for (let i = 0; i < 3; i++) assertRefused(await wrong(), 401, 'invalid_credentials');
  const blocked = await client.post('/auth/login', { email: user.email, password: user.password });
  assertRefused(blocked, 429, 'too_many_attempts');
  assert.match(blocked.headers.get('retry-after') ?? '', /^\d+$/);
});

limited.run();

// --- the two-step login -----------------------------------------------------------------------------

const login = routeSuite('POST /auth/login with TOTP, POST /auth/login/mfa');

login(
  'a correct password answers mfaRequired with an mfaToken: no tokens, no cookie',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock);
    const client = app.client();
    const reply = await client.post('/auth/login', { email: user.email, password: user.password });
    assert.is(reply.status, 200);
    assert.equal(Object.keys(reply.body).sort(), ['expiresIn', 'methods', 'mfaRequired', 'mfaToken']);
    assert.equal(reply.body.methods, ['totp', 'recovery-code'], 'no email: the address is not verified');
    assert.is(reply.body.expiresIn, 300);
    assert.is(reply.headers.get('cache-control'), 'no-store');
    assert.equal(reply.setCookies, []);
    assert.is((await client.get('/auth/me')).status, 401);
    assertRefused(
      await client.post('/auth/login', { email: user.email, password: 'wrong password' }),
      401,
      'invalid_credentials',
    );
  },
);

login(
  'the TOTP step logs in: the login shape, the cookie, amr [pwd, otp, mfa], a fresh session',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock);
    clock.advance(4 * MINUTE);
    const client = app.client();
    const mfaToken = await passwordStep(client, user);
    clock.advance(4 * MINUTE);
    const reply = await totpStep(client, mfaToken, user, clock);
    assert.is(reply.status, 200, reply.text);
    assert.equal(Object.keys(reply.body).sort(), ['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
    assert.ok(client.jar.has('sid'));
    const me = await client.get('/auth/me');
    assert.equal(me.body.amr, ['pwd', 'otp', 'mfa']);
    assert.equal(me.body.mfa, { totp: true, passkeys: 0 });
    const bearer = await app.client().get('/auth/me', { bearer: reply.body.accessToken });
    assert.equal(bearer.body.amr, ['pwd', 'otp', 'mfa'], 'the access token signs the amr');
    // Fresh from the second factor (the password was checked 4 minutes before it).
    clock.advance(9 * MINUTE);
    assert.is(
      (await client.post('/auth/mfa/recovery-codes')).status,
      200,
      'still fresh 9 min after the TOTP step',
    );
    // The mfaToken is spent.
    clock.advance(STEP);
    assertRefused(await totpStep(client, mfaToken, user, clock), 401, 'invalid_mfa_token');
  },
);

login(
  'a TOTP code is accepted once: not again, not an earlier step, not through another mfaToken',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock);
    const code = totpCode(user.secret, clock.now());
    const earlier = totpCode(user.secret, clock.now() - STEP);
    const first = app.client();
    assert.is(
      (
        await first.post('/auth/login/mfa', {
          mfaToken: await passwordStep(first, user),
          method: 'totp',
          code,
        })
      ).status,
      200,
    );
    const second = app.client();
    const token = await passwordStep(second, user);
    assertRefused(
      await second.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code }),
      400,
      'invalid_code',
    );
    assertRefused(
      await second.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code: earlier }),
      400,
      'invalid_code',
    );
    // The next step's code (±1 step) is accepted.
    const next = totpCode(user.secret, clock.now() + STEP);
    assert.is(
      (await second.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code: next })).status,
      200,
    );
  },
);

login(
  'codes two steps away, letters, 7 digits, unicode digits and empty codes are 400 invalid_code',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock);
    const client = app.client();
    const bad = [
      totpCode(user.secret, clock.now() - 2 * STEP),
      totpCode(user.secret, clock.now() + 2 * STEP),
      'abcdef',
    ];
    for (const code of bad) {
      const token = await passwordStep(client, user);
      assertRefused(
        await client.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code }),
        400,
        'invalid_code',
      );
    }
    const token = await passwordStep(client, user);
    const good = totpCode(user.secret, clock.now());
    for (const code of [`${good}7`, '١٢٣٤٥٦']) {
      assertRefused(
        await client.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code }),
        400,
        'invalid_code',
      );
    }
    assert.is(
      (await client.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code: good })).status,
      200,
    );
  },
);

login(
  'malformed requests are 400 invalid_request and spend no attempt; an unknown token is 401',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock);
    const client = app.client();
    const mfaToken = await passwordStep(client, user);
    const code = totpCode(user.secret, clock.now());
    const malformed: unknown[] = [
      {},
      { mfaToken, method: 'totp' },
      { mfaToken, code },
      { method: 'totp', code },
      { mfaToken, method: 'sms', code },
      { mfaToken, method: 'totp', code: 123456 },
      { mfaToken: 42, method: 'totp', code },
      { mfaToken, method: ['totp'], code },
      { mfaToken, method: 'totp', code: '1'.repeat(10 * 1024) },
      { mfaToken: 'x'.repeat(10 * 1024), method: 'totp', code },
      [mfaToken],
    ];
    for (const body of malformed) {
      assertRefused(await client.post('/auth/login/mfa', body), 400, 'invalid_request');
    }
    for (const token of ['', 'garbage', `${mfaToken}x`, mfaToken.slice(0, -1), 'm1.a.b']) {
      assertRefused(
        await client.post('/auth/login/mfa', { mfaToken: token, method: 'totp', code }),
        401,
        'invalid_mfa_token',
      );
    }
    assertRefused(
      await client.post('/auth/login/mfa/email', { mfaToken: 'garbage' }),
      401,
      'invalid_mfa_token',
    );
    assertRefused(await client.post('/auth/login/mfa/email', {}), 400, 'invalid_request');
    // None of it spent an attempt: the token still works.
    assert.is((await client.post('/auth/login/mfa', { mfaToken, method: 'totp', code })).status, 200);
    assert.not.ok(
      app.logs.some((line) => /"status":5\d\d/.test(line)),
      'no 5xx',
    );
  },
);

login(
  'the 5th wrong code burns the mfaToken; the 11th failure across tokens locks the account',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock);
    const client = app.client();
    const first = await passwordStep(client, user);
    for (let i = 0; i < 5; i++) {
      assertRefused(
        await client.post('/auth/login/mfa', { mfaToken: first, method: 'totp', code: '000000' }),
        400,
        'invalid_code',
      );
    }
    const code = () => totpCode(user.secret, clock.now());
    assertRefused(
      await client.post('/auth/login/mfa', { mfaToken: first, method: 'totp', code: code() }),
      401,
      'invalid_mfa_token',
    );
    const second = await passwordStep(client, user);
    for (let i = 0; i < 5; i++) {
      assertRefused(
        await client.post('/auth/login/mfa', { mfaToken: second, method: 'totp', code: '000000' }),
        400,
        'invalid_code',
      );
    }
    // Ten failures in 24 h: the account's second-factor checks are locked, even for a right code.
    const third = await passwordStep(client, user);
    const locked = await client.post('/auth/login/mfa', { mfaToken: third, method: 'totp', code: code() });
    assertRefused(locked, 400, 'invalid_code');
    assert.match(locked.headers.get('retry-after') ?? '', /^\d+$/);
    clock.advance(24 * 60 * MINUTE);
    const fourth = await passwordStep(client, user);
    assert.is(
      (await client.post('/auth/login/mfa', { mfaToken: fourth, method: 'totp', code: code() })).status,
      200,
    );
  },
);

login('an mfaToken expires after 5 minutes', async ({ app, clock }) => {
  const user = await totpUser(app, app.client(), clock);
  const client = app.client();
  const mfaToken = await passwordStep(client, user);
  clock.advance(5 * MINUTE + 1);
  assertRefused(await totpStep(client, mfaToken, user, clock), 401, 'invalid_mfa_token');
});

login(
  "a password reset, a password change and logout-all spend the user's mfaTokens",
  async ({ app, clock }) => {
    const owner = app.client();
    const user = await totpUser(app, owner, clock);
    const attacker = app.client();
    const code = () => totpCode(user.secret, clock.now());

    let mfaToken = await passwordStep(attacker, user);
    clock.advance(1);
    assert.is((await owner.post('/auth/logout-all')).status, 204);
    assertRefused(
      await attacker.post('/auth/login/mfa', { mfaToken, method: 'totp', code: code() }),
      401,
      'invalid_mfa_token',
    );

    // A reset, by the emailed code.
    clock.advance(STEP);
    mfaToken = await passwordStep(attacker, user);
    clock.advance(1);
    assert.is((await app.client().post('/auth/password-reset/request', { email: user.email })).status, 202);
    const resetCode = lastCode(app, user.email, 'password-reset');
    const newPassword = 'a brand new password';
    assert.is(
      (
        await app
          .client()
          .post('/auth/password-reset/confirm', { email: user.email, code: resetCode, newPassword })
      ).status,
      204,
    );
    assertRefused(
      await attacker.post('/auth/login/mfa', { mfaToken, method: 'totp', code: code() }),
      401,
      'invalid_mfa_token',
    );

    // A change, from a session of the owner's.
    clock.advance(STEP);
    const current = { ...user, password: newPassword };
    const ownerToken = await passwordStep(owner, current);
    assert.is(
      (await owner.post('/auth/login/mfa', { mfaToken: ownerToken, method: 'totp', code: code() })).status,
      200,
    );
    clock.advance(STEP);
    mfaToken = await passwordStep(attacker, current);
    clock.advance(1);
    assert.is(
      (
        await owner.post('/auth/password', {
          currentPassword: newPassword,
          newPassword: 'yet another password',
        })
      ).status,
      204,
    );
    assertRefused(
      await attacker.post('/auth/login/mfa', { mfaToken, method: 'totp', code: code() }),
      401,
      'invalid_mfa_token',
    );
  },
);

login(
  "a recovery code completes a login once; another account's mfaToken does not take this account's code",
  async ({ app, clock }) => {
    const alice = await totpUser(app, app.client(), clock);
    const bob = await totpUser(app, app.client(), clock);
    const client = app.client();
    const bobs = await passwordStep(client, bob);
    assertRefused(
      await client.post('/auth/login/mfa', {
        mfaToken: bobs,
        method: 'recovery-code',
        code: alice.recoveryCodes[0],
      }),
      400,
      'invalid_code',
    );
    const token = await passwordStep(client, alice);
    const used = await client.post('/auth/login/mfa', {
      mfaToken: token,
      method: 'recovery-code',
      code: alice.recoveryCodes[0],
    });
    assert.is(used.status, 200, used.text);
    assert.equal((await client.get('/auth/me')).body.amr, ['pwd', 'otp', 'mfa']);
    const again = await passwordStep(app.client(), alice);
    assertRefused(
      await app
        .client()
        .post('/auth/login/mfa', { mfaToken: again, method: 'recovery-code', code: alice.recoveryCodes[0] }),
      400,
      'invalid_code',
    );
  },
);

login(
  'a verified address adds the email method: a 2fa code goes to the outbox and completes only its own login',
  async ({ app, clock }) => {
    const user = await totpUser(app, app.client(), clock, { verified: true });
    const client = app.client();
    const reply = await client.post('/auth/login', { email: user.email, password: user.password });
    assert.equal(reply.body.methods, ['totp', 'recovery-code', 'email']);
    const first = reply.body.mfaToken as string;
    const sent = await client.post('/auth/login/mfa/email', { mfaToken: first });
    assert.is(sent.status, 202);
    assert.equal(sent.body, { status: 'sent' });
    const code = lastCode(app, user.email, '2fa');
    assert.match(code, /^\d{6}$/);
    const outbox = await app.client().get(`/dev/outbox?to=${encodeURIComponent(user.email)}`);
    assert.ok(outbox.body.messages.some((m: { purpose: string }) => m.purpose === '2fa'));
    // Inside the cooldown: 429 with Retry-After.
    const again = await client.post('/auth/login/mfa/email', { mfaToken: first });
    assertRefused(again, 429, 'too_many_attempts');
    assert.match(again.headers.get('retry-after') ?? '', /^\d+$/);
    // Another pending login of the same user does not take this code.
    const other = app.client();
    const second = await passwordStep(other, user);
    assertRefused(
      await other.post('/auth/login/mfa', { mfaToken: second, method: 'email', code }),
      400,
      'invalid_code',
    );
    const done = await client.post('/auth/login/mfa', { mfaToken: first, method: 'email', code });
    assert.is(done.status, 200, done.text);
    assert.equal((await client.get('/auth/me')).body.amr, ['pwd', 'otp', 'mfa']);
  },
);

login('the email method is refused for an unverified address', async ({ app, clock }) => {
  const user = await totpUser(app, app.client(), clock);
  const client = app.client();
  const mfaToken = await passwordStep(client, user);
  assertRefused(await client.post('/auth/login/mfa/email', { mfaToken }), 401, 'invalid_mfa_token');
  assert.equal(
    app.outbox?.list(user.email).filter((m) => m.purpose === '2fa'),
    [],
  );
});

login(
  'a passkey satisfies the second factor: a TOTP account signs in with one in one step',
  async ({ app, clock }) => {
    const owner = app.client();
    await totpUser(app, owner, clock, { verified: true });
    const key = new SoftAuthenticator(app.url);
    const options = await owner.post('/auth/passkeys/register/options');
    assert.is(options.status, 200, options.text);
    assert.is((await owner.post('/auth/passkeys/register/verify', key.register(options.body))).status, 201);
    const browser = app.client();
    const begun = await browser.post('/auth/passkeys/login/options');
    const login = await browser.post('/auth/passkeys/login/verify', key.authenticate(begun.body));
    assert.is(login.status, 200, login.text);
    assert.type(login.body.accessToken, 'string');
    const me = await browser.get('/auth/me');
    assert.equal(me.body.amr, ['hwk', 'mfa']);
    assert.equal(me.body.mfa, { totp: true, passkeys: 1 });
  },
);

login('accounts without a second factor log in as before (one step, amr [pwd])', async ({ app }) => {
  const client = app.client();
  const user = await signUp(client);
  const reply = await client.post('/auth/login', { email: user.email, password: user.password });
  assert.equal(Object.keys(reply.body).sort(), ['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
  assert.equal((await client.get('/auth/me')).body.amr, ['pwd']);
});

login(
  "a TOTP account logging in with its new password in its reset's own millisecond gets mfaRequired, never 401 (issue 19 retry)",
  async ({ app, clock }) => {
    const owner = app.client();
    const user = await totpUser(app, owner, clock);
    clock.advance(61_000);
    assert.is((await app.client().post('/auth/password-reset/request', { email: user.email })).status, 202);
    const newPassword = 'reset in the same millisecond';
    const now = clock.now();
    const reset = await app.client().post('/auth/password-reset/confirm', {
      email: user.email,
      code: lastCode(app, user.email, 'password-reset'),
      newPassword,
    });
    assert.is(reset.status, 204);
    const browser = app.client();
    // Without the retry the pending login is refused as stale (begun in the mark's millisecond): 401.
    const mfaToken = await passwordStep(browser, { ...user, password: newPassword });
    assert.is(clock.now(), now, 'the reset and the password step shared the millisecond');
    const done = await totpStep(browser, mfaToken, user, clock);
    assert.is(done.status, 200, done.text);
  },
);

login.run();

// --- races and key hygiene on every backend ---------------------------------------------------------

backendSuite('second factors over HTTP', (test) => {
  test('20 parallel correct submissions of one TOTP code make exactly one session', async ({
    redis,
    clock,
    prefix,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const user = await totpUser(app, app.client(), { now: () => clock.now(), advance });
      const client = app.client();
      const mfaToken = await passwordStep(client, user);
      const code = totpCode(user.secret, clock.now());
      const replies = await Promise.all(
        Array.from({ length: 20 }, () =>
          app.client().post('/auth/login/mfa', { mfaToken, method: 'totp', code }),
        ),
      );
      assert.is(replies.filter((r) => r.status === 200).length, 1);
      assert.ok(replies.every((r) => r.status === 200 || r.status === 401 || r.status === 400));
      // Twenty pending logins, one code: still one.
      await advance(STEP);
      const tokens = await Promise.all(Array.from({ length: 20 }, () => passwordStep(app.client(), user)));
      const next = totpCode(user.secret, clock.now());
      const many = await Promise.all(
        tokens.map((token) =>
          app.client().post('/auth/login/mfa', { mfaToken: token, method: 'totp', code: next }),
        ),
      );
      assert.is(many.filter((r) => r.status === 200).length, 1);
    } finally {
      await app.close();
    }
  });

  test('20 parallel confirmations make one set of recovery codes; a recovery code is used once under races', async ({
    redis,
    clock,
    prefix,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const client = app.client();
      await signUp(client);
      const { secret } = (await client.post('/auth/mfa/totp/setup')).body;
      const code = totpCode(secret, clock.now());
      const confirms = await Promise.all(
        Array.from({ length: 20 }, () => client.post('/auth/mfa/totp/confirm', { code })),
      );
      const ok = confirms.filter((r) => r.status === 200);
      assert.is(ok.length, 1);
      const recovery = ok[0]?.body.recoveryCodes[0] as string;
      await advance(STEP);
      const user = { ...(await client.get('/auth/me')).body, password: 'correct horse battery' };
      const tokens = await Promise.all(Array.from({ length: 20 }, () => passwordStep(app.client(), user)));
      const used = await Promise.all(
        tokens.map((token) =>
          app.client().post('/auth/login/mfa', { mfaToken: token, method: 'recovery-code', code: recovery }),
        ),
      );
      assert.is(used.filter((r) => r.status === 200).length, 1);
    } finally {
      await app.close();
    }
  });

  test('no TOTP secret, code or mfaToken in clear in Redis; only the user and its email index live without a TTL', async ({
    redis,
    clock,
    prefix,
    dump,
    keysWithoutTtl,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const client = app.client();
      const user = await totpUser(app, client, { now: () => clock.now(), advance }, { verified: true });
      const browser = app.client();
      const mfaToken = await passwordStep(browser, user);
      assert.is((await browser.post('/auth/login/mfa/email', { mfaToken })).status, 202);
      const emailed = lastCode(app, user.email, '2fa');
      // Everything Redis holds, as text.
      const text = (await dump()).map((entry) => `${entry.key} ${entry.content}`).join('\n');
      const secretTail = mfaToken.slice(mfaToken.lastIndexOf('.') + 1);
      for (const [what, value] of [
        ['the TOTP secret', user.secret],
        ['the mfaToken', secretTail],
        ['a recovery code', user.recoveryCodes[1] as string],
        ['the same code without dashes', (user.recoveryCodes[1] as string).replace(/-/g, '')],
        ['the 2fa email code', emailed],
      ] as const) {
        assert.not.ok(text.includes(value), `${what} is not stored in clear`);
      }
      assert.match(text, /"ts":"sb1\./, 'the user record keeps the TOTP secret sealed');
      await advance(2 * 24 * 60 * MINUTE);
      const left = (await keysWithoutTtl()).sort();
      assert.is(left.length, 2, `the user and its email index: ${left.join(', ')}`);
    } finally {
      await app.close();
    }
  });
});
