import { backendSuite } from '@latchkey/testing/backends';
import * as assert from 'uvu/assert';
import {
  type Client,
  lastCode,
  type Reply,
  replaceScript,
  routeSuite,
  signUp,
  startTestApp,
  type TestApp,
} from './helpers.js';
import { SoftAuthenticator } from './webauthn.js';

const MINUTE = 60_000;

/** A signed-up user with a verified email, logged in on `client`. */
async function verifiedUser(app: TestApp, client: Client): Promise<Awaited<ReturnType<typeof signUp>>> {
  const user = await signUp(client);
  assert.is((await client.post('/auth/verify-email/request')).status, 202);
  const code = lastCode(app, user.email, 'verify-email');
  assert.is((await client.post('/auth/verify-email/confirm', { code })).status, 200);
  return user;
}

/** Registers a passkey on `authenticator` through the routes; returns the 201 reply. */
async function addPasskey(client: Client, authenticator: SoftAuthenticator): Promise<Reply> {
  const options = await client.post('/auth/passkeys/register/options');
  assert.is(options.status, 200, options.text);
  return client.post('/auth/passkeys/register/verify', authenticator.register(options.body));
}

/** A passwordless login attempt: options (which sets the attempt cookie), then the signed answer. */
async function passkeyLogin(
  client: Client,
  authenticator: SoftAuthenticator,
  overrides: Parameters<SoftAuthenticator['authenticate']>[1] = {},
): Promise<Reply> {
  const options = await client.post('/auth/passkeys/login/options');
  assert.is(options.status, 200, options.text);
  return client.post('/auth/passkeys/login/verify', authenticator.authenticate(options.body, overrides));
}

async function listed(client: Client): Promise<string[]> {
  const reply = await client.get('/auth/passkeys');
  assert.is(reply.status, 200);
  return reply.body.passkeys.map((p: { id: string }) => p.id);
}

function assertRefused(reply: Reply, status: number, error: string): void {
  assert.is(reply.status, status, reply.text);
  assert.is(reply.body?.error, error, reply.text);
  assert.type(reply.body?.message, 'string');
}

/**
 * Each body is 400 invalid_request, and so are a form body and broken JSON; a 1 MiB body is 413; no
 * answer was a 5xx.
 */
async function assertMalformedRefused(
  app: TestApp,
  client: Client,
  path: string,
  bodies: readonly unknown[],
  good: Record<string, unknown>,
): Promise<void> {
  for (const body of bodies) {
    const reply = await client.post(path, body);
    assert.is(reply.status, 400, `${JSON.stringify(body)?.slice(0, 80)}: ${reply.text}`);
    assert.is(reply.body.error, 'invalid_request');
  }
  assertRefused(
    await client.post(path, undefined, { form: { id: String(good['id']) } }),
    400,
    'invalid_request',
  );
  const json = { 'content-type': 'application/json' };
  assertRefused(
    await client.post(path, undefined, { body: '{"id":', headers: json }),
    400,
    'invalid_request',
  );
  const huge = JSON.stringify({ ...good, pad: 'x'.repeat(1024 * 1024) });
  assertRefused(await client.post(path, undefined, { body: huge, headers: json }), 413, 'payload_too_large');
  assert.not.ok(
    app.logs.some((line) => /"status":5\d\d/.test(line)),
    'no 5xx was answered',
  );
}

// ---------------------------------------------------------------------------------------------------

const flow = routeSuite('passkeys: register, list, log in, remove');

