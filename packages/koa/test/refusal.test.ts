import { type AccessTokenVerification, InvalidOptionError, LoginLimiter, ServerSecret } from '@latchkey/core';
import { createFakeRedis, TestClock } from '@latchkey/testing';
import { backendSuite } from '@latchkey/testing/backends';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type AccessTokenVerifier,
  bearer,
  crossOriginProtection,
  latchkeyErrors,
  loginLimiter,
  type RefusalMode,
  RequestRefusedError,
  rateLimit,
  requireAuth,
  requireFreshAuth,
} from '../src/index.js';
import { serve, type TestServer } from './support/http-client.js';

/** Accepts the token `good` only (the verifier's contract without Redis: these tests are about HTTP). */
const verifier: AccessTokenVerifier = {
  verify: async (token: string): Promise<AccessTokenVerification> =>
    token === 'good'
      ? ({
          ok: true,
          claims: {},
          userId: 'user-1',
          sessionId: 'sid-1',
          jti: 'jti-1',
          expiresAt: 0,
          authenticatedAt: 0,
          amr: [],
        } as unknown as AccessTokenVerification)
      : ({ ok: false, reason: 'malformed' } as AccessTokenVerification),
};

interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
}

/**
 * An app with its own error handler that formats RequestRefusedError as RFC 9457 problem+json (and
 * counts what else it saw), then `middleware`, then a route that counts how often it ran.
 */
async function problemApp(middleware: Koa.Middleware) {
  let reached = 0;
  const others: unknown[] = [];
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (!(error instanceof RequestRefusedError)) {
        others.push(error);
        throw error;
      }
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.type = 'application/problem+json';
      ctx.body = { type: `https://errors.example/${error.code}`, title: error.message, status: error.status };
    }
  });
  app.use(middleware);
  app.use((ctx) => {
    reached++;
    ctx.body = { ok: true };
  });
  const server = await serve(app);
  return { server, reached: () => reached, others };
}

async function expectProblem(
  server: TestServer,
  init: RequestInit,
  status: number,
  code: string,
): Promise<Response> {
  const response = await server.request('/', init);
  assert.is(response.status, status, code);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = (await response.json()) as Problem;
  assert.is(problem.type, `https://errors.example/${code}`);
  assert.is(problem.status, status);
  assert.type(problem.title, 'string');
  return response;
}

const throwMode = suite("refusal: 'throw'");

throwMode(
  'bearer() throws a 401 with the challenge for the app to format; the route never runs',
  async () => {
    const app = await problemApp(
      bearer({ accessTokens: verifier, refusal: 'throw', realm: 'api' }) as Koa.Middleware,
    );
    try {
      const none = await expectProblem(app.server, {}, 401, 'unauthenticated');
      assert.is(none.headers.get('www-authenticate'), 'Bearer realm="api"');
      assert.is(none.headers.get('cache-control'), 'no-store');
      const bad = await expectProblem(
        app.server,
        { headers: { authorization: 'Bearer nope' } },
        401,
        'unauthenticated',
      );
      assert.is(bad.headers.get('www-authenticate'), 'Bearer realm="api", error="invalid_token"');
      assert.is(app.reached(), 0);
      assert.is((await app.server.request('/', { headers: { authorization: 'Bearer good' } })).status, 200);
      assert.is(app.reached(), 1);
      assert.is(app.others.length, 0);
    } finally {
      await app.server.close();
    }
  },
);

throwMode('requireAuth() throws a 401 without a credential', async () => {
  const app = await problemApp(requireAuth({ accessTokens: verifier, refusal: 'throw' }) as Koa.Middleware);
  try {
    const response = await expectProblem(app.server, {}, 401, 'unauthenticated');
    assert.is(response.headers.get('www-authenticate'), 'Bearer');
    assert.is(app.reached(), 0);
  } finally {
    await app.server.close();
  }
});

throwMode(
  'requireAuth({ mfa: true }) throws insufficient_user_authentication for a one-factor token',
  async () => {
    const app = await problemApp(
      requireAuth({ accessTokens: verifier, mfa: true, refusal: 'throw', realm: 'api' }) as Koa.Middleware,
    );
    try {
      const response = await expectProblem(
        app.server,
        { headers: { authorization: 'Bearer good' } },
        401,
        'insufficient_user_authentication',
      );
      assert.is(
        response.headers.get('www-authenticate'),
        'Bearer realm="api", error="insufficient_user_authentication"',
      );
      assert.is(app.reached(), 0);
    } finally {
      await app.server.close();
    }
  },
);

throwMode('crossOriginProtection() throws a 403 csrf_rejected', async () => {
  const app = await problemApp(crossOriginProtection({ refusal: 'throw' }));
  try {
    await expectProblem(
      app.server,
      { method: 'POST', headers: { 'sec-fetch-site': 'cross-site' } },
      403,
      'csrf_rejected',
    );
    assert.is(app.reached(), 0);
  } finally {
    await app.server.close();
  }
});

throwMode('requireFreshAuth() throws reauthentication_required with the RFC 9470 challenge', async () => {
  const clock = new TestClock();
  const stale: Koa.Middleware = async (ctx, next) => {
    ctx.state['session'] = { authenticatedAt: clock.now() - 61_000 };
    await next();
  };
  const guard = requireFreshAuth({ maxAgeMs: 60_000, clock, refusal: 'throw', realm: 'app' });
  const app = await problemApp(async (ctx, next) => stale(ctx, () => guard(ctx, next)));
  try {
    const response = await expectProblem(app.server, { method: 'POST' }, 401, 'reauthentication_required');
    assert.match(
      response.headers.get('www-authenticate') ?? '',
      /^Bearer realm="app", error="insufficient_user_authentication".*max_age=60$/,
    );
    assert.is(app.reached(), 0);
  } finally {
    await app.server.close();
  }
});

