import {
  AccessTokens,
  generateDevelopmentKey,
  InvalidOptionError,
  KeyRing,
  type Session,
  SessionStore,
  type SessionToken,
} from '@latchkey/core';
import type { TestClock } from '@latchkey/testing';
import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import Koa from 'koa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type Auth,
  INSUFFICIENT_USER_AUTHENTICATION,
  latchkeyErrors,
  type RequireAuthOptions,
  requireAuth,
} from '../src/index.js';
import { serve, type TestServer } from './support/http-client.js';

const dev = await generateDevelopmentKey();
const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });

interface Harness {
  readonly sessions: SessionStore;
  readonly tokens: AccessTokens;
  readonly server: TestServer;
  /** How often the protected route ran. */
  readonly reached: () => number;
  /** A session made with `amr`: its cookie value and an access token that signs the same `amr`. */
  login(userId: string, amr: readonly string[]): Promise<{ cookie: string; bearer: string }>;
}

/** An app whose one route is guarded by `requireAuth(assurance)`; a `sid` cookie loads the session. */
async function harness(
  assurance: Omit<RequireAuthOptions, 'accessTokens'>,
  common: { redis: BackendContext['redis']; clock: TestClock; prefix: string },
): Promise<Harness> {
  const sessions = new SessionStore(common);
  const tokens = new AccessTokens({ ...common, keyRing });
  let reached = 0;
  const app = new Koa<{ auth?: Auth; session?: Session<Record<string, unknown>> | null }>();
  app.use(latchkeyErrors());
  app.use(async (ctx, next) => {
    const value = /(?:^|; )sid=([^;]+)/.exec(ctx.get('cookie'))?.[1];
    ctx.state.session = value === undefined ? null : await sessions.get(value as SessionToken);
    await next();
  });
  app.use(requireAuth({ accessTokens: tokens, ...assurance }));
  app.use((ctx) => {
    reached++;
    ctx.body = { auth: ctx.state.auth };
  });
  const server = await serve(app);
  return {
    sessions,
    tokens,
    server,
    reached: () => reached,
    login: async (userId, amr) => {
      const { session, token } = await sessions.create(userId, {}, { amr });
      const issued = await tokens.issue({ userId, sessionId: session.id, amr: session.amr });
      return { cookie: `sid=${token}`, bearer: `Bearer ${issued.token}` };
    },
  };
}

/** The request reaches the route; resolves with the `auth` it saw. */
async function expectPass(h: Harness, headers: Record<string, string>): Promise<Auth> {
  const before = h.reached();
  const response = await h.server.request('/', { headers });
  assert.is(response.status, 200, JSON.stringify(headers).slice(0, 60));
  assert.is(h.reached(), before + 1);
  return ((await response.json()) as { auth: Auth }).auth;
}

/** The request is refused with RFC 9470's 401 and never reaches the route. */
async function expectInsufficient(h: Harness, headers: Record<string, string>): Promise<void> {
  const before = h.reached();
  const response = await h.server.request('/', { headers });
  assert.is(response.status, 401, JSON.stringify(headers).slice(0, 60));
  assert.is(response.headers.get('www-authenticate'), 'Bearer error="insufficient_user_authentication"');
  assert.is(response.headers.get('cache-control'), 'no-store');
  assert.equal(await response.json(), { ...INSUFFICIENT_USER_AUTHENTICATION });
  assert.is(h.reached(), before, 'the route did not run');
}