flow('a registered passkey logs in without a password and shows in the list', async ({ app }) => {
  const client = app.client();
  const user = await verifiedUser(app, client);
  const key = new SoftAuthenticator(app.url);
  const added = await addPasskey(client, key);
  assert.is(added.status, 201, added.text);
  assert.is(added.body.id, key.id);
  assert.match(added.body.createdAt, /^\d{4}-\d\d-\d\dT/);

  const list = await client.get('/auth/passkeys');
  assert.equal(list.body.passkeys, [{ id: key.id, createdAt: added.body.createdAt, lastUsedAt: null }]);

  const browser = app.client();
  const login = await passkeyLogin(browser, key);
  assert.is(login.status, 200, login.text);
  assert.is(login.body.tokenType, 'Bearer');
  assert.type(login.body.accessToken, 'string');
  assert.type(login.body.refreshToken, 'string');
  assert.ok(browser.jar.has('sid'), 'the session cookie is set');
  assert.not.ok(browser.jar.has('pk_attempt'), 'the attempt cookie is cleared');
  const me = await browser.get('/auth/me');
  assert.is(me.status, 200);
  assert.is(me.body.userId, user.userId);
  assert.equal(me.body.mfa, { totp: false, passkeys: 1 });
  assert.equal(me.body.amr, ['hwk', 'mfa'], 'a device-bound key with user verification');
  const bearerMe = await app.client().get('/auth/me', { bearer: login.body.accessToken });
  assert.is(bearerMe.body.userId, user.userId);
  assert.equal(bearerMe.body.amr, ['hwk', 'mfa'], 'the access token signs the same amr');
  const [entry] = (await browser.get('/auth/passkeys')).body.passkeys;
  assert.type(entry.lastUsedAt, 'string');
});

flow('the registration options ask for a resident key and preferred user verification', async ({ app }) => {
  const client = app.client();
  await verifiedUser(app, client);
  const options = await client.post('/auth/passkeys/register/options');
  assert.is(options.status, 200);
  assert.is(options.headers.get('cache-control'), 'no-store');
  assert.is(options.body.rp.id, '127.0.0.1');
  assert.is(options.body.authenticatorSelection.residentKey, 'required');
  assert.is(options.body.authenticatorSelection.userVerification, 'preferred');
  assert.is(options.body.attestation, 'none');
  assert.is(Buffer.from(options.body.challenge, 'base64url').length, 32);
  const key = new SoftAuthenticator(app.url);
  assert.is((await client.post('/auth/passkeys/register/verify', key.register(options.body))).status, 201);
  const again = await client.post('/auth/passkeys/register/options');
  assert.equal(again.body.excludeCredentials, [{ id: key.id, type: 'public-key', transports: ['usb'] }]);
});

flow('a synced passkey logs in with amr ["swk","mfa"], kept across a refresh', async ({ app }) => {
  const client = app.client();
  await verifiedUser(app, client);
  const key = new SoftAuthenticator(app.url, { synced: true });
  assert.is((await addPasskey(client, key)).status, 201);
  const browser = app.client();
  const login = await passkeyLogin(browser, key);
  assert.is(login.status, 200, login.text);
  assert.equal((await browser.get('/auth/me')).body.amr, ['swk', 'mfa']);
  const refreshed = await app.client().post('/auth/refresh', { refreshToken: login.body.refreshToken });
  assert.is(refreshed.status, 200);
  const viaRefreshed = await app.client().get('/auth/me', { bearer: refreshed.body.accessToken });
  assert.equal(viaRefreshed.body.amr, ['swk', 'mfa'], 'a refreshed access token still signs it');
});

flow('a passkey login counts as fresh authentication', async ({ app, clock }) => {
  const client = app.client();
  await verifiedUser(app, client);
  const key = new SoftAuthenticator(app.url);
  assert.is((await addPasskey(client, key)).status, 201);
  clock.advance(11 * MINUTE);
  const browser = app.client();
  assertRefused(await browser.post('/auth/passkeys/register/options'), 401, 'unauthenticated');
  assert.is((await passkeyLogin(browser, key)).status, 200);
  assert.is((await browser.post('/auth/passkeys/register/options')).status, 200, 'fresh after the passkey');
  clock.advance(10 * MINUTE);
  const stale = await browser.post('/auth/passkeys/register/options');
  assertRefused(stale, 401, 'reauthentication_required');
  assert.is(
    stale.headers.get('www-authenticate'),
    'Bearer error="insufficient_user_authentication", max_age=600',
  );
});

