import {
  InvalidOptionError,
  LoginLimiter,
  type LoginLimiterOptions,
  normalizeIdentifier,
  type RedisClient,
  ServerSecret,
  SessionDataTooLargeError,
  StoreUnavailableError,
} from '@latchkey/core';
import { type BackendContext, backendSuite, realRedisSuite } from '@latchkey/testing/backends';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually } from '../../core/test/helpers/assertions.js';
import { type OwnRedis, startOwnRedis } from '../../core/test/helpers/own-redis.js';
import {
  type LoginLimiterMiddlewareOptions,
  type LoginLimitState,
  latchkeyErrors,
  loginLimiter,
  rateLimit,
} from '../src/index.js';
import { serve, type TestServer } from './support/http-client.js';

const HOUR = 3_600_000;
/** Limiter keys outlive their window by one second (clock skew between servers). */
const KEY_SLACK_MS = 1000;
const secret = ServerSecret.generate();
const PASSWORD = 'correct horse battery staple';

interface State extends LoginLimitState {
  body?: Record<string, unknown>;
}

interface LoginApp {
  readonly server: TestServer;
  readonly limiter: LoginLimiter;
  /** How many requests reached the password comparison. */
  readonly passwordChecks: number;
  /** `POST /login` from `ip` (sent as X-Forwarded-For; the app trusts one proxy). */
  login(email: unknown, password: string, ip: string, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

/**
 * A small Koa app: a JSON body reader, `POST /login` behind `loginLimiter` over a one-user store
 * (alice@example.com), which answers 401 `invalid_credentials` for unknown emails and wrong passwords
 * alike; `POST /validate-first` answers 400 before any password check; `POST /reset` behind
 * `rateLimit`. Known-device cookies are minted on success.
 */
async function loginApp(
  redis: RedisClient,
  limiterOptions: Partial<LoginLimiterOptions> & Pick<LoginLimiterOptions, 'clock' | 'prefix'>,
  middlewareOptions: Partial<LoginLimiterMiddlewareOptions<State>> = {},
  beforeAnswer: () => Promise<void> = async () => {},
): Promise<LoginApp> {
  const limiter = new LoginLimiter({ redis, secret, ...limiterOptions });
  let passwordChecks = 0;
  const app = new Koa<State>();
  app.silent = true; // the 5xx latchkeyErrors() emits would be printed by Koa's default listener
  app.proxy = true;
  app.use(latchkeyErrors());
  app.use(async (ctx, next) => {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      ctx.state.body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', message: 'malformed JSON' };
      return;
    }
    await next();
  });
  const guard = loginLimiter<State>({
    limiter,
    identifier: (ctx) => ctx.state.body?.['email'],
    knownDevice: (ctx) => ctx.cookies.get('kd'),
    ...middlewareOptions,
  });
  const reset = rateLimit<State>({ limiter, action: 'password-reset', limit: 3, windowMs: 60_000 });
  app.use(async (ctx, next) => {
    if (ctx.path === '/reset') {
      await reset(ctx, async () => {
        ctx.status = 202;
        ctx.body = { status: 'sent' };
      });
      return;
    }
    if (ctx.path === '/validate-first') {
      await guard(ctx, async () => {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', message: 'password too short' };
      });
      return;
    }
    if (ctx.path === '/redirects' || ctx.path === '/throws-404') {
      // A route whose wrong-password answer is not a 401: a redirect back to the form, or a 404.
      await guard(ctx, async () => {
        passwordChecks++;
        if (ctx.path === '/redirects') ctx.redirect('/form?error=1');
        else ctx.throw(404, 'no such account');
      });
      return;
    }
    if (ctx.path === '/throws') {
      await guard(ctx, async () => {
        passwordChecks++;
        ctx.throw(401, 'invalid credentials');
      });
      return;
    }
    if (ctx.path === '/too-large') {
      // A route that checked the password, then stored request data too large for the session: a
      // latchkey error with status 413, which must not give the attempt back.
      await guard(ctx, async () => {
        passwordChecks++;
        throw new SessionDataTooLargeError(4096);
      });
      return;
    }
    await next();
  });
  app.use(guard);
  app.use(async (ctx) => {
    passwordChecks++;
    await beforeAnswer();
    const email = normalizeIdentifier(ctx.state.body?.['email']);
    if (email === 'alice@example.com' && ctx.state.body?.['password'] === PASSWORD) {
      ctx.cookies.set('kd', limiter.issueKnownDevice(email), { httpOnly: true });
      ctx.body = { ok: true };
      return;
    }
    ctx.status = 401;
    ctx.body = { error: 'invalid_credentials', message: 'wrong email or password' };
  });
  const server = await serve(app);
  return {
    server,
    limiter,
    get passwordChecks() {
      return passwordChecks;
    },
    login: (email, password, ip, headers = {}) =>
      server.request('/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, ...headers },
        body: JSON.stringify({ email, password }),
      }),
    close: () => server.close(),
  };
}

