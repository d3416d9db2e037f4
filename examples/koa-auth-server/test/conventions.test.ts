import { generateDevelopmentKey, ServerSecret } from '@latchkey/core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signUp, startTestApp, type TestApp } from './helpers.js';

// Conventions of HTTP-API.md that hold on every route: bodies, errors, cookies, authentication.

const body = suite<{ app: TestApp }>('conventions: bodies and errors');
body.before.each(async (ctx) => {
  ctx.app = await startTestApp();
});
body.after.each(async (ctx) => {
  await ctx.app.close();
});

body('a body route refuses other content types with 415 unsupported_media_type', async ({ app }) => {
  const client = app.client();
  for (const type of [
    'text/plain',
    'application/xml',
    'multipart/form-data; boundary=x',
    'application/vnd.api+json',
  ]) {
    const reply = await client.request('POST', '/auth/register', {
      body: '{"email":"a@example.com","password":"correct horse"}',
      headers: { 'content-type': type },
    });
    assert.is(reply.status, 415, type);
    assert.equal(reply.body.error, 'unsupported_media_type');
  }
  const unknown = await client.request('POST', '/auth/register', {
    body: 'x',
    headers: { 'content-type': '' },
  });
  assert.is(unknown.status, 415, 'a body without a type');
});

body('form bodies are accepted like JSON, and unknown fields are ignored', async ({ app }) => {
  const client = app.client();
  const reply = await client.request('POST', '/auth/register', {
    form: { email: 'form@example.com', password: 'correct horse', extra: 'ignored' },
  });
  assert.is(reply.status, 201);
  const login = await client.post('/auth/login', {
    email: 'form@example.com',
    password: 'correct horse',
    rememberMe: true,
    nested: { deep: [1, 2] },
  });
  assert.is(login.status, 200);
});

body(
  'malformed JSON, wrong types, missing fields and oversized values are 400 invalid_request',
  async ({ app }) => {
    const client = app.client();
    const cases: Array<[string, string]> = [
      ['malformed', '{"email": "a@example.com",'],
      ['an array', '[1,2]'],
      ['a string', '"hello"'],
      ['null', 'null'],
      ['email missing', '{"password":"correct horse"}'],
      ['password missing', '{"email":"a@example.com"}'],
      ['email a number', '{"email":5,"password":"correct horse"}'],
      ['email an object', '{"email":{"$ne":""},"password":"correct horse"}'],
      ['password an array', '{"email":"a@example.com","password":["correct horse"]}'],
      ['password null', '{"email":"a@example.com","password":null}'],
      [
        'email oversized',
        JSON.stringify({ email: `${'a'.repeat(250)}@example.com`, password: 'correct horse' }),
      ],
      ['password oversized', JSON.stringify({ email: 'a@example.com', password: 'p'.repeat(1025) })],
      ['empty body', ''],
    ];
    for (const [name, text] of cases) {
      const reply = await client.request('POST', '/auth/register', {
        body: text,
        headers: { 'content-type': 'application/json' },
      });
      assert.is(reply.status, 400, name);
      assert.is(reply.body.error, 'invalid_request', name);
      assert.type(reply.body.message, 'string', name);
      assert.not.match(reply.body.message, /correct horse|\$ne/, 'the message never quotes the body');
    }
    const none = await client.request('POST', '/auth/register');
    assert.is(none.status, 400, 'no body at all');
  },
);