flow('the login options carry no allow-list and ask for user verification', async ({ app }) => {
  const client = app.client();
  const options = await client.post('/auth/passkeys/login/options');
  assert.is(options.status, 200);
  assert.equal(options.body.allowCredentials ?? [], []);
  assert.is(options.body.userVerification, 'required');
  assert.is(options.body.rpId, '127.0.0.1');
  const cookie = options.setCookies.find((line) => line.startsWith('pk_attempt='));
  assert.ok(cookie);
  assert.match(cookie ?? '', /HttpOnly/);
  assert.match(cookie ?? '', /SameSite=Strict/);
  assert.match(cookie ?? '', /Max-Age=300/);
});

flow("adding a passkey revokes the user's other sessions and keeps the current one", async ({ app }) => {
  const client = app.client();
  const user = await verifiedUser(app, client);
  const other = app.client();
  assert.is((await other.post('/auth/login', { email: user.email, password: user.password })).status, 200);
  assert.is((await addPasskey(client, new SoftAuthenticator(app.url))).status, 201);
  assert.is((await other.get('/auth/me')).status, 401);
  assert.is((await client.get('/auth/me')).status, 200);
});

flow(
  'removing a passkey needs fresh authentication, revokes other sessions, and stops its logins',
  async ({ app, clock }) => {
    const client = app.client();
    const user = await verifiedUser(app, client);
    const key = new SoftAuthenticator(app.url);
    await addPasskey(client, key);
    const other = app.client();
    assert.is((await passkeyLogin(other, key)).status, 200);

    clock.advance(11 * MINUTE);
    const stale = await client.delete(`/auth/passkeys/${key.id}`);
    assertRefused(stale, 401, 'reauthentication_required');
    assert.match(stale.headers.get('www-authenticate') ?? '', /insufficient_user_authentication/);
    assert.is((await listed(client)).length, 1);

    assert.is((await client.post('/auth/login', { email: user.email, password: user.password })).status, 200);
    assert.is((await client.delete(`/auth/passkeys/${key.id}`)).status, 204);
    assert.equal(await listed(client), []);
    assert.is((await other.get('/auth/me')).status, 401, 'the passkey session was revoked');
    assertRefused(await passkeyLogin(app.client(), key), 401, 'invalid_passkey');
    assertRefused(await client.delete(`/auth/passkeys/${key.id}`), 404, 'not_found');
    assertRefused(await client.delete(`/auth/passkeys/${'A'.repeat(10 * 1024)}`), 404, 'not_found');
    for (const odd of ['%E0%A4%A', '%00', 'a%2Fb', '..']) {
      const reply = await client.delete(`/auth/passkeys/${odd}`);
      assert.ok(reply.status >= 400 && reply.status < 500, `${odd}: ${reply.status}`);
    }
  },
);

flow('registration options need authentication, freshness and a verified email', async ({ app, clock }) => {
  assertRefused(await app.client().post('/auth/passkeys/register/options'), 401, 'unauthenticated');
  const client = app.client();
  await signUp(client);
  assertRefused(await client.post('/auth/passkeys/register/options'), 403, 'email_not_verified');
  const verified = app.client();
  await verifiedUser(app, verified);
  clock.advance(11 * MINUTE);
  assertRefused(await verified.post('/auth/passkeys/register/options'), 401, 'reauthentication_required');
  assertRefused(await app.client().get('/auth/passkeys'), 401, 'unauthenticated');
});

flow('a passkey cannot be registered to two accounts', async ({ app }) => {
  const alice = app.client();
  await verifiedUser(app, alice);
  const mallory = app.client();
  await verifiedUser(app, mallory);
  const key = new SoftAuthenticator(app.url);
  assert.is((await addPasskey(alice, key)).status, 201);
  assertRefused(await addPasskey(mallory, key), 400, 'invalid_passkey');
  assert.equal(await listed(mallory), []);
});

// ---------------------------------------------------------------------------------------------------

const badRegistration = routeSuite('passkeys: bad registration responses');