function appFor(
  ctx: BackendContext,
  limiterOptions: Partial<LoginLimiterOptions> = {},
  middlewareOptions: Partial<LoginLimiterMiddlewareOptions<State>> = {},
): Promise<LoginApp> {
  return loginApp(ctx.redis, { clock: ctx.clock, prefix: ctx.prefix, ...limiterOptions }, middlewareOptions);
}

async function expect429(response: Response): Promise<number> {
  assert.is(response.status, 429);
  assert.equal(await response.json(), {
    error: 'too_many_attempts',
    message: 'too many attempts; please try again later',
  });
  const retryAfter = response.headers.get('retry-after') ?? '';
  assert.match(retryAfter, /^[1-9]\d*$/);
  return Number(retryAfter);
}

async function expectStatus(response: Response, status: number): Promise<void> {
  assert.is(response.status, status, `expected ${status}, got ${response.status}: ${await response.text()}`);
}

backendSuite('loginLimiter middleware', (test) => {
  test('30 parallel wrong passwords with a limit of 5: 5 reach the password check, 25 get 429', async (ctx) => {
    const app = await appFor(ctx);
    try {
      const responses = await Promise.all(
        Array.from({ length: 30 }, () => app.login('alice@example.com', 'guess', '198.51.100.1')),
      );
      assert.is(app.passwordChecks, 5);
      assert.is(responses.filter((r) => r.status === 401).length, 5);
      for (const r of responses.filter((x) => x.status !== 401)) await expect429(r);
    } finally {
      await app.close();
    }
  });

  test('the 6th attempt with the right password is still refused', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (let i = 0; i < 5; i++)
        await expectStatus(await app.login('alice@example.com', 'nope', '192.0.2.1'), 401);
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.1'));
      assert.is(app.passwordChecks, 5);
    } finally {
      await app.close();
    }
  });

  test('an unknown account is throttled exactly like a known one', async (ctx) => {
    const app = await appFor(ctx);
    try {
      const trace = async (email: string) => {
        const out: string[] = [];
        for (let i = 0; i < 7; i++) {
          const r = await app.login(email, 'nope', '192.0.2.2');
          out.push(
            `${r.status} ${r.headers.get('retry-after')} ${r.headers.get('ratelimit')} ${await r.text()}`,
          );
        }
        return out;
      };
      assert.equal(await trace('alice@example.com'), await trace('nobody@example.com'));
    } finally {
      await app.close();
    }
  });

  test('an IPv4 client seen as ::ffff:a.b.c.d is its own IPv4 bucket', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (let i = 0; i < 5; i++) await app.login('alice@example.com', 'nope', '::ffff:203.0.113.9');
      await expect429(await app.login('alice@example.com', PASSWORD, '203.0.113.9'));
      await expectStatus(await app.login('alice@example.com', PASSWORD, '::ffff:203.0.113.10'), 200);
    } finally {
      await app.close();
    }
  });

  test('another IP is not blocked by account+IP failures; the per-IP policy blocks across accounts', async (ctx) => {
    const app = await appFor(ctx, { ip: { maxFailures: 10 } });
    try {
      for (let i = 0; i < 5; i++) await app.login('alice@example.com', 'nope', '192.0.2.3');
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.3'));
      await expectStatus(await app.login('alice@example.com', PASSWORD, '192.0.2.4'), 200);
      for (let i = 0; i < 5; i++)
        await expectStatus(await app.login(`u${i}@example.com`, 'x', '192.0.2.3'), 401);
      const blocked = await app.login('fresh@example.com', 'x', '192.0.2.3');
      assert.match(blocked.headers.get('ratelimit') ?? '', /^"ip";r=0;t=\d+$/);
      await expect429(blocked);
    } finally {
      await app.close();
    }
  });

  test('a success clears the account+IP failures but not the per-IP count', async (ctx) => {
    const app = await appFor(ctx, { ip: { maxFailures: 7 } });
    try {
      for (let i = 0; i < 4; i++) await app.login('alice@example.com', 'nope', '192.0.2.5');
      await expectStatus(await app.login('alice@example.com', PASSWORD, '192.0.2.5'), 200);
      // account+IP is back to 5, the IP keeps its 4 failures: 3 more failures exhaust it.
      for (let i = 0; i < 3; i++)
        await expectStatus(await app.login('alice@example.com', 'nope', '192.0.2.5'), 401);
      const r = await app.login('alice@example.com', PASSWORD, '192.0.2.5');
      assert.match(r.headers.get('ratelimit') ?? '', /^"ip";r=0;/);
      await expect429(r);
    } finally {
      await app.close();
    }
  });

  test('Retry-After is whole seconds rounded up, at least 1, matching RateLimit t; windows expire', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (let i = 0; i < 5; i++) await app.login('alice@example.com', 'nope', '192.0.2.6');
      await ctx.advance(1500);
      let r = await app.login('alice@example.com', PASSWORD, '192.0.2.6');
      assert.is(await expect429(r), 3599, 'ceil(3598.5 s)');
      assert.is(r.headers.get('ratelimit'), '"account-ip";r=0;t=3599');
      assert.is(r.headers.get('ratelimit-policy'), '"account-ip";q=5;w=3600, "ip";q=100;w=3600');
      await ctx.advance(HOUR - 1500 - 1);
      r = await app.login('alice@example.com', PASSWORD, '192.0.2.6');
      assert.is(await expect429(r), 1, '1 ms left is still 1 s');
      await ctx.advance(1);
      await expectStatus(await app.login('alice@example.com', PASSWORD, '192.0.2.6'), 200);
    } finally {
      await app.close();
    }
  });

  test('allowed attempts carry RateLimit fields for the most constrained policy', async (ctx) => {
    const app = await appFor(ctx);
    try {
      const r = await app.login('alice@example.com', 'nope', '192.0.2.7');
      assert.is(r.status, 401);
      assert.is(r.headers.get('ratelimit'), '"account-ip";r=4;t=3600');
      assert.is(r.headers.get('ratelimit-policy'), '"account-ip";q=5;w=3600, "ip";q=100;w=3600');
    } finally {
      await app.close();
    }
  });

  test('a login costs one round trip to check and one to settle a success (none for a failure)', async (ctx) => {
    const app = await appFor(ctx);
    try {
      await app.login('alice@example.com', PASSWORD, '192.0.2.8'); // registers the scripts
      assert.is(await ctx.roundTrips.measure(() => app.login('alice@example.com', PASSWORD, '192.0.2.8')), 2);
      assert.is(await ctx.roundTrips.measure(() => app.login('alice@example.com', 'nope', '192.0.2.8')), 1);
    } finally {
      await app.close();
    }
  });

  test('garbage identifiers get a clear 400 (or count in a defined key), never a 5xx', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (const email of ['', '   ', 'x'.repeat(10 * 1024), undefined, null, 42, ['a@x.io'], { a: 1 }]) {
        const r = await app.login(email, 'pw', '192.0.2.9');
        assert.is(r.status, 400, JSON.stringify(email)?.slice(0, 30));
        assert.equal(await r.json(), {
          error: 'invalid_request',
          message: 'the login identifier is missing or invalid',
        });
      }
      assert.is(app.passwordChecks, 0);
      assert.equal(await ctx.keys(), [], 'nothing counted');
      // Unicode is an identifier like any other; a missing client IP counts in the one unknown bucket.
      await expectStatus(await app.login('Jos\u00e9@Ex\u00e4mple.com \u{1F511}', 'pw', '192.0.2.9'), 401);
      await expectStatus(await app.login('alice@example.com', 'pw', 'not an ip'), 401);
      assert.ok((await ctx.keys()).some((k) => k.includes('{unknown}')));
    } finally {
      await app.close();
    }
  });

  test('a missing client IP is counted in the unknown bucket', async (ctx) => {
    const app = await appFor(ctx, {}, { ip: () => undefined });
    try {
      for (let i = 0; i < 5; i++)
        await expectStatus(await app.login('alice@example.com', 'x', '192.0.2.1'), 401);
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.2'));
    } finally {
      await app.close();
    }
  });

  test('an answer that never reached the password check (400) gives the attempt back', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (let i = 0; i < 8; i++) {
        const r = await app.server.request('/validate-first', {
          method: 'POST',
          headers: { 'x-forwarded-for': '192.0.2.10' },
          body: JSON.stringify({ email: 'alice@example.com' }),
        });
        await expectStatus(r, 400);
      }
      await expectStatus(await app.login('alice@example.com', PASSWORD, '192.0.2.10'), 200);
    } finally {
      await app.close();
    }
  });

  test('a 401 thrown by the route counts as a failure', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (let i = 0; i < 6; i++) {
        await app.server.request('/throws', {
          method: 'POST',
          headers: { 'x-forwarded-for': '192.0.2.11' },
          body: JSON.stringify({ email: 'alice@example.com' }),
        });
      }
      assert.is(app.passwordChecks, 5);
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.11'));
    } finally {
      await app.close();
    }
  });

  test('a latchkey error thrown after the credential check counts as a failure, whatever its status', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (let i = 0; i < 6; i++) {
        const response = await app.server.request('/too-large', {
          method: 'POST',
          headers: { 'x-forwarded-for': '192.0.2.12' },
          body: JSON.stringify({ email: 'alice@example.com' }),
        });
        await response.arrayBuffer();
      }
      assert.is(app.passwordChecks, 5, 'the 413 gave no attempt back');
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.12'));
    } finally {
      await app.close();
    }
  });

  test('an answer that is neither success nor validation counts as a failure (redirect, 404)', async (ctx) => {
    const app = await appFor(ctx);
    try {
      for (const path of ['/redirects', '/throws-404']) {
        for (let i = 0; i < 6; i++) {
          const r = await app.server.request(path, {
            method: 'POST',
            headers: { 'x-forwarded-for': `192.0.2.${path.length}` },
            body: JSON.stringify({ email: 'alice@example.com' }),
            redirect: 'manual',
          });
          if (i === 5) await expect429(r);
          else assert.ok(r.status === 302 || r.status === 404, String(r.status));
        }
      }
      assert.is(app.passwordChecks, 10, 'five guesses per route, then 429');
    } finally {
      await app.close();
    }
  });

  test('isFailure decides what counts (here: a 303 back to the form)', async (ctx) => {
    const app = await appFor(ctx, {}, { isFailure: (c) => c.status === 401, isSuccess: () => false });
    try {
      // isSuccess never true: successes are given back, never clear; failures count.
      for (let i = 0; i < 5; i++) await app.login('alice@example.com', 'nope', '192.0.2.12');
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.12'));
    } finally {
      await app.close();
    }
  });

  test('per-account policy: an attacker on many IPs cannot lock out the owner on a known device', async (ctx) => {
    const app = await appFor(ctx, { account: { maxFailures: 5 } });
    try {
      const ok = await app.login('alice@example.com', PASSWORD, '192.0.2.13');
      await expectStatus(ok, 200);
      const cookie = (ok.headers.getSetCookie()[0] ?? '').split(';')[0] as string;
      assert.match(cookie, /^kd=kd1\./);
      for (let i = 0; i < 5; i++) await app.login('alice@example.com', 'guess', `203.0.113.${i + 1}`);
      const r = await app.login('alice@example.com', PASSWORD, '192.0.2.14');
      assert.match(r.headers.get('ratelimit') ?? '', /^"account";r=0;/);
      await expect429(r);
      await expectStatus(await app.login('alice@example.com', PASSWORD, '192.0.2.14', { cookie }), 200);
    } finally {
      await app.close();
    }
  });

  test('no raw identifier reaches Redis', async (ctx) => {
    const app = await appFor(ctx, { account: true });
    try {
      await app.login('Alice@Example.com', 'nope', '192.0.2.15');
      assert.not.match(JSON.stringify(await ctx.dump()).toLowerCase(), 'alice');
      await ctx.advance(24 * HOUR + KEY_SLACK_MS);
      assert.equal(await ctx.keys(), []);
    } finally {
      await app.close();
    }
  });
});

