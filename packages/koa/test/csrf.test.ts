import { request as httpRequest } from 'node:http';
import { connect as connectHttp2, createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { InvalidOptionError } from '@latchkey/core';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type CrossOriginProtectionOptions, crossOriginProtection, latchkeyErrors } from '../src/index.js';
import { serve, type TestServer } from './support/http-client.js';

interface Guarded {
  server: TestServer;
  /** How many requests reached the route (a refused request must change nothing). */
  readonly reached: number;
}

async function guardedApp(options?: CrossOriginProtectionOptions): Promise<Guarded> {
  let reached = 0;
  const app = new Koa();
  app.use(latchkeyErrors());
  app.use(crossOriginProtection(options));
  app.use((ctx) => {
    reached++;
    ctx.body = { ok: true };
  });
  const server = await serve(app);
  return {
    server,
    get reached() {
      return reached;
    },
  };
}

/** Sends `method /` with `headers` and returns the status; asserts the 403 body when refused. */
async function statusOf(
  server: TestServer,
  method: string,
  headers: Record<string, string>,
): Promise<number> {
  const response = await server.request('/', { method, headers });
  if (response.status === 403) {
    assert.equal(await response.json(), { error: 'csrf_rejected', message: 'cross-origin request refused' });
  } else {
    await response.arrayBuffer();
  }
  return response.status;
}

/** POST / with header lines sent exactly as given (repeated names stay repeated); the status. */
function rawStatus(server: TestServer, headers: Record<string, string[]>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${server.origin}/`, { method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const matrix = suite('crossOriginProtection');

matrix('Sec-Fetch-Site: only same-origin and none pass an unsafe request', async () => {
  const guarded = await guardedApp();
  try {
    const expected: Record<string, number> = {
      'same-origin': 200,
      none: 200,
      'same-site': 403,
      'cross-site': 403,
      'something-new': 403,
    };
    for (const [site, status] of Object.entries(expected)) {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        assert.is(
          await statusOf(guarded.server, method, { 'Sec-Fetch-Site': site }),
          status,
          `${method} ${site}`,
        );
      }
    }
    assert.is(guarded.reached, 8, 'refused requests never reach the route');
  } finally {
    await guarded.server.close();
  }
});

matrix('Sec-Fetch-Site decides even when Origin names the server itself', async () => {
  const guarded = await guardedApp();
  try {
    const origin = guarded.server.origin;
    assert.is(
      await statusOf(guarded.server, 'POST', { 'Sec-Fetch-Site': 'cross-site', Origin: origin }),
      403,
    );
    assert.is(
      await statusOf(guarded.server, 'POST', {
        'Sec-Fetch-Site': 'same-origin',
        Origin: 'https://evil.test',
      }),
      200,
    );
  } finally {
    await guarded.server.close();
  }
});

matrix('without Sec-Fetch-Site, Origin must name the Host header’s host and port', async () => {
  const guarded = await guardedApp();
  try {
    const { server } = guarded;
    const port = server.host.split(':')[1];
    assert.is(await statusOf(server, 'POST', { Origin: server.origin }), 200, 'same host and port');
    assert.is(
      await statusOf(server, 'POST', { Origin: `https://${server.host}` }),
      200,
      'the scheme is ignored',
    );
    assert.is(
      await statusOf(server, 'POST', { Origin: `HTTP://127.0.0.1:${port}` }),
      200,
      'case-insensitive',
    );
    assert.is(await statusOf(server, 'POST', { Origin: 'http://127.0.0.1:1' }), 403, 'another port');
    assert.is(await statusOf(server, 'POST', { Origin: `http://localhost:${port}` }), 403, 'another host');
    assert.is(await statusOf(server, 'POST', { Origin: 'https://evil.test' }), 403);
    assert.is(await statusOf(server, 'DELETE', { Origin: 'https://evil.test' }), 403);
    assert.is(await statusOf(server, 'POST', { Origin: 'null' }), 403, 'Origin: null fails');
    assert.is(await statusOf(server, 'POST', { Origin: 'not an origin' }), 403);
    assert.is(await statusOf(server, 'POST', { Origin: `http://user@${server.host}` }), 403);
  } finally {
    await guarded.server.close();
  }
});