badRegistration(
  'each forged or stale registration is 400 invalid_passkey and stores nothing',
  async ({ app }) => {
    const client = app.client();
    await verifiedUser(app, client);
    const key = new SoftAuthenticator(app.url);
    const cases: Array<[string, (options: unknown) => unknown]> = [
      ['another origin', (o) => key.register(o, { origin: 'http://evil.example' })],
      ['another RP id', (o) => key.register(o, { rpId: 'evil.example' })],
      ['another challenge', (o) => key.register(o, { challenge: Buffer.alloc(32, 7).toString('base64url') })],
      ['the get type', (o) => key.register(o, { type: 'webauthn.get' })],
      [
        'a garbled attestation',
        (o) => {
          const r = key.register(o) as { response: { attestationObject: string } };
          r.response.attestationObject = r.response.attestationObject.slice(0, 40);
          return r;
        },
      ],
      [
        'clientDataJSON that is not JSON',
        (o) => {
          const r = key.register(o) as { response: { clientDataJSON: string } };
          r.response.clientDataJSON = Buffer.from('not json').toString('base64url');
          return r;
        },
      ],
      [
        'an id that is not the attested credential',
        (o) => ({
          ...(key.register(o) as object),
          id: 'AAAAAAAAAAAAAAAAAAAAAA',
          rawId: 'AAAAAAAAAAAAAAAAAAAAAA',
        }),
      ],
    ];
    for (const [what, forge] of cases) {
      const options = await client.post('/auth/passkeys/register/options');
      const reply = await client.post('/auth/passkeys/register/verify', forge(options.body));
      assert.is(reply.status, 400, `${what}: ${reply.text}`);
      assert.is(reply.body.error, 'invalid_passkey', what);
    }
    assert.equal(await listed(client), []);
  },
);

badRegistration(
  "a response to an earlier challenge, a replay, and another session's challenge fail",
  async ({ app }) => {
    const client = app.client();
    const user = await verifiedUser(app, client);
    const key = new SoftAuthenticator(app.url);
    // Two option requests: only the newest challenge is outstanding.
    const first = await client.post('/auth/passkeys/register/options');
    await client.post('/auth/passkeys/register/options');
    assertRefused(
      await client.post('/auth/passkeys/register/verify', key.register(first.body)),
      400,
      'invalid_passkey',
    );

    // A response bound to another session's challenge.
    const second = app.client();
    assert.is((await second.post('/auth/login', { email: user.email, password: user.password })).status, 200);
    const theirs = await second.post('/auth/passkeys/register/options');
    assertRefused(
      await client.post('/auth/passkeys/register/verify', key.register(theirs.body)),
      400,
      'invalid_passkey',
    );
    assert.equal(await listed(client), []);

    // A replay of an accepted response.
    const options = await client.post('/auth/passkeys/register/options');
    const response = key.register(options.body);
    assert.is((await client.post('/auth/passkeys/register/verify', response)).status, 201);
    assertRefused(await client.post('/auth/passkeys/register/verify', response), 400, 'invalid_passkey');
    assert.is((await listed(client)).length, 1);
  },
);

badRegistration('malformed fields are 400 invalid_request and spend no challenge', async ({ app }) => {
  const client = app.client();
  await verifiedUser(app, client);
  const key = new SoftAuthenticator(app.url);
  const options = await client.post('/auth/passkeys/register/options');
  const good = key.register(options.body);
  const bodies: unknown[] = [
    {},
    [],
    'text',
    { ...good, id: 5 },
    { ...good, id: '' },
    { ...good, id: 'not base64url!' },
    { ...good, id: 'A'.repeat(10 * 1024) },
    { ...good, rawId: 'other' },
    { ...good, type: 'password' },
    { ...good, response: null },
    { ...good, response: 'x' },
    { ...good, response: { ...good.response, clientDataJSON: 7 } },
    { ...good, response: { ...good.response, clientDataJSON: '' } },
    { ...good, response: { ...good.response, attestationObject: ['a'] } },
    { ...good, response: { ...good.response, attestationObject: '%%%' } },
    { ...good, response: { ...good.response, transports: 'usb' } },
    { ...good, response: { ...good.response, transports: [1] } },
    { ...good, clientExtensionResults: 'x' },
    { ...good, authenticatorAttachment: 'mystery' },
  ];
  await assertMalformedRefused(app, client, '/auth/passkeys/register/verify', bodies, good);
  // The challenge is still outstanding: the well-formed response is accepted.
  assert.is((await client.post('/auth/passkeys/register/verify', good)).status, 201);
});

// ---------------------------------------------------------------------------------------------------