backendSuite('rateLimit middleware', (test) => {
  test('throttles a route per IP with 429, Retry-After and RateLimit fields', async (ctx) => {
    const app = await appFor(ctx);
    const reset = (ip: string) =>
      app.server.request('/reset', { method: 'POST', headers: { 'x-forwarded-for': ip }, body: '{}' });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await reset('::ffff:192.0.2.20');
        await expectStatus(r, 202);
        assert.is(r.headers.get('ratelimit'), `"password-reset";r=${2 - i};t=60`);
        assert.is(r.headers.get('ratelimit-policy'), '"password-reset";q=3;w=60');
      }
      const refused = await reset('192.0.2.20');
      assert.is(await expect429(refused), 60);
      assert.is(refused.headers.get('ratelimit'), '"password-reset";r=0;t=60');
      await expectStatus(await reset('192.0.2.21'), 202);
      assert.is(await ctx.roundTrips.measure(() => reset('192.0.2.22')), 1);
      await ctx.advance(60_000);
      await expectStatus(await reset('192.0.2.20'), 202);
    } finally {
      await app.close();
    }
  });
});

const factory = suite('loginLimiter / rateLimit options');

factory('refuse missing or mistyped options with InvalidOptionError naming them', () => {
  const redis = { defineCommand() {} } as unknown as RedisClient;
  const limiter = new LoginLimiter({ redis, secret });
  const cases: Array<[() => unknown, RegExp]> = [
    [() => loginLimiter({ limiter: {} as LoginLimiter, identifier: () => 'x' }), /limiter/],
    [() => loginLimiter({ limiter } as unknown as LoginLimiterMiddlewareOptions), /identifier/],
    [() => loginLimiter({ limiter, identifier: () => 'x', isFailure: 401 as never }), /isFailure/],
    [
      () => loginLimiter({ limiter, identifier: () => 'x', rateLimitHeaders: 'yes' as never }),
      /rateLimitHeaders/,
    ],
    [() => rateLimit({ limiter, action: 'Not Valid' }), /action/],
    [() => rateLimit({ limiter, action: 'reset', limit: 0 }), /limit/],
    [() => rateLimit({ limiter, action: 'reset', windowMs: -5 }), /windowMs/],
  ];
  for (const [make, name] of cases) {
    assert.throws(make, (e: unknown) => e instanceof InvalidOptionError && name.test(e.message), name.source);
  }
});