backendSuite('requireAuth({ mfa, amr })', (test) => {
  test('mfa: true passes a session made with mfa, by cookie and by bearer token, and exposes its amr', async (ctx) => {
    const h = await harness({ mfa: true }, ctx);
    try {
      const { cookie, bearer } = await h.login('user-1', ['pwd', 'otp', 'mfa']);
      const viaCookie = await expectPass(h, { cookie });
      assert.is(viaCookie.via, 'session');
      assert.equal(viaCookie.amr, ['pwd', 'otp', 'mfa']);
      const viaBearer = await expectPass(h, { authorization: bearer });
      assert.is(viaBearer.via, 'bearer');
      assert.equal(viaBearer.amr, ['pwd', 'otp', 'mfa']);
    } finally {
      await h.server.close();
    }
  });

  test('mfa: true refuses a password-only session or one without amr with 401 insufficient_user_authentication', async (ctx) => {
    const h = await harness({ mfa: true }, ctx);
    try {
      const pwd = await h.login('user-2', ['pwd']);
      await expectInsufficient(h, { cookie: pwd.cookie });
      await expectInsufficient(h, { authorization: pwd.bearer });
      const none = await h.login('user-2', []);
      await expectInsufficient(h, { cookie: none.cookie });
      await expectInsufficient(h, { authorization: none.bearer });
      // A bearer header decides alone: a strong cookie does not lift a weak token.
      const strong = await h.login('user-2', ['hwk', 'mfa']);
      await expectInsufficient(h, { cookie: strong.cookie, authorization: pwd.bearer });
    } finally {
      await h.server.close();
    }
  });

  test('a missing or invalid credential is still 401 unauthenticated, not an assurance refusal', async (ctx) => {
    const h = await harness({ mfa: true }, ctx);
    try {
      const anonymous = await h.server.request('/');
      assert.is(anonymous.status, 401);
      assert.is(anonymous.headers.get('www-authenticate'), 'Bearer');
      const forged = await h.server.request('/', { headers: { authorization: 'Bearer nope' } });
      assert.is(forged.status, 401);
      assert.is(forged.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
      assert.is(h.reached(), 0);
    } finally {
      await h.server.close();
    }
  });

  test('an amr predicate decides; with mfa: true both must hold', async (ctx) => {
    const seen: (readonly string[])[] = [];
    const hardwareKey = (amr: readonly string[]) => {
      seen.push(amr);
      return amr.includes('hwk');
    };
    const h = await harness({ amr: hardwareKey }, ctx);
    const both = await harness({ mfa: true, amr: hardwareKey }, ctx);
    try {
      const hwk = await h.login('user-3', ['hwk']);
      const swk = await h.login('user-3', ['swk', 'mfa']);
      await expectPass(h, { cookie: hwk.cookie });
      await expectPass(h, { authorization: hwk.bearer });
      await expectInsufficient(h, { cookie: swk.cookie });
      await expectInsufficient(h, { authorization: swk.bearer });
      assert.equal(seen, [['hwk'], ['hwk'], ['swk', 'mfa'], ['swk', 'mfa']], 'the predicate saw each amr');
      await expectInsufficient(both, { cookie: hwk.cookie }); // hwk without mfa
      await expectInsufficient(both, { cookie: swk.cookie }); // mfa without hwk
      const strong = await both.login('user-3', ['hwk', 'mfa']);
      await expectPass(both, { cookie: strong.cookie });
      await expectPass(both, { authorization: strong.bearer });
    } finally {
      await h.server.close();
      await both.server.close();
    }
  });

  test('only a literal true from the predicate passes (fail closed)', async (ctx) => {
    const h = await harness({ amr: (() => 'yes') as unknown as () => boolean }, ctx);
    try {
      const { cookie } = await h.login('user-4', ['pwd']);
      await expectInsufficient(h, { cookie });
    } finally {
      await h.server.close();
    }
  });

  test('without mfa or amr every valid session passes, as before', async (ctx) => {
    const h = await harness({ mfa: false }, ctx);
    try {
      const { cookie, bearer } = await h.login('user-5', []);
      assert.equal((await expectPass(h, { cookie })).amr, []);
      assert.equal((await expectPass(h, { authorization: bearer })).amr, []);
    } finally {
      await h.server.close();
    }
  });
});

const options = suite('requireAuth() assurance options');

options('refuse an mfa that is not a boolean and an amr that is not a function, naming them', () => {
  const accessTokens = { verify: async () => ({ ok: false, reason: 'malformed' }) as const };
  assert.throws(
    () => requireAuth({ accessTokens, mfa: 'yes' as never }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.includes('mfa'),
  );
  assert.throws(
    () => requireAuth({ accessTokens, amr: ['mfa'] as never }),
    (e: unknown) => e instanceof InvalidOptionError && e.message.includes('amr'),
  );
});

options.run();