const badLogin = routeSuite('passkeys: bad login responses');

/** A user with one registered passkey; returns the authenticator. */
async function withPasskey(app: TestApp, options: { counter?: number } = {}): Promise<SoftAuthenticator> {
  const client = app.client();
  await verifiedUser(app, client);
  const key = new SoftAuthenticator(app.url, options);
  assert.is((await addPasskey(client, key)).status, 201);
  return key;
}

badLogin('forged, foreign and replayed login responses are 401 invalid_passkey', async ({ app }) => {
  const key = await withPasskey(app);
  const stranger = new SoftAuthenticator(app.url);
  // Each from its own address: failures count per credential id and IP like failed passwords.
  assertRefused(await passkeyLogin(app.client(), stranger), 401, 'invalid_passkey');
  assertRefused(
    await passkeyLogin(app.client(), key, { origin: 'http://evil.example' }),
    401,
    'invalid_passkey',
  );
  assertRefused(await passkeyLogin(app.client(), key, { rpId: 'evil.example' }), 401, 'invalid_passkey');
  assertRefused(await passkeyLogin(app.client(), key, { uv: false }), 401, 'invalid_passkey');
  assertRefused(await passkeyLogin(app.client(), key, { type: 'webauthn.create' }), 401, 'invalid_passkey');
  assertRefused(
    await passkeyLogin(app.client(), key, { challenge: Buffer.alloc(32, 1).toString('base64url') }),
    401,
    'invalid_passkey',
  );
  let client = app.client();

  // A tampered signature.
  const options = await client.post('/auth/passkeys/login/options');
  const tampered = key.authenticate(options.body);
  const signature = Buffer.from(tampered.response.signature, 'base64url');
  signature[signature.length - 1] = (signature[signature.length - 1] ?? 0) ^ 1;
  tampered.response.signature = signature.toString('base64url');
  assertRefused(await client.post('/auth/passkeys/login/verify', tampered), 401, 'invalid_passkey');

  // Another user's handle on this credential.
  client = app.client();
  const handle = await client.post('/auth/passkeys/login/options');
  const foreign = key.authenticate(handle.body);
  foreign.response.userHandle = Buffer.from('someone-else').toString('base64url');
  assertRefused(await client.post('/auth/passkeys/login/verify', foreign), 401, 'invalid_passkey');

  // A replay of an accepted response: its challenge is spent.
  client = app.client();
  const fresh = await client.post('/auth/passkeys/login/options');
  const response = key.authenticate(fresh.body);
  const jar = new Map(client.jar);
  assert.is((await client.post('/auth/passkeys/login/verify', response)).status, 200);
  const replayer = app.client();
  for (const [name, value] of jar) replayer.jar.set(name, value);
  assertRefused(await replayer.post('/auth/passkeys/login/verify', response), 401, 'invalid_passkey');
  assertRefused(await app.client().post('/auth/passkeys/login/verify', response), 401, 'invalid_passkey');
});

badLogin(
  "a response answered without the attempt cookie, or with another attempt's, is refused",
  async ({ app }) => {
    const key = await withPasskey(app);
    const a = app.client();
    const b = app.client();
    const optionsA = await a.post('/auth/passkeys/login/options');
    await b.post('/auth/passkeys/login/options');
    const response = key.authenticate(optionsA.body);
    assertRefused(await b.post('/auth/passkeys/login/verify', response), 401, 'invalid_passkey');
    assertRefused(
      await a.post('/auth/passkeys/login/verify', response, { cookies: false }),
      401,
      'invalid_passkey',
    );
  },
);

badLogin(
  'a signature counter that goes backwards is refused; one that moves forward is not',
  async ({ app }) => {
    const key = await withPasskey(app, { counter: 10 });
    assert.is((await passkeyLogin(app.client(), key)).status, 200); // 11
    assertRefused(await passkeyLogin(app.client(), key, { counter: 11 }), 401, 'invalid_passkey');
    assertRefused(await passkeyLogin(app.client(), key, { counter: 3 }), 401, 'invalid_passkey');
    assert.is((await passkeyLogin(app.client(), key, { counter: 12 })).status, 200);
    assert.ok(
      app.logs.some((line) => line.includes('passkey.counter-regressed')),
      'the regression is logged as a security event',
    );
  },
);

