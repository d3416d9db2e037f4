import {
  CrossSlotError,
  EvictionPolicyError,
  InvalidInputError,
  InvalidOptionError,
  KeyError,
  type LatchkeyError,
  type LatchkeyErrorCode,
  RefreshTokenReusedError,
  SessionDataTooLargeError,
  StaleAuthenticationError,
  StoreFailedError,
  StoreUnavailableError,
} from '@latchkey/core';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HTTP_ERRORS, latchkeyErrors } from '../src/index.js';
import { serve } from './support/http-client.js';

/**
 * An app whose only route throws what `fail` returns; `seen` collects what reached onServerError,
 * `emitted` what reached `app.on('error')` (with the status answered).
 */
async function appThrowing(fail: (ctx: Koa.Context) => unknown) {
  const seen: unknown[] = [];
  const emitted: Array<{ error: unknown; status: number }> = [];
  const app = new Koa();
  app.on('error', (error: unknown, ctx: Koa.Context) => emitted.push({ error, status: ctx.status }));
  app.use(latchkeyErrors({ onServerError: (error) => seen.push(error) }));
  app.use((ctx) => {
    throw fail(ctx);
  });
  return { server: await serve(app), seen, emitted };
}

const latchkeyErrorsSuite = suite('latchkeyErrors');

latchkeyErrorsSuite('a store outage answers 503 JSON with Retry-After: 1, never 500', async () => {
  const { server, seen } = await appThrowing(() => new StoreUnavailableError('Redis did not answer'));
  try {
    const response = await server.request('/');
    assert.is(response.status, 503);
    assert.is(response.headers.get('retry-after'), '1');
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(await response.json(), {
      error: 'unavailable',
      message: 'the service is temporarily unavailable',
    });
    assert.is(seen.length, 1, 'the outage reaches onServerError for logging');
  } finally {
    await server.close();
  }
});

latchkeyErrorsSuite('an unexpected store reply is 503 with Retry-After too, without details', async () => {
  const { server } = await appThrowing(() => new StoreFailedError('Redis rejected script session-get'));
  try {
    const response = await server.request('/');
    assert.is(response.status, 503);
    assert.is(response.headers.get('retry-after'), '1');
    const text = await response.text();
    assert.not.match(text, /session-get/);
  } finally {
    await server.close();
  }
});

latchkeyErrorsSuite('client-facing latchkey errors keep their status and code', async () => {
  const cases: Array<[Error, number, string]> = [
    [new InvalidInputError('user id must be a non-empty string'), 400, 'invalid_request'],
    [new StaleAuthenticationError(1_700_000_000_000), 401, 'unauthenticated'],
    [new RefreshTokenReusedError('sid'), 401, 'refresh_token_reused'],
  ];
  for (const [error, status, code] of cases) {
    const { server, seen } = await appThrowing(() => error);
    try {
      const response = await server.request('/');
      assert.is(response.status, status, code);
      assert.is(response.headers.get('retry-after'), null);
      assert.is(((await response.json()) as { error: string }).error, code);
      assert.is(seen.length, 0, '4xx are not server errors');
    } finally {
      await server.close();
    }
  }
});

latchkeyErrorsSuite('ctx.throw keeps its status, its headers and a JSON body', async () => {
  const { server } = await appThrowing((ctx) =>
    ctx.throw(405, 'use GET', { headers: { Allow: 'GET, HEAD' } }),
  );
  try {
    const response = await server.request('/', { method: 'POST' });
    assert.is(response.status, 405);
    assert.is(response.headers.get('allow'), 'GET, HEAD');
    assert.equal(await response.json(), { error: 'method_not_allowed', message: 'use GET' });
  } finally {
    await server.close();
  }
});

latchkeyErrorsSuite('an unexpected error is 500 internal_error and reveals nothing', async () => {
  const { server, seen } = await appThrowing(() => new Error('token v1.secret leaked in a message'));
  try {
    const response = await server.request('/');
    assert.is(response.status, 500);
    const text = await response.text();
    assert.equal(JSON.parse(text), { error: 'internal_error', message: 'internal error' });
    assert.not.match(text, /secret/);
    assert.is(seen.length, 1);
  } finally {
    await server.close();
  }
});