throwMode('through Koa’s default handler: the status, the challenge and the generic message', async () => {
  const app = new Koa();
  app.silent = true;
  app.use(bearer({ accessTokens: verifier, refusal: 'throw' }));
  const server = await serve(app);
  try {
    const response = await server.request('/', { headers: { authorization: 'Bearer nope' } });
    assert.is(response.status, 401);
    assert.is(response.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    assert.is(await response.text(), 'the access token is not valid');
  } finally {
    await server.close();
  }
});

throwMode('through latchkeyErrors(): the same answer as the default JSON mode', async () => {
  const answers: Array<{ status: number; challenge: string | null; body: unknown }> = [];
  for (const refusal of ['json', 'throw'] as const) {
    const app = new Koa();
    app.use(latchkeyErrors());
    app.use(bearer({ accessTokens: verifier, refusal }));
    const server = await serve(app);
    try {
      const response = await server.request('/', { headers: { authorization: 'Bearer nope' } });
      answers.push({
        status: response.status,
        challenge: response.headers.get('www-authenticate'),
        body: await response.json(),
      });
    } finally {
      await server.close();
    }
  }
  assert.equal(answers[1], answers[0]);
  assert.equal(answers[0], {
    status: 401,
    challenge: 'Bearer error="invalid_token"',
    body: { error: 'unauthenticated', message: 'the access token is not valid' },
  });
});

throwMode('the thrown error is http-errors compatible', () => {
  const error = new RequestRefusedError(
    429,
    { error: 'too_many_attempts', message: 'slow down' },
    { 'Retry-After': '3' },
  );
  // What http-errors' isHttpError() checks, and what Koa's handler reads.
  assert.ok(error instanceof Error);
  assert.is(error.status, 429);
  assert.is(error.statusCode, error.status);
  assert.is(error.expose, true);
  assert.is(error.code, 'too_many_attempts');
  assert.is(error.message, 'slow down');
  assert.equal(error.headers, { 'Retry-After': '3' });
});

throwMode('every refusing middleware refuses an unknown refusal mode, naming the option', () => {
  const redis = createFakeRedis();
  const limiter = new LoginLimiter({ redis, secret: ServerSecret.generate() });
  const makers: Array<(refusal: RefusalMode) => unknown> = [
    (refusal) => bearer({ accessTokens: verifier, refusal }),
    (refusal) => requireAuth({ accessTokens: verifier, refusal }),
    (refusal) => crossOriginProtection({ refusal }),
    (refusal) => requireFreshAuth({ maxAgeMs: 1000, refusal }),
    (refusal) => loginLimiter({ limiter, identifier: () => 'a', refusal }),
    (refusal) => rateLimit({ limiter, action: 'x', refusal }),
  ];
  for (const make of makers) {
    assert.not.throws(() => make('throw'));
    assert.throws(
      () => make('problem' as RefusalMode),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes('refusal'),
    );
  }
  redis.disconnect();
});

throwMode.run();

backendSuite("refusal: 'throw' of the limiters", (test) => {
  test('loginLimiter() throws 429 with Retry-After and RateLimit, and 400 for a missing identifier', async ({
    redis,
    clock,
    prefix,
  }) => {
    const limiter = new LoginLimiter({
      redis,
      clock,
      prefix,
      secret: ServerSecret.generate(),
      accountIp: { maxFailures: 1, windowMs: 60_000 },
    });
    const app = await problemApp(
      loginLimiter({
        limiter,
        identifier: (ctx) => ctx.get('x-email') || undefined,
        refusal: 'throw',
        isFailure: () => true,
      }),
    );
    try {
      const headers = { 'x-email': 'alice@example.com' };
      const first = await app.server.request('/', { headers });
      assert.is(first.status, 200, 'the first attempt reaches the route (and counts as a failure)');
      assert.ok(first.headers.get('ratelimit') !== null, 'allowed attempts keep their RateLimit field');
      const refused = await expectProblem(app.server, { headers }, 429, 'too_many_attempts');
      assert.match(refused.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
      assert.match(refused.headers.get('ratelimit') ?? '', /;r=0;t=[1-9]/);
      assert.ok(refused.headers.get('ratelimit-policy') !== null);
      await expectProblem(app.server, {}, 400, 'invalid_request');
      assert.is(app.reached(), 1);
    } finally {
      await app.server.close();
    }
  });

  test('rateLimit() throws 429 with Retry-After beyond the limit', async ({ redis, clock, prefix }) => {
    const limiter = new LoginLimiter({ redis, clock, prefix, secret: ServerSecret.generate() });
    const app = await problemApp(rateLimit({ limiter, action: 'signup', limit: 1, refusal: 'throw' }));
    try {
      assert.is((await app.server.request('/')).status, 200);
      const refused = await expectProblem(app.server, {}, 429, 'too_many_attempts');
      assert.match(refused.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
      assert.match(refused.headers.get('ratelimit') ?? '', /^"signup";r=0;t=/);
      assert.is(app.reached(), 1);
    } finally {
      await app.server.close();
    }
  });
});