badLogin('20 parallel verifications of one response: at most one logs in', async ({ app }) => {
  const key = await withPasskey(app);
  const client = app.client();
  const options = await client.post('/auth/passkeys/login/options');
  const response = key.authenticate(options.body);
  const replies = await Promise.all(
    Array.from({ length: 20 }, () => client.post('/auth/passkeys/login/verify', response)),
  );
  assert.is(replies.filter((r) => r.status === 200).length, 1);
  // The rest are refused: the challenge is spent (401), or the limiter holds them back (429).
  assert.ok(replies.every((r) => [200, 401, 429].includes(r.status)));
});

badLogin('malformed login bodies are 400 invalid_request; 1 MiB is 413; never a 5xx', async ({ app }) => {
  const key = await withPasskey(app);
  const client = app.client();
  const options = await client.post('/auth/passkeys/login/options');
  const good = key.authenticate(options.body);
  const bodies: unknown[] = [
    {},
    null,
    { ...good, id: 'A'.repeat(10 * 1024) },
    { ...good, id: ['x'] },
    { ...good, rawId: undefined },
    { ...good, response: { ...good.response, signature: 1 } },
    { ...good, response: { ...good.response, signature: '%' } },
    { ...good, response: { ...good.response, authenticatorData: {} } },
    { ...good, response: { ...good.response, clientDataJSON: null } },
    { ...good, response: { ...good.response, userHandle: 'x'.repeat(1000) } },
    { ...good, response: { ...good.response, userHandle: 5 } },
  ];
  await assertMalformedRefused(app, client, '/auth/passkeys/login/verify', bodies, good);
  // Nothing was spent by the malformed bodies: the well-formed response still logs in.
  assert.is((await client.post('/auth/passkeys/login/verify', good)).status, 200);
  // Garbage of the right types reaches the checks and is refused there, never with a 5xx.
  const spoilers: Array<(response: { response: Record<string, string> }) => void> = [
    (r) => {
      r.response['authenticatorData'] = 'AAAA';
    },
    (r) => {
      r.response['signature'] = 'AAAA';
    },
    (r) => {
      r.response['clientDataJSON'] = 'AAAA';
    },
  ];
  for (const spoil of spoilers) {
    const again = await client.post('/auth/passkeys/login/options');
    const forged = key.authenticate(again.body);
    spoil(forged);
    assertRefused(await client.post('/auth/passkeys/login/verify', forged), 401, 'invalid_passkey');
  }
});

const limited = routeSuite('passkeys: login options per IP', { PASSKEY_LOGIN_MAX_PER_IP: '3' });

limited('login options are limited per IP with 429 and Retry-After', async ({ app }) => {
  const client = app.client();
  for (let i = 0; i < 3; i++) assert.is((await client.post('/auth/passkeys/login/options')).status, 200);
  const refused = await client.post('/auth/passkeys/login/options');
  assertRefused(refused, 429, 'too_many_attempts');
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  assert.is(
    (await app.client().post('/auth/passkeys/login/options')).status,
    200,
    'another IP is not limited',
  );
});

badLogin(
  'Redis lost at any step of a passkey route: 503 with Retry-After, nothing half-done',
  async ({ app }) => {
    const key = await withPasskey(app);
    assert.is((await passkeyLogin(app.client(), key)).status, 200); // every script has been used once
    const lost = () => Promise.reject(new Error('Connection is closed.'));
    for (const script of [
      'webauthn-challenge-issue',
      'webauthn-challenge-consume',
      'passkey-lookup',
      'passkey-use',
    ]) {
      const client = app.client();
      const options = await client.post('/auth/passkeys/login/options');
      const restore = replaceScript(app.redis, script, lost);
      let reply: Reply;
      try {
        reply =
          script === 'webauthn-challenge-issue'
            ? await client.post('/auth/passkeys/login/options')
            : await client.post('/auth/passkeys/login/verify', key.authenticate(options.body));
      } finally {
        restore();
      }
      assertRefused(reply, 503, 'unavailable');
      assert.is(reply.headers.get('retry-after'), '1', script);
      assert.not.ok(client.jar.has('sid'), `${script}: no session cookie`);
    }
    assert.is((await passkeyLogin(app.client(), key)).status, 200, 'serves again when Redis is back');
  },
);