latchkeyErrorsSuite('a 4xx error that is not to be exposed does not show its message', async () => {
  const { server } = await appThrowing(() =>
    Object.assign(new Error('internal detail'), { status: 400, expose: false }),
  );
  try {
    const response = await server.request('/');
    assert.is(response.status, 400);
    assert.equal(await response.json(), { error: 'invalid_request', message: 'request refused' });
  } finally {
    await server.close();
  }
});

latchkeyErrorsSuite(
  'a 4xx error that does not say expose: true keeps its message to itself, as in Koa',
  async () => {
    // A JSON parser's error: status 400, no `expose`, and V8's message quotes the raw body.
    const parseError = Object.assign(new SyntaxError('Unexpected token s in JSON: "secret-password"'), {
      status: 400,
    });
    const { server } = await appThrowing(() => parseError);
    try {
      const response = await server.request('/');
      assert.is(response.status, 400);
      const text = await response.text();
      assert.equal(JSON.parse(text), { error: 'invalid_request', message: 'request refused' });
      assert.not.match(text, /secret-password/);
    } finally {
      await server.close();
    }
  },
);

latchkeyErrorsSuite(
  'a latchkey error from a second copy of @latchkey/core is still mapped (503, not 500)',
  async () => {
    // What a second copy of the package would throw: the same class names, a different class identity.
    class LatchkeyError extends Error {
      readonly code: string;
      constructor(code: string, message: string) {
        super(message);
        this.code = code;
      }
    }
    class StoreUnavailableError extends LatchkeyError {
      constructor() {
        super('ERR_STORE_UNAVAILABLE', 'Redis did not answer session-get within 1000 ms');
      }
    }
    const { server, seen } = await appThrowing(() => new StoreUnavailableError());
    try {
      const response = await server.request('/');
      assert.is(response.status, 503);
      assert.is(response.headers.get('retry-after'), '1');
      assert.equal(await response.json(), {
        error: 'unavailable',
        message: 'the service is temporarily unavailable',
      });
      assert.is(seen.length, 1);
    } finally {
      await server.close();
    }
    const newer = await appThrowing(() => new LatchkeyError('ERR_FROM_A_NEWER_CORE', 'detail'));
    try {
      const response = await newer.server.request('/');
      assert.is(response.status, 500, 'a code the table does not know');
      assert.equal(await response.json(), { error: 'internal_error', message: 'internal error' });
      assert.is(newer.seen.length, 1);
    } finally {
      await newer.server.close();
    }
  },
);

latchkeyErrorsSuite(
  'a broken status or header on a thrown error never escapes as a plain-text 500',
  async () => {
    const cases: Array<[unknown, number]> = [
      [Object.assign(new Error('x'), { status: 400.5 }), 500],
      [Object.assign(new Error('x'), { status: 429, expose: true, headers: { 'Retry-After': 'a\nb' } }), 429],
      [
        Object.assign(new Error('x'), {
          status: 401,
          expose: true,
          headers: { 'bad name': 'v', Ok: ['1', '2'] },
        }),
        401,
      ],
    ];
    for (const [error, status] of cases) {
      const { server } = await appThrowing(() => error);
      try {
        const response = await server.request('/');
        assert.is(response.status, status);
        assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
        assert.type(((await response.json()) as { error: unknown }).error, 'string');
        if (status === 401) assert.is(response.headers.get('ok'), '1, 2', 'the valid header still goes out');
      } finally {
        await server.close();
      }
    }
  },
);

latchkeyErrorsSuite(
  "every 5xx is emitted as the app's 'error' event after the answer is set; 4xx are not",
  async () => {
    const outage = new StoreUnavailableError('Redis did not answer');
    const bug = new Error('a bug');
    const cases: Array<[unknown, number, number]> = [
      [outage, 503, 1],
      [bug, 500, 1],
      [new InvalidInputError('bad'), 400, 0],
      [new RefreshTokenReusedError('sid'), 401, 0],
    ];
    for (const [error, status, count] of cases) {
      const { server, emitted } = await appThrowing(() => error);
      try {
        const response = await server.request('/');
        assert.is(response.status, status);
        await response.arrayBuffer();
        assert.is(emitted.length, count, String(error));
        if (count === 1) {
          assert.is(emitted[0]?.error, error, 'the error itself, for the stack');
          assert.is(emitted[0]?.status, status);
        }
      } finally {
        await server.close();
      }
    }
  },
);