factory.run();

realRedisSuite('loginLimiter with Redis stopped', (test) => {
  let own: OwnRedis;

  test.before(async () => {
    own = await startOwnRedis({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
  });

  test.after(() => own.close());

  test('answers 503 unavailable with Retry-After by default, and serves again once Redis is back', async () => {
    const app = await loginApp(own.redis, { prefix: 'lkt-koa-down', commandTimeoutMs: 300 });
    try {
      await expectStatus(await app.login('alice@example.com', 'nope', '192.0.2.1'), 401);
      await own.server.stop();
      const r = await app.login('alice@example.com', PASSWORD, '192.0.2.1');
      assert.is(r.status, 503);
      assert.is(r.headers.get('retry-after'), '1');
      assert.equal(await r.json(), {
        error: 'unavailable',
        message: 'the service is temporarily unavailable',
      });
      assert.is(app.passwordChecks, 1, 'no password check without the limiter');
      await own.server.start();
      await eventually(
        async () => (await app.login('alice@example.com', PASSWORD, '192.0.2.1')).status === 200,
        'logins succeed again',
      );
    } finally {
      await app.close();
    }
  });

  test('fails open onto the bounded in-process fallback when configured', async () => {
    const app = await loginApp(own.redis, {
      prefix: 'lkt-koa-open',
      commandTimeoutMs: 300,
      failOpen: { maxPerWindow: 7 },
    });
    try {
      await own.server.stop();
      for (let i = 0; i < 5; i++)
        await expectStatus(await app.login('alice@example.com', 'nope', '192.0.2.1'), 401);
      await expect429(await app.login('alice@example.com', PASSWORD, '192.0.2.1'));
      await expectStatus(await app.login('alice@example.com', PASSWORD, '192.0.2.2'), 200);
      await expectStatus(await app.login('bob@example.com', 'x', '192.0.2.3'), 401);
      // 7 attempts let through: the allowance of this process is spent, it fails closed again.
      assert.is((await app.login('carol@example.com', 'x', '192.0.2.4')).status, 503);
      await own.server.start();
      await eventually(
        async () => (await app.login('dave@example.com', 'x', '192.0.2.5')).status === 401,
        'logins reach the password check again',
      );
    } finally {
      await app.close();
    }
  });

  test('a settle that fails after the route leaves the answer alone and reports the error', async () => {
    const errors: unknown[] = [];
    let stopNow = false;
    const app = await loginApp(
      own.redis,
      { prefix: 'lkt-koa-settle', commandTimeoutMs: 300 },
      { onSettleError: (e) => errors.push(e) },
      async () => {
        // Redis goes away between the check and the settle of this request.
        if (stopNow) await own.server.stop();
      },
    );
    try {
      stopNow = true;
      const r = await app.login('alice@example.com', PASSWORD, '192.0.2.9');
      assert.is(r.status, 200, 'the login itself stands');
      assert.is(errors.length, 1);
      assert.instance(errors[0], StoreUnavailableError);
      stopNow = false;
      await own.server.start();
      await eventually(
        async () => (await app.login('alice@example.com', PASSWORD, '192.0.2.9')).status === 200,
        'logins succeed again',
      );
    } finally {
      await app.close();
    }
  });
});