const logged = routeSuite('passkeys: logs', { LOG_LEVEL: 'trace' });

logged('no challenge, response, cookie or token reaches a log line, refusals included', async ({ app }) => {
  const client = app.client();
  await verifiedUser(app, client);
  const key = new SoftAuthenticator(app.url);
  const options = await client.post('/auth/passkeys/register/options');
  const registration = key.register(options.body);
  assert.is((await client.post('/auth/passkeys/register/verify', registration)).status, 201);
  const refused = await client.post('/auth/passkeys/register/verify', registration);
  assert.is(refused.status, 400);
  const browser = app.client();
  const begun = await browser.post('/auth/passkeys/login/options');
  const attempt = browser.jar.get('pk_attempt') ?? '';
  const assertion = key.authenticate(begun.body);
  const login = await browser.post('/auth/passkeys/login/verify', assertion);
  assert.is(login.status, 200);
  const other = app.client();
  const foreign = await other.post('/auth/passkeys/login/options');
  const wrongOrigin = key.authenticate(foreign.body, { origin: 'http://evil.example' });
  assert.is((await other.post('/auth/passkeys/login/verify', wrongOrigin)).status, 401);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const text = app.logs.join('\n');
  const secrets = [
    options.body.challenge,
    begun.body.challenge,
    foreign.body.challenge,
    attempt,
    browser.jar.get('sid') ?? 'no cookie',
    login.body.accessToken,
    login.body.refreshToken,
    registration.response.clientDataJSON,
    registration.response.attestationObject,
    assertion.response.signature,
    assertion.response.clientDataJSON,
    'evil.example',
  ];
  assert.ok(attempt.length > 0 && text.includes('passkey login refused'));
  for (const secret of secrets)
    assert.not.ok(text.includes(secret), `a log line holds ${secret.slice(0, 12)}…`);
});

backendSuite('passkeys over HTTP', (test) => {
  test('register → log in → replay, regression and race refused → remove; what stays is the user', async ({
    redis,
    clock,
    prefix,
    keys,
    keysWithoutTtl,
    advance,
  }) => {
    const app = await startTestApp({ redis, clock, prefix });
    try {
      const client = app.client();
      await verifiedUser(app, client);
      const key = new SoftAuthenticator(app.url, { counter: 1 });
      assert.is((await addPasskey(client, key)).status, 201);
      const late = app.client();
      const options = await late.post('/auth/passkeys/login/options');
      const browser = app.client();
      const begun = await browser.post('/auth/passkeys/login/options');
      const response = key.authenticate(begun.body);
      const replies = await Promise.all(
        Array.from({ length: 20 }, () => browser.post('/auth/passkeys/login/verify', response)),
      );
      assert.is(replies.filter((r) => r.status === 200).length, 1);
      const me = await browser.get('/auth/me');
      assert.is(me.status, 200);
      assert.equal(me.body.amr, ['hwk', 'mfa'], 'the session records the passkey login');
      // An answer to a challenge that was issued but answered with an old counter.
      const stale = key.authenticate(options.body, { counter: 1 });
      assertRefused(await late.post('/auth/passkeys/login/verify', stale), 401, 'invalid_passkey');
      assert.ok(app.logs.some((line) => line.includes('passkey.counter-regressed')));
      assert.is((await client.delete(`/auth/passkeys/${key.id}`)).status, 204);
      assertRefused(await passkeyLogin(app.client(), key), 401, 'invalid_passkey');
      // Challenges left unanswered expire; the user record and its email index stay (DESIGN.md).
      await app.client().post('/auth/passkeys/login/options');
      await advance(25 * 3600_000);
      assert.is((await keysWithoutTtl()).length, 2, 'the user and its email index');
      assert.equal((await keys()).length, 2);
    } finally {
      await app.close();
    }
  });
});

flow.run();
badRegistration.run();
badLogin.run();
limited.run();
logged.run();