matrix('with publicOrigin, Origin must name it and the Host header no longer counts', async () => {
  const guarded = await guardedApp({ publicOrigin: 'https://auth.example.com' });
  try {
    const { server } = guarded;
    assert.is(await statusOf(server, 'POST', { Origin: 'https://auth.example.com' }), 200);
    assert.is(await statusOf(server, 'POST', { Origin: 'http://auth.example.com' }), 200, 'scheme ignored');
    assert.is(await statusOf(server, 'POST', { Origin: 'https://auth.example.com:8443' }), 403);
    assert.is(
      await statusOf(server, 'POST', { Origin: server.origin }),
      403,
      'Host is not the public origin',
    );
  } finally {
    await guarded.server.close();
  }
});

matrix('a trusted origin always passes, also as cross-site', async () => {
  const guarded = await guardedApp({ trustedOrigins: ['https://App.Example.com:443'] });
  try {
    const { server } = guarded;
    const trusted = 'https://app.example.com';
    assert.is(await statusOf(server, 'POST', { Origin: trusted }), 200);
    assert.is(await statusOf(server, 'POST', { Origin: trusted, 'Sec-Fetch-Site': 'cross-site' }), 200);
    assert.is(await statusOf(server, 'POST', { Origin: trusted, 'Sec-Fetch-Site': 'same-site' }), 200);
    assert.is(await statusOf(server, 'POST', { Origin: 'http://app.example.com' }), 403, 'the scheme counts');
    assert.is(await statusOf(server, 'POST', { Origin: 'https://app.example.com.evil.test' }), 403);
    assert.is(await statusOf(server, 'POST', { 'Sec-Fetch-Site': 'cross-site' }), 403, 'no Origin, no trust');
  } finally {
    await guarded.server.close();
  }
});

matrix('a request with an Authorization header is exempt', async () => {
  const guarded = await guardedApp();
  try {
    const hostile = { Origin: 'https://evil.test', 'Sec-Fetch-Site': 'cross-site' };
    assert.is(
      await statusOf(guarded.server, 'POST', { ...hostile, Authorization: 'Bearer v4.public.x' }),
      200,
    );
    assert.is(await statusOf(guarded.server, 'DELETE', { ...hostile, Authorization: 'Bearer x' }), 200);
    assert.is(await statusOf(guarded.server, 'POST', hostile), 403, 'the cookie path is guarded');
  } finally {
    await guarded.server.close();
  }
});

matrix(
  'HTTP authentication a browser resends on its own (Basic, Digest, …) is checked like a cookie',
  async () => {
    const guarded = await guardedApp();
    try {
      const hostile = { Origin: 'https://evil.test', 'Sec-Fetch-Site': 'cross-site' };
      for (const authorization of [
        'Basic YWxpY2U6c2VjcmV0',
        'basic YWxpY2U6c2VjcmV0',
        'Digest username="alice", realm="staging"',
        'Negotiate YIIG',
        'NTLM TlRMTVNTUAAB',
        'Basic',
      ]) {
        assert.is(
          await statusOf(guarded.server, 'POST', { ...hostile, Authorization: authorization }),
          403,
          authorization,
        );
      }
      // Same-origin requests with them still pass; schemes a page cannot send cross-site stay exempt.
      assert.is(
        await statusOf(guarded.server, 'POST', {
          'Sec-Fetch-Site': 'same-origin',
          Authorization: 'Basic YQ==',
        }),
        200,
      );
      assert.is(await statusOf(guarded.server, 'POST', { ...hostile, Authorization: 'Token abc' }), 200);
      assert.is(await statusOf(guarded.server, 'POST', { ...hostile, Authorization: 'Basically x' }), 200);
      assert.is(guarded.reached, 3);
    } finally {
      await guarded.server.close();
    }
  },
);

