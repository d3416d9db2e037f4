import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signUp, startTestApp, type TestApp } from './helpers.js';

// TRUST_PROXY=<n>: the client IP is the n-th address from the right of X-Forwarded-For, the scheme
// comes from X-Forwarded-Proto, X-Forwarded-Host is never trusted; unset, no proxy header counts.
// A probe appended after the routes reports what the app itself sees.

interface Seen {
  ip: string;
  protocol: string;
  host: string;
}

async function withProbe(trustProxy: string, run: (app: TestApp) => Promise<void>): Promise<void> {
  const app = await startTestApp({
    env: { TRUST_PROXY: trustProxy },
    probe: (ctx) => {
      if (ctx.path === '/__probe') ctx.body = { ip: ctx.ip, protocol: ctx.protocol, host: ctx.host };
    },
  });
  try {
    await run(app);
  } finally {
    await app.close();
  }
}

async function probe(app: TestApp, headers: Record<string, string>): Promise<Seen> {
  const reply = await app.client().get('/__probe', { headers });
  assert.is(reply.status, 200);
  return reply.body as Seen;
}

const FORWARDED = {
  'x-forwarded-for': '203.0.113.1, 198.51.100.2, 192.0.2.3',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
};

const proxy = suite('TRUST_PROXY');

proxy('unset: no proxy header counts (the socket address, http, the Host header)', async () => {
  await withProbe('', async (app) => {
    const seen = await probe(app, FORWARDED);
    assert.match(seen.ip, /^(::ffff:)?127\.0\.0\.1$/);
    assert.is(seen.protocol, 'http');
    assert.is(seen.host, app.host);
  });
});

for (const [hops, ip] of [
  ['1', '192.0.2.3'],
  ['2', '198.51.100.2'],
  ['3', '203.0.113.1'],
] as const) {
  proxy(
    `TRUST_PROXY=${hops}: the client is the ${hops}. address from the right; the scheme from X-Forwarded-Proto; never X-Forwarded-Host`,
    async () => {
      await withProbe(hops, async (app) => {
        assert.equal(await probe(app, FORWARDED), { ip, protocol: 'https', host: app.host });
        // What the app records and counts is that address too.
        const client = app.client();
        await signUp(client);
        const listed = await client.get('/auth/sessions', { headers: FORWARDED });
        assert.is(listed.body.sessions[0].ip, client.ip, 'the login (one hop, from the helper) recorded');
      });
    },
  );
}

proxy('TRUST_PROXY=2: the session list shows the 2nd address from the right', async () => {
  await withProbe('2', async (app) => {
    const client = app.client();
    const user = await signUp(client);
    const phone = app.client();
    await phone.post(
      '/auth/login',
      { email: user.email, password: user.password },
      { headers: { 'x-forwarded-for': '10.9.9.9, 198.51.100.77, 192.0.2.1' } },
    );
    const listed = await phone.get('/auth/sessions');
    assert.is(listed.body.sessions[0].ip, '198.51.100.77');
  });
});

proxy.run();