latchkeyErrorsSuite(
  'a thrown non-error is emitted as an Error; a throwing listener changes nothing',
  async () => {
    const { server, emitted } = await appThrowing(() => 'a string');
    try {
      const response = await server.request('/');
      assert.is(response.status, 500);
      assert.ok(emitted[0]?.error instanceof Error, "Koa's default listener throws on anything else");
    } finally {
      await server.close();
    }
    const app = new Koa();
    app.on('error', () => {
      throw new Error('the logger is broken');
    });
    app.use(latchkeyErrors());
    app.use(() => {
      throw new StoreUnavailableError('down');
    });
    const broken = await serve(app);
    try {
      const response = await broken.request('/');
      assert.is(response.status, 503);
      assert.equal(await response.json(), {
        error: 'unavailable',
        message: 'the service is temporarily unavailable',
      });
    } finally {
      await broken.close();
    }
  },
);

const shape = suite('LatchkeyError as an http-errors error');

/** One error of every class core exports, by code. */
const ONE_OF_EACH: Record<LatchkeyErrorCode, LatchkeyError> = {
  ERR_INVALID_OPTION: new InvalidOptionError('x must be y'),
  ERR_INVALID_INPUT: new InvalidInputError('bad'),
  ERR_STORE_UNAVAILABLE: new StoreUnavailableError('down'),
  ERR_STORE_FAILED: new StoreFailedError('odd reply'),
  ERR_CROSS_SLOT: new CrossSlotError('two slots'),
  ERR_EVICTION_POLICY: new EvictionPolicyError('allkeys-lru'),
  ERR_SESSION_STALE_AUTH: new StaleAuthenticationError(1),
  ERR_SESSION_DATA_TOO_LARGE: new SessionDataTooLargeError(10),
  ERR_REFRESH_REUSED: new RefreshTokenReusedError('sid'),
  ERR_KEY_INVALID: new KeyError('not a key'),
};

shape('status, expose and headers agree with the koa table: one mapping, never 500 for Redis', () => {
  for (const [code, error] of Object.entries(ONE_OF_EACH) as Array<[LatchkeyErrorCode, LatchkeyError]>) {
    assert.is(error.code, code);
    assert.is(error.status, HTTP_ERRORS[code].status, code);
    assert.is(error.statusCode, error.status, code);
    assert.is(error.expose, error.status < 500, `${code}: 5xx never shows its message`);
    if (error.status === 503) assert.equal(error.headers, { 'Retry-After': '1' }, code);
    else assert.is(error.headers, undefined, code);
  }
});

shape(
  "without latchkeyErrors(), Koa's own handler answers a store outage 503 with Retry-After, no details",
  async () => {
    const app = new Koa();
    const emitted: unknown[] = [];
    app.on('error', (error: unknown) => emitted.push(error));
    app.use((ctx) => {
      if (ctx.path === '/reused') throw new RefreshTokenReusedError('sid');
      throw new StoreUnavailableError('Redis at 10.0.0.7:6379 did not answer session-get');
    });
    const server = await serve(app);
    try {
      const response = await server.request('/');
      assert.is(response.status, 503);
      assert.is(response.headers.get('retry-after'), '1');
      assert.is(await response.text(), 'Service Unavailable');
      const reused = await server.request('/reused');
      assert.is(reused.status, 401);
      assert.is(await reused.text(), 'refresh token reuse detected; the session has been revoked');
      assert.is(emitted.length, 2);
    } finally {
      await server.close();
    }
  },
);

const table = suite('HTTP_ERRORS');

table('maps every code to a JSON error code, and no infrastructure failure to 500', () => {
  const infrastructure: LatchkeyErrorCode[] = [
    'ERR_STORE_UNAVAILABLE',
    'ERR_STORE_FAILED',
    'ERR_CROSS_SLOT',
    'ERR_EVICTION_POLICY',
  ];
  for (const [code, mapping] of Object.entries(HTTP_ERRORS)) {
    assert.ok(mapping.status >= 400 && mapping.status <= 599, code);
    assert.match(mapping.error, /^[a-z_]+$/, code);
    assert.ok(mapping.message.length > 0, code);
  }
  for (const code of infrastructure) assert.is(HTTP_ERRORS[code].status, 503, code);
});

latchkeyErrorsSuite.run();
shape.run();
table.run();