matrix('every method but GET, HEAD and OPTIONS is checked, as in Go', async () => {
  const guarded = await guardedApp();
  try {
    const hostile = { Origin: 'https://evil.test', 'Sec-Fetch-Site': 'cross-site' };
    for (const method of ['PROPFIND', 'MKCOL', 'LOCK', 'PURGE']) {
      assert.is(await statusOf(guarded.server, method, hostile), 403, method);
      assert.is(await statusOf(guarded.server, method, { 'Sec-Fetch-Site': 'same-origin' }), 200, method);
    }
  } finally {
    await guarded.server.close();
  }
});

matrix('a repeated Sec-Fetch-Site or Origin header matches nothing', async () => {
  const guarded = await guardedApp({ trustedOrigins: ['https://app.example.com'] });
  try {
    const { server } = guarded;
    const cases: Array<[Record<string, string[]>, number, string]> = [
      [{ 'sec-fetch-site': ['same-origin', 'cross-site'] }, 403, 'two Sec-Fetch-Site'],
      [{ 'sec-fetch-site': ['none', 'none'] }, 403, 'even two harmless ones'],
      [{ origin: [server.origin, 'https://evil.test'] }, 403, 'two Origin'],
      [{ origin: [server.origin, server.origin] }, 403, 'even the same one twice'],
      [
        { 'sec-fetch-site': ['cross-site'], origin: ['https://app.example.com', 'https://evil.test'] },
        403,
        'trust needs one origin',
      ],
      [{ origin: [server.origin] }, 200, 'one Origin line passes'],
    ];
    for (const [headers, status, label] of cases) {
      assert.is(await rawStatus(server, headers), status, label);
    }
  } finally {
    await guarded.server.close();
  }
});

matrix('over HTTP/2 (no Host header) Origin is compared with :authority', async () => {
  const app = new Koa();
  app.use(crossOriginProtection());
  app.use((ctx) => {
    ctx.body = { ok: true };
  });
  const server = createHttp2Server(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const client = connectHttp2(`http://127.0.0.1:${port}`);
  const post = (origin: string) =>
    new Promise<number>((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': '/', origin });
      let status = 0;
      req.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      req.on('error', reject);
      req.resume();
      req.on('end', () => resolve(status));
      req.end();
    });
  try {
    assert.is(await post(`http://127.0.0.1:${port}`), 200, 'the server itself');
    assert.is(await post('http://127.0.0.1:1'), 403, 'another port');
    assert.is(await post('https://evil.test'), 403);
  } finally {
    client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

matrix('safe methods are never checked', async () => {
  const guarded = await guardedApp();
  try {
    const hostile = { Origin: 'https://evil.test', 'Sec-Fetch-Site': 'cross-site' };
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      assert.is(await statusOf(guarded.server, method, hostile), 200, method);
    }
  } finally {
    await guarded.server.close();
  }
});

matrix('a request with neither Sec-Fetch-Site nor Origin passes (non-browser clients)', async () => {
  const guarded = await guardedApp();
  try {
    assert.is(await statusOf(guarded.server, 'POST', {}), 200);
    assert.is(
      await statusOf(guarded.server, 'PUT', { 'Sec-Fetch-Site': '', Origin: '' }),
      200,
      'empty = absent',
    );
  } finally {
    await guarded.server.close();
  }
});

const options = suite('crossOriginProtection options');

options('refuses origins that are not scheme://host[:port], naming the option', () => {
  const bad: CrossOriginProtectionOptions[] = [
    { trustedOrigins: ['null'] },
    { trustedOrigins: ['https://app.example.com/'] },
    { trustedOrigins: ['app.example.com'] },
    { trustedOrigins: 'https://app.example.com' as unknown as string[] },
    { publicOrigin: 'https://auth.example.com/login' },
    { publicOrigin: '' },
  ];
  for (const option of bad) {
    assert.throws(
      () => crossOriginProtection(option),
      (e: unknown) => e instanceof InvalidOptionError && /trustedOrigins|publicOrigin/.test(e.message),
      JSON.stringify(option),
    );
  }
});

matrix.run();
options.run();