body('bodies over 16 KiB are 413 payload_too_large, JSON and form alike', async ({ app }) => {
  const client = app.client();
  const big = JSON.stringify({
    email: 'a@example.com',
    password: 'correct horse',
    pad: 'x'.repeat(16 * 1024),
  });
  const json = await client.request('POST', '/auth/login', {
    body: big,
    headers: { 'content-type': 'application/json' },
  });
  assert.is(json.status, 413);
  assert.equal(json.body, { error: 'payload_too_large', message: json.body.message });
  const form = await client.request('POST', '/auth/login', {
    body: `email=a%40example.com&pad=${'x'.repeat(17 * 1024)}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.is(form.status, 413);
  const justUnder = await client.request('POST', '/auth/register', {
    body: JSON.stringify({
      email: 'under@example.com',
      password: 'correct horse',
      pad: 'x'.repeat(15 * 1024),
    }),
    headers: { 'content-type': 'application/json' },
  });
  assert.is(justUnder.status, 201, 'a body under the limit is parsed');
});

body('the limit is exactly 16 KiB: a body of 16384 bytes is read, one of 16385 is 413', async ({ app }) => {
  const client = app.client();
  const sized = (email: string, bytes: number): string => {
    const bare = JSON.stringify({ email, password: 'correct horse', pad: '' });
    const text = JSON.stringify({ email, password: 'correct horse', pad: 'x'.repeat(bytes - bare.length) });
    assert.is(Buffer.byteLength(text), bytes);
    return text;
  };
  const json = { 'content-type': 'application/json' };
  assert.is(
    (await client.request('POST', '/auth/register', { body: sized('a@example.com', 16384), headers: json }))
      .status,
    201,
  );
  const over = await client.request('POST', '/auth/register', {
    body: sized('b@example.com', 16385),
    headers: json,
  });
  assert.is(over.status, 413);
  assert.is(over.body.error, 'payload_too_large');
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const prefix = 'email=c%40example.com&password=correct+horse&pad=';
  for (const [bytes, status] of [
    [16384, 201],
    [16385, 413],
  ] as const) {
    const body = `${prefix}${'x'.repeat(bytes - prefix.length)}`.replace(
      'c%40',
      bytes === 16384 ? 'c%40' : 'd%40',
    );
    assert.is(
      (await client.request('POST', '/auth/register', { body, headers: form })).status,
      status,
      `form, ${bytes} bytes`,
    );
  }
});

body('unknown routes are 404 not_found and known routes with another method 405', async ({ app }) => {
  const client = app.client();
  const missing = await client.get('/nope');
  assert.is(missing.status, 404);
  assert.equal(missing.body, { error: 'not_found', message: 'no such route' });
  const alsoMissing = await client.post('/auth/nope', {});
  assert.is(alsoMissing.status, 404);
  for (const [method, path] of [
    ['GET', '/auth/login'],
    ['PUT', '/auth/register'],
    ['POST', '/auth/me'],
    ['GET', '/auth/logout'],
    ['POST', '/healthz'],
    ['PATCH', '/auth/sessions/abc'],
  ] as const) {
    const reply = await client.request(method, path);
    assert.is(reply.status, 405, `${method} ${path}`);
    assert.is(reply.body.error, 'method_not_allowed');
    assert.ok(reply.headers.get('allow'), 'Allow names the methods');
  }
});

body('emails are trimmed, NFC-normalized and lower-cased; nothing else is rewritten', async ({ app }) => {
  const client = app.client();
  const composed = 'J\u00f6rg@Example.COM';
  const decomposed = '  jo\u0308rg@example.com ';
  assert.is(
    (await client.post('/auth/register', { email: composed, password: 'correct horse' })).status,
    201,
  );
  assert.is((await client.post('/auth/login', { email: decomposed, password: 'correct horse' })).status, 200);
  const me = await client.get('/auth/me');
  assert.is(me.body.email, 'j\u00f6rg@example.com');
  const dotted = await client.post('/auth/register', {
    email: 'jorg@example.com',
    password: 'correct horse',
  });
  assert.is(dotted.status, 201, 'a different address is a different account');
  assert.is(
    (await client.post('/auth/register', { email: 'j.o.rg+tag@example.com', password: 'correct horse' }))
      .status,
    201,
  );
});

body(
  'emails need one @, a non-empty local part and a dotted domain, at most 254 characters',
  async ({ app }) => {
    const client = app.client();
    for (const email of [
      'plain',
      'a@b',
      '@example.com',
      'a@@example.com',
      'a@b@example.com',
      'a@.com',
      'a@example.',
      'a b@example.com',
      '',
    ]) {
      const reply = await client.post('/auth/register', { email, password: 'correct horse' });
      assert.is(reply.status, 400, JSON.stringify(email));
      assert.is(reply.body.error, 'invalid_request');
    }
    const longest = `${'a'.repeat(64)}@${'b'.repeat(185)}.com`;
    assert.is(longest.length, 254);
    assert.is(
      (await client.post('/auth/register', { email: longest, password: 'correct horse' })).status,
      201,
    );
    const tooLong = `${'a'.repeat(65)}@${'b'.repeat(185)}.com`;
    assert.is(
      (await client.post('/auth/register', { email: tooLong, password: 'correct horse' })).status,
      400,
    );
  },
);

body('passwords are 8 to 1024 code points and verified exactly as sent', async ({ app }) => {
  const client = app.client();
  assert.is(
    (await client.post('/auth/register', { email: 'p1@example.com', password: '1234567' })).status,
    400,
  );
  // Eight astral code points are sixteen UTF-16 units: eight characters all the same.
  assert.is(
    (await client.post('/auth/register', { email: 'p2@example.com', password: '😀'.repeat(8) })).status,
    201,
  );
  assert.is(
    (await client.post('/auth/register', { email: 'p3@example.com', password: '😀'.repeat(1024) })).status,
    201,
  );
  assert.is(
    (await client.post('/auth/register', { email: 'p4@example.com', password: '😀'.repeat(1025) })).status,
    400,
  );
  assert.is(
    (await client.post('/auth/register', { email: 'p5@example.com', password: 'bad\ud800surrogate' })).status,
    400,
  );
  await client.post('/auth/register', { email: 'exact@example.com', password: ' Spaces matter ' });
  assert.is(
    (await client.post('/auth/login', { email: 'exact@example.com', password: 'Spaces matter' })).status,
    401,
  );
  assert.is(
    (await client.post('/auth/login', { email: 'exact@example.com', password: ' spaces matter ' })).status,
    401,
  );
  assert.is(
    (await client.post('/auth/login', { email: 'exact@example.com', password: ' Spaces matter ' })).status,
    200,
  );
  // No Unicode normalization either: the same-looking password in another form is another password.
  const decomposed = 'pa\u0301ssword 1';
  await client.post('/auth/register', { email: 'nfd@example.com', password: decomposed });
  assert.is(
    (await client.post('/auth/login', { email: 'nfd@example.com', password: decomposed.normalize('NFC') }))
      .status,
    401,
  );
  assert.is(
    (await client.post('/auth/login', { email: 'nfd@example.com', password: decomposed })).status,
    200,
  );
});

body('no response carries CORS headers', async ({ app }) => {
  const client = app.client();
  for (const [method, path] of [
    ['GET', '/healthz'],
    ['OPTIONS', '/auth/login'],
    ['GET', '/auth/me'],
  ] as const) {
    const reply = await client.request(method, path, { headers: { origin: 'https://elsewhere.example' } });
    for (const name of reply.headers.keys())
      assert.not.ok(name.startsWith('access-control-'), `${method} ${path}: ${name}`);
  }
});

body.run();

const auth = suite<{ app: TestApp }>('conventions: authentication');
auth.before.each(async (ctx) => {
  ctx.app = await startTestApp();
});
auth.after.each(async (ctx) => {
  await ctx.app.close();
});

auth(
  'an Authorization header, when present, is the only credential: an invalid one is 401 with no cookie fallback',
  async ({ app }) => {
    const client = app.client();
    await signUp(client);
    assert.is((await client.get('/auth/me')).status, 200, 'the cookie alone works');
    for (const header of ['Bearer garbage', 'Bearer v4.public.AAAA', 'Basic dXNlcjpwYXNz', 'Bearer', '']) {
      const reply = await client.get('/auth/me', { headers: { authorization: header } });
      assert.is(reply.status, 401, JSON.stringify(header));
      assert.is(reply.body.error, 'unauthenticated');
      const challenge = reply.headers.get('www-authenticate') ?? '';
      assert.ok(challenge.startsWith('Bearer'), challenge);
      if (header.startsWith('Bearer')) assert.match(challenge, /error="invalid_token"/);
    }
  },
);

auth('every 401 of a protected route is unauthenticated with WWW-Authenticate: Bearer', async ({ app }) => {
  const client = app.client();
  const routes: Array<[string, string]> = [
    ['GET', '/auth/me'],
    ['POST', '/auth/logout-others'],
    ['POST', '/auth/logout-all'],
    ['GET', '/auth/sessions'],
    ['DELETE', '/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA'],
    ['POST', '/auth/password'],
    ['POST', '/auth/verify-email/request'],
    ['POST', '/auth/verify-email/confirm'],
  ];
  for (const [method, path] of routes) {
    const reply = await client.request(method, path, method === 'GET' ? {} : { json: {} });
    assert.is(reply.status, 401, `${method} ${path}`);
    assert.equal(reply.body, { error: 'unauthenticated', message: reply.body.message });
    assert.is(reply.headers.get('www-authenticate'), 'Bearer', `${method} ${path}`);
  }
});

auth(
  'on every protected route an invalid bearer token is 401 invalid_token even beside a valid cookie, and changes nothing',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const other = app.client();
    await other.post('/auth/login', { email: user.email, password: user.password });
    const sessionId = (await client.get('/auth/me')).body.sessionId as string;
    const routes: Array<[string, string, unknown]> = [
      ['GET', '/auth/me', undefined],
      ['POST', '/auth/logout-others', undefined],
      ['POST', '/auth/logout-all', undefined],
      ['GET', '/auth/sessions', undefined],
      ['DELETE', `/auth/sessions/${sessionId}`, undefined],
      ['POST', '/auth/password', { currentPassword: user.password, newPassword: 'changed password' }],
      ['POST', '/auth/verify-email/request', undefined],
      ['POST', '/auth/verify-email/confirm', { code: '123456' }],
    ];
    for (const [method, path, json] of routes) {
      for (const token of ['garbage', `${user.accessToken.slice(0, -4)}AAAA`]) {
        const reply = await client.request(method, path, {
          bearer: token,
          ...(json === undefined ? {} : { json }),
        });
        assert.is(reply.status, 401, `${method} ${path}`);
        assert.is(reply.body.error, 'unauthenticated');
        assert.is(reply.headers.get('www-authenticate'), 'Bearer error="invalid_token"', `${method} ${path}`);
        assert.equal(reply.setCookies, [], 'the cookie is left alone');
      }
    }
    assert.is((await client.get('/auth/me')).status, 200, 'this session is alive');
    assert.is((await other.get('/auth/me')).status, 200, 'the other session is alive');
    assert.equal(app.outbox?.list(user.email), [], 'no code was sent');
    const login = await app.client().post('/auth/login', { email: user.email, password: user.password });
    assert.is(login.status, 200, 'the password is unchanged');
  },
);

auth(
  'a response that ends the request’s own cookie session clears the cookie, also when a bearer token did it',
  async ({ app }) => {
    const cleared = (reply: { setCookies: string[] }): boolean =>
      reply.setCookies.length === 1 && /^sid=; .*Max-Age=0/.test(reply.setCookies[0] as string);
    // logout by bearer token, with the cookie of the same session
    let client = app.client();
    let user = await signUp(client);
    assert.ok(cleared(await client.post('/auth/logout', undefined, { bearer: user.accessToken })), 'logout');
    // DELETE of the current session by bearer token, with its cookie
    client = app.client();
    user = await signUp(client);
    const id = (await client.get('/auth/me')).body.sessionId as string;
    assert.ok(cleared(await client.delete(`/auth/sessions/${id}`, { bearer: user.accessToken })), 'DELETE');
    // a password change through one session (bearer) with the cookie of another session of the user
    const browser = app.client();
    user = await signUp(browser);
    const api = await app.client().post('/auth/login', { email: user.email, password: user.password });
    const change = await browser.post(
      '/auth/password',
      { currentPassword: user.password, newPassword: 'changed password' },
      { bearer: api.body.accessToken },
    );
    assert.is(change.status, 204);
    assert.ok(cleared(change), 'the cookie’s session was one of the “other” sessions');
    // logout-others through one session (bearer) with the cookie of another session of the user
    const tab = app.client();
    user = await signUp(tab);
    const cli = await app.client().post('/auth/login', { email: user.email, password: user.password });
    const others = await tab.post('/auth/logout-others', undefined, { bearer: cli.body.accessToken });
    assert.is(others.status, 204);
    assert.ok(cleared(others), 'logout-others ended the cookie’s session');
    assert.equal((await tab.post('/auth/logout-others')).status, 401, 'and it is gone');
    // logout by a bearer token of another session leaves this cookie alone
    const a = app.client();
    user = await signUp(a);
    const b = await app.client().post('/auth/login', { email: user.email, password: user.password });
    const other = await a.post('/auth/logout', undefined, { bearer: b.body.accessToken });
    assert.equal(other.setCookies, []);
    assert.is((await a.get('/auth/me')).status, 200);
  },
);

auth(
  'a credential whose user is gone is 401 like any other (invalid_token for a bearer token)',
  async ({ app }) => {
    const client = app.client();
    const user = await signUp(client);
    const userKeys = await app.redis.keys('lk:app:u:*');
    assert.is(userKeys.length, 1);
    await app.redis.del(...userKeys); // as when an unverified account expires under a live session
    const byCookie = await client.get('/auth/me');
    assert.is(byCookie.status, 401);
    assert.is(byCookie.body.error, 'unauthenticated');
    assert.is(byCookie.headers.get('www-authenticate'), 'Bearer');
    const byBearer = await client.get('/auth/me', { bearer: user.accessToken, cookies: false });
    assert.is(byBearer.status, 401);
    assert.is(byBearer.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  },
);

auth('when the session cookie arrives twice, neither is used', async ({ app }) => {
  const client = app.client();
  await signUp(client);
  const cookie = `sid=${client.jar.get('sid')}`;
  assert.is((await client.get('/auth/me', { headers: { cookie } })).status, 200);
  const twice = await client.get('/auth/me', { headers: { cookie: `${cookie}; ${cookie}` } });
  assert.is(twice.status, 401);
  const logout = await client.post('/auth/logout', undefined, {
    headers: { cookie: `${cookie}; sid=v1.other` },
  });
  assert.is(logout.status, 204);
  assert.is((await client.get('/auth/me', { headers: { cookie } })).status, 200, 'a logout used neither');
});

auth(
  'the development session cookie is sid; HttpOnly; SameSite=Lax; Path=/ with Max-Age = the absolute lifetime',
  async ({ app }) => {
    const client = app.client();
    await client.post('/auth/register', { email: 'c@example.com', password: 'correct horse' });
    const login = await client.post('/auth/login', { email: 'c@example.com', password: 'correct horse' });
    assert.is(login.setCookies.length, 1);
    const cookie = login.setCookies[0] as string;
    assert.match(cookie, /^sid=v1\./);
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Lax/);
    assert.match(cookie, /; Path=\//);
    assert.match(cookie, /; Max-Age=86400/);
    assert.not.match(cookie, /Secure/);
  },
);

auth.run();

const production = suite('conventions: production mode');

production(
  'outside development the cookie is __Host-sid with Secure, and /dev/outbox does not exist',
  async () => {
    const key = await generateDevelopmentKey();
    const app = await startTestApp({
      env: {
        HOST: '0.0.0.0',
        LATCHKEY_DEV: '0',
        PASETO_SECRET_KEY: key.secret,
        LATCHKEY_SECRET: ServerSecret.generateText(),
        TRUST_PROXY: '1',
      },
    });
    try {
      assert.is(app.outbox, undefined);
      const client = app.client();
      await client.post('/auth/register', { email: 'prod@example.com', password: 'correct horse' });
      const login = await client.post('/auth/login', {
        email: 'prod@example.com',
        password: 'correct horse',
      });
      assert.is(login.status, 200);
      const cookie = login.setCookies[0] as string;
      assert.match(cookie, /^__Host-sid=v1\./);
      assert.match(cookie, /; Secure/);
      assert.match(cookie, /; Path=\//);
      assert.not.match(cookie, /Domain=/i);
      const me = await client.get('/auth/me', {
        headers: { cookie: `__Host-sid=${client.jar.get('__Host-sid')}` },
      });
      assert.is(me.status, 200, 'the cookie works behind the TLS proxy (plain http to the app)');
      const outbox = await client.get('/dev/outbox?to=prod@example.com');
      assert.is(outbox.status, 404);
      assert.is(outbox.body.error, 'not_found');
    } finally {
      await app.close();
    }
  },
);

production(
  'X-Forwarded-For counts only with TRUST_PROXY, from the right; X-Forwarded-Host never',
  async () => {
    const untrusted = await startTestApp({ env: { TRUST_PROXY: '0', LOGIN_MAX_FAILURES_PER_IP: '2' } });
    try {
      // Without a proxy setting, every request is the socket's address whatever the header says.
      for (let i = 0; i < 2; i++) {
        const reply = await untrusted.client({ ip: `192.0.2.${i + 1}` }).post('/auth/login', {
          email: `nobody${i}@example.com`,
          password: 'wrong password',
        });
        assert.is(reply.status, 401);
      }
      const third = await untrusted.client({ ip: '192.0.2.99' }).post('/auth/login', {
        email: 'nobody9@example.com',
        password: 'wrong password',
      });
      assert.is(third.status, 429, 'all attempts counted against 127.0.0.1');
    } finally {
      await untrusted.close();
    }
    const trusted = await startTestApp({ env: { TRUST_PROXY: '1', LOGIN_MAX_FAILURES_PER_IP: '2' } });
    try {
      const client = trusted.client();
      for (let i = 0; i < 2; i++) {
        await client.post(
          '/auth/login',
          { email: `n${i}@example.com`, password: 'wrong password' },
          {
            headers: { 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7` },
          },
        );
      }
      const sameProxyHop = await client.post(
        '/auth/login',
        { email: 'n3@example.com', password: 'wrong password' },
        {
          headers: { 'x-forwarded-for': '203.0.113.50, 198.51.100.7' },
        },
      );
      assert.is(sameProxyHop.status, 429, 'the client address is the last hop, whatever the client prepends');
      const other = await client.post(
        '/auth/login',
        { email: 'n4@example.com', password: 'wrong password' },
        {
          headers: { 'x-forwarded-for': '198.51.100.8' },
        },
      );
      assert.is(other.status, 401);
      // A forged X-Forwarded-Host does not make a cross-site Origin look same-site.
      const forged = await client.post(
        '/auth/login',
        { email: 'n5@example.com', password: 'wrong password' },
        {
          headers: {
            origin: 'https://evil.example',
            'x-forwarded-host': 'evil.example',
            'x-forwarded-for': '198.51.100.9',
          },
        },
      );
      assert.is(forged.status, 403);
    } finally {
      await trusted.close();
    }
  },
);

production.run();
