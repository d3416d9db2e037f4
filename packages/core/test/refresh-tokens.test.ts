import {
  type BackendContext,
  backendSuite,
  realRedisSuite,
  sharedRedisServer,
} from '@latchkey/testing/backends';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AccessTokens,
  generateDevelopmentKey,
  InvalidInputError,
  InvalidOptionError,
  KeyRing,
  KeySpace,
  RefreshTokenReusedError,
  RefreshTokens,
  type RefreshTokensOptions,
  type SecurityEvent,
  ServerSecret,
  SessionStore,
  type SessionStoreOptions,
  StoreUnavailableError,
  userTag,
} from '../src/index.js';
import { sha256 } from '../src/internal/crypto.js';
import { eventually, rejects } from './helpers/assertions.js';
import { startOwnRedis } from './helpers/own-redis.js';
import { startReplyDropProxy } from './helpers/reply-drop-proxy.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const SECRET = ServerSecret.generate();

function stores(
  ctx: BackendContext,
  refreshOptions: Partial<RefreshTokensOptions> = {},
  sessionOptions: Partial<SessionStoreOptions> = {},
) {
  const events: SecurityEvent[] = [];
  const common = {
    redis: ctx.redis,
    clock: ctx.clock,
    prefix: ctx.prefix,
    onEvent: (e: SecurityEvent) => events.push(e),
  };
  const sessions = new SessionStore({ ...common, ...sessionOptions });
  const refresh = new RefreshTokens({ ...common, secret: SECRET, ...refreshOptions });
  return { sessions, refresh, events };
}

/** A session with a refresh token. */
async function login(s: ReturnType<typeof stores>, userId = 'alice') {
  const { token: cookie, session } = await s.sessions.create(userId, { role: 'user' });
  const refreshToken = await s.refresh.issue(session);
  assert.ok(refreshToken, 'issued for a live session');
  return { cookie, session, refreshToken };
}

function isReuse(e: unknown): boolean {
  return e instanceof RefreshTokenReusedError && e.code === 'ERR_REFRESH_REUSED';
}

// ---------------------------------------------------------------------------------------------------

const unit = suite('RefreshTokens (no Redis)');

unit('parseToken() accepts only r1.<43>.<22>.<43> base64url', () => {
  const token = `r1.${'A'.repeat(43)}.${'b'.repeat(22)}.${'c'.repeat(43)}`;
  assert.equal(RefreshTokens.parseToken(token), { tag: 'A'.repeat(43), sessionId: 'b'.repeat(22) });
  for (const bad of [undefined, 7, '', token.slice(1), token.replace('r1.', 'v1.'), `${token}=`, 'r1...']) {
    assert.is(RefreshTokens.parseToken(bad), null);
  }
});

unit('the constructor validates every option and names it', () => {
  const redis = { defineCommand() {} } as never;
  const cases: Array<[Partial<RefreshTokensOptions>, string]> = [
    [{ secret: 'not a secret' as never }, 'secret'],
    [{ graceMs: -1 }, 'graceMs'],
    [{ graceMs: 300_001 }, 'graceMs'],
    [{ maxRetired: 0 }, 'maxRetired'],
    [{ maxRetired: 1001 }, 'maxRetired'],
  ];
  for (const [options, name] of cases) {
    assert.throws(
      () => new RefreshTokens({ redis, secret: SECRET, ...options }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes(name),
      name,
    );
  }
  const resolved = new RefreshTokens({ redis, secret: SECRET }).options;
  assert.equal(resolved, { graceMs: 0, maxRetired: 100 });
  assert.ok(Object.isFrozen(resolved));
});

unit.run();

// ---------------------------------------------------------------------------------------------------

backendSuite('RefreshTokens.issue', (test) => {
  test('issues a token for a live session only', async (ctx) => {
    const s = stores(ctx);
    const { session, refreshToken } = await login(s);
    assert.equal(RefreshTokens.parseToken(refreshToken), { tag: userTag('alice'), sessionId: session.id });
    assert.is(await s.refresh.issue({ userId: 'alice', id: 'A'.repeat(22) }), null, 'unknown session');
    assert.is(await s.refresh.issue({ userId: 'bob', id: session.id }), null, 'another user’s session');
    await ctx.advance(HOUR + MIN);
    assert.is(await s.refresh.issue(session), null, 'expired session');
  });

  test('is one round trip and refuses malformed input before Redis', async (ctx) => {
    const s = stores(ctx);
    const { session } = await s.sessions.create('u', {});
    assert.is(await ctx.roundTrips.measure(() => s.refresh.issue(session)), 1);
    for (const bad of [{ userId: '', id: session.id }, { userId: 'u', id: 'nope' }, null]) {
      const trips = await ctx.roundTrips.measure(() =>
        rejects(s.refresh.issue(bad as never), (e) => e instanceof InvalidInputError, 'InvalidInputError'),
      );
      assert.is(trips, 0);
    }
  });

  test('issuing again retires the previous token: presenting it is reuse', async (ctx) => {
    const s = stores(ctx);
    const { session, refreshToken: first } = await login(s);
    const second = await s.refresh.issue(session);
    assert.ok(second);
    await rejects(s.refresh.rotate(first), isReuse, 'RefreshTokenReusedError');
    assert.is(await s.refresh.rotate(second), null, 'the session is gone');
  });
});

backendSuite('RefreshTokens.rotate', (test) => {
  test('replaces the token in one round trip and renews the idle deadline, never the absolute one', async (ctx) => {
    const s = stores(ctx, {}, { absoluteTimeoutMs: 3 * HOUR });
    const { session, refreshToken, cookie } = await login(s);
    let token = refreshToken as string;
    for (let i = 1; i <= 3; i++) {
      await ctx.advance(50 * MIN);
      ctx.roundTrips.reset();
      const rotated = await s.refresh.rotate(token);
      assert.is(ctx.roundTrips.count, 1);
      assert.ok(rotated, `rotation ${i}`);
      assert.is.not(rotated.token, token);
      assert.is(rotated.session.id, session.id);
      assert.equal(rotated.session.data, { role: 'user' });
      assert.is(rotated.session.lastSeenAt, ctx.clock.now());
      assert.is(rotated.session.idleExpiresAt, Math.min(ctx.clock.now() + HOUR, session.absoluteExpiresAt));
      assert.is(rotated.session.absoluteExpiresAt, session.absoluteExpiresAt);
      token = rotated.token;
    }
    assert.ok(await s.sessions.get(cookie), 'the cookie of the same session lives on');
    await ctx.advance(31 * MIN); // 181 minutes: past the absolute lifetime
    assert.is(await s.refresh.rotate(token), null);
    assert.equal(await ctx.keys(), []);
  });

  test('an idle session cannot be refreshed', async (ctx) => {
    const s = stores(ctx);
    const { refreshToken } = await login(s);
    await ctx.advance(HOUR + MIN);
    assert.is(await s.refresh.rotate(refreshToken), null);
    assert.equal(await ctx.keys(), []);
  });

  test('revokes the session when a rotated token is reused', async (ctx) => {
    const s = stores(ctx);
    const { cookie, session, refreshToken } = await login(s);
    const rotated = await s.refresh.rotate(refreshToken);
    assert.ok(rotated);
    await ctx.advance(1000);
    await rejects(
      s.refresh.rotate(refreshToken),
      (e) => isReuse(e) && (e as RefreshTokenReusedError).sessionId === session.id,
      'RefreshTokenReusedError',
    );
    assert.is(await s.refresh.rotate(rotated.token), null, 'the successor died with the session');
    assert.is(await s.sessions.get(cookie), null, 'the cookie died with the session');
    assert.equal(await s.sessions.listForUser('alice'), []);
    assert.equal(await ctx.keys(), []);
    assert.ok(
      s.events.some(
        (e) => e.type === 'refresh.reuse-detected' && e.sessionId === session.id && e.userId === 'alice',
      ),
    );
    assert.ok(s.events.some((e) => e.type === 'session.revoked' && e.reason === 'refresh-reuse'));
  });

  test('50 concurrent rotations of one token (grace 0): exactly one succeeds, then reuse revokes', async (ctx) => {
    const s = stores(ctx);
    const { cookie, refreshToken } = await login(s);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => s.refresh.rotate(refreshToken)),
    );
    const won = results.filter((r) => r.status === 'fulfilled' && r.value !== null);
    const reused = results.filter((r) => r.status === 'rejected' && isReuse(r.reason));
    const invalid = results.filter((r) => r.status === 'fulfilled' && r.value === null);
    assert.is(won.length, 1);
    // The first late call detects the reuse and revokes; the session is gone for the rest.
    assert.is(reused.length, 1);
    assert.is(invalid.length, 48);
    const winner = (won[0] as PromiseFulfilledResult<{ token: string }>).value.token;
    assert.is(await s.refresh.rotate(winner), null, 'the session was revoked by the reuse');
    assert.is(await s.sessions.get(cookie), null);
    assert.equal(await ctx.keys(), []);
  });

  test('inside the grace window a retry gets the same successor: never two live successors', async (ctx) => {
    const s = stores(ctx, { graceMs: 10_000 });
    const { refreshToken } = await login(s);
    const results = await Promise.all(Array.from({ length: 50 }, () => s.refresh.rotate(refreshToken)));
    const successors = new Set(results.map((r) => r?.token));
    assert.is(successors.size, 1, 'one successor, returned to every retry');
    const [successor] = [...successors] as string[];
    await ctx.advance(5000);
    const retried = await s.refresh.rotate(refreshToken);
    assert.is(retried?.token, successor, 'a late retry inside the window');
    const next = await s.refresh.rotate(successor as string);
    assert.ok(next, 'the successor is the live token');
    assert.is.not(next.token, successor);
  });

  test('a retry of the previous token after the grace window is reuse', async (ctx) => {
    const s = stores(ctx, { graceMs: 10_000 });
    const { cookie, refreshToken } = await login(s);
    assert.ok(await s.refresh.rotate(refreshToken));
    await ctx.advance(10_001);
    await rejects(s.refresh.rotate(refreshToken), isReuse, 'RefreshTokenReusedError');
    assert.is(await s.sessions.get(cookie), null);
  });

  test('a token two rotations old is reuse even inside the grace window', async (ctx) => {
    const s = stores(ctx, { graceMs: 60_000 });
    const { cookie, refreshToken } = await login(s);
    const first = await s.refresh.rotate(refreshToken);
    assert.ok(first);
    const second = await s.refresh.rotate(first.token);
    assert.ok(second);
    await rejects(s.refresh.rotate(refreshToken), isReuse, 'RefreshTokenReusedError');
    assert.is(await s.sessions.get(cookie), null);
    assert.is(await s.refresh.rotate(second.token), null);
  });

  test('the access tokens of a session revoked by reuse fail verification', async (ctx) => {
    const s = stores(ctx);
    const dev = await generateDevelopmentKey();
    const access = new AccessTokens({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      keyRing: await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid }),
    });
    const { session, refreshToken } = await login(s);
    const rotated = await s.refresh.rotate(refreshToken);
    assert.ok(rotated);
    const issued = await access.issue({ userId: session.userId, sessionId: session.id });
    assert.ok((await access.verify(issued.token)).ok, 'valid while the session lives');
    await rejects(s.refresh.rotate(refreshToken), isReuse, 'RefreshTokenReusedError');
    access.clearCache();
    const verdict = await access.verify(issued.token);
    assert.equal(verdict, { ok: false, reason: 'session_revoked' });
  });

  test('a forged token carrying a real session id is invalid, and the session survives', async (ctx) => {
    const s = stores(ctx);
    const { cookie, refreshToken } = await login(s);
    const forged = `${refreshToken.slice(0, -43)}${'Z'.repeat(43)}`;
    assert.is(await s.refresh.rotate(forged), null);
    assert.is(await s.refresh.revoke(forged), false);
    // Not even a forged token in the successor's place: successors are keyed by the server secret.
    const otherServer = new RefreshTokens({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      secret: ServerSecret.generate(),
    });
    const cookieSession = await s.sessions.get(cookie);
    assert.ok(cookieSession);
    assert.ok(await s.refresh.rotate(refreshToken), 'the real token still rotates');
    assert.is(await otherServer.rotate(forged), null);
    assert.ok(await s.sessions.get(cookie));
    assert.is(s.events.filter((e) => e.type === 'refresh.reuse-detected').length, 0);
  });

  test('garbage, truncated and foreign tokens are invalid, never an error', async (ctx) => {
    const s = stores(ctx);
    const { cookie, refreshToken } = await login(s);
    const noRoundTrip = [
      '',
      'random garbage',
      'x'.repeat(10 * 1024),
      '☃'.repeat(113),
      refreshToken.slice(0, -1),
      refreshToken.slice(1),
      cookie, // a session cookie is not a refresh token
      `${refreshToken}\n`,
      undefined,
      null,
      42,
    ];
    for (const g of noRoundTrip) {
      assert.is(await ctx.roundTrips.measure(() => s.refresh.rotate(g as string)), 0);
      assert.is(await s.refresh.rotate(g as string), null);
      assert.is(await s.refresh.revoke(g as string), false);
    }
    // Well-formed but from another deployment (another key prefix): invalid after one round trip.
    const elsewhere = stores({ ...ctx, prefix: `${ctx.prefix}-other` });
    const foreign = await login(elsewhere);
    assert.is(await s.refresh.rotate(foreign.refreshToken), null);
    assert.ok(await s.refresh.rotate(refreshToken), 'none of this touched the real session');
    await elsewhere.sessions.revokeAllForUser('alice');
  });

  test('keeps at most maxRetired digests: an older token is then invalid, a remembered one is reuse', async (ctx) => {
    const s = stores(ctx, { maxRetired: 3 });
    const { refreshToken } = await login(s);
    const chain = [refreshToken as string];
    for (let i = 0; i < 5; i++) {
      const rotated = await s.refresh.rotate(chain[chain.length - 1] as string);
      assert.ok(rotated);
      chain.push(rotated.token);
    }
    const { session } = (await s.sessions.listForUser('alice')).map((x) => ({ session: x }))[0] ?? {};
    assert.ok(session);
    const retired = new KeySpace(ctx.prefix).retiredRefresh(userTag('alice'), session.id);
    assert.is(await ctx.redis.zcard(retired), 3);
    assert.is(await s.refresh.rotate(chain[0] as string), null, 'forgotten: merely invalid');
    assert.is(await s.refresh.rotate(chain[1] as string), null, 'forgotten: merely invalid');
    await rejects(s.refresh.rotate(chain[2] as string), isReuse, 'RefreshTokenReusedError');
  });

  test('stores no token, secret or successor in the clear', async (ctx) => {
    const s = stores(ctx, { graceMs: 5000 });
    const { cookie, refreshToken } = await login(s);
    const seen: string[] = [cookie, refreshToken];
    let token: string = refreshToken;
    for (let i = 0; i < 3; i++) {
      const rotated = await s.refresh.rotate(token);
      assert.ok(rotated);
      token = rotated.token;
      seen.push(token);
    }
    const dump = JSON.stringify(await ctx.dump());
    assert.ok(
      dump.includes(sha256(token.split('.')[3] as string).slice(0, 22)),
      'the current digest is there',
    );
    for (const t of seen) {
      assert.not.ok(dump.includes(t.split('.')[3] as string), 'a secret reached Redis');
    }
  });
});

// The fake has no connection to lose: real backends only (skipped, never passed, without redis-server).
backendSuite(
  'RefreshTokens on a real server',
  (test) => {
    test('a closed connection raises StoreUnavailableError and nothing is half-rotated', async (ctx) => {
      const s = stores(ctx);
      const { cookie, refreshToken } = await login(s);
      const client = ctx.connect();
      const broken = new RefreshTokens({
        redis: client,
        clock: ctx.clock,
        prefix: ctx.prefix,
        secret: SECRET,
        commandTimeoutMs: 500,
      });
      await broken.issue({ userId: 'nobody', id: 'A'.repeat(22) }); // connected and working
      client.disconnect();
      await rejects(
        broken.rotate(refreshToken),
        (e) => e instanceof StoreUnavailableError,
        'StoreUnavailableError',
      );
      await rejects(
        broken.revoke(refreshToken),
        (e) => e instanceof StoreUnavailableError,
        'StoreUnavailableError',
      );
      // Back on a working connection the original token is still the current one.
      const rotated = await s.refresh.rotate(refreshToken);
      assert.ok(rotated);
      assert.ok(await s.sessions.get(cookie));
    });
  },
  { backends: ['redis', 'cluster'] },
);

realRedisSuite('RefreshTokens over a connection that loses a reply', (test) => {
  test('a call ioredis sends again after a reconnect answers as the first: rotate() is not reuse, issue() retires nothing', async () => {
    const proxy = await startReplyDropProxy((await sharedRedisServer()).port);
    const redis = new Redis(proxy.port, '127.0.0.1', { retryStrategy: () => 10 });
    redis.on('error', () => {
      // the cut connection is expected
    });
    const events: SecurityEvent[] = [];
    try {
      const options = {
        redis,
        prefix: `lkt:${process.pid}:drop`,
        onEvent: (e: SecurityEvent) => events.push(e),
      };
      const sessions = new SessionStore(options);
      const refresh = new RefreshTokens({ ...options, secret: SECRET }); // grace 0
      const { token: cookie, session } = await sessions.create('alice', {});
      const first = await refresh.issue(session);
      assert.ok(first);
      proxy.dropNextReply();
      const rotated = await refresh.rotate(first);
      assert.is(proxy.dropped, 1, 'the reply was lost and the script ran again');
      assert.ok(rotated, 'the repeated request gets its successor');
      assert.ok(await sessions.get(cookie), 'the session survives');
      assert.ok(await refresh.rotate(rotated.token), 'and the successor is the live token');
      assert.is(events.filter((e) => e.type === 'refresh.reuse-detected').length, 0);
      // A new request with the rotated-away token is still reuse.
      await rejects(refresh.rotate(first), isReuse, 'RefreshTokenReusedError');
      assert.is(await sessions.get(cookie), null);
      // issue() repeated: the token it issued stays current and is not retired by its own repeat.
      const again = await sessions.create('alice', {});
      proxy.dropNextReply();
      const issued = await refresh.issue(again.session);
      assert.ok(issued);
      const retired = new KeySpace(options.prefix).retiredRefresh(userTag('alice'), again.session.id);
      assert.is(await redis.exists(retired), 0, 'nothing was retired');
      assert.ok(await refresh.rotate(issued));
      assert.is(proxy.dropped, 2);
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  });
});

realRedisSuite('RefreshTokens when Redis stops', (test) => {
  test('rotate() raises StoreUnavailableError while Redis is down; back up, the same token rotates once', async () => {
    const { server, redis, close } = await startOwnRedis({
      retryStrategy: () => 50, // reconnect quickly in the test; production keeps ioredis's backoff
      // As the README advises for rotation: without it, ioredis queues the call while Redis is down
      // and runs it once Redis is back, after rotate() has already answered StoreUnavailableError —
      // the client's retry of its token would then be reuse. (startOwnRedis connects before any call.)
      enableOfflineQueue: false,
    });
    try {
      const options = { redis, commandTimeoutMs: 300 };
      const sessions = new SessionStore(options);
      const refresh = new RefreshTokens({ ...options, secret: SECRET });
      const { token: cookie, session } = await sessions.create('alice', {});
      const refreshToken = await refresh.issue(session);
      assert.ok(refreshToken);
      // The restarted server loads this snapshot: what was there before the outage comes back.
      await redis.save();
      await server.stop();
      while (redis.status === 'ready') await new Promise((resolve) => setTimeout(resolve, 10));
      for (const call of [() => refresh.rotate(refreshToken), () => refresh.revoke(refreshToken)]) {
        await rejects(call(), (e) => e instanceof StoreUnavailableError, 'StoreUnavailableError');
      }
      await server.start();
      await eventually(async () => (await redis.ping()) === 'PONG', 'the client reconnects');
      const rotated = await refresh.rotate(refreshToken);
      assert.ok(rotated, 'the presented token is still the current one: nothing was half-rotated');
      assert.ok(await refresh.rotate(rotated.token));
      assert.ok(await sessions.get(cookie));
    } finally {
      await close();
    }
  });
});

backendSuite('SessionStore.regenerate with refresh tokens', (test) => {
  test('regenerate carries no refresh state to the new id', async (ctx) => {
    const s = stores(ctx);
    const { cookie, session, refreshToken } = await login(s);
    const rotated = await s.refresh.rotate(refreshToken);
    assert.ok(rotated);
    await s.refresh.rotate(rotated.token);
    const next = await s.sessions.regenerate(cookie);
    assert.ok(next);
    const keys = new KeySpace(ctx.prefix);
    const tag = userTag('alice');
    const fields = await ctx.redis.hmget(keys.session(tag, next.session.id), 'rc', 'rp', 'rt', 'ri', 'rg');
    assert.equal(fields, [null, null, null, null, null], 'the new session holds no refresh state');
    assert.is(await ctx.redis.exists(keys.retiredRefresh(tag, next.session.id)), 0);
    assert.is(await ctx.redis.exists(keys.retiredRefresh(tag, session.id)), 0, 'the old set is gone');
    // A refresh token issued before the regenerate names the old id and is dead.
    assert.is(await s.refresh.rotate(rotated.token), null);
    // The new session starts its own refresh chain.
    const fresh = await s.refresh.issue(next.session);
    assert.ok(fresh);
    assert.ok(await s.refresh.rotate(fresh));
  });
});

backendSuite('RefreshTokens.revoke', (test) => {
  test('revoke() leaves no retired-digest set behind', async (ctx) => {
    const s = stores(ctx);
    const { session, refreshToken } = await login(s);
    const first = await s.refresh.rotate(refreshToken);
    assert.ok(first);
    const second = await s.refresh.rotate(first.token);
    assert.ok(second);
    const retired = new KeySpace(ctx.prefix).retiredRefresh(userTag('alice'), session.id);
    assert.ok((await ctx.redis.exists(retired)) === 1, 'two rotations retired a digest into the set');
    assert.is(await s.refresh.revoke(second.token), true);
    assert.is(await ctx.redis.exists(retired), 0, 'the retired-digest set went with the session');
    assert.equal(
      (await ctx.keys()).filter((key) => key.includes(':rr:')),
      [],
    );
  });

  test('ends the session of an issued token, once', async (ctx) => {
    const s = stores(ctx);
    const { cookie, refreshToken } = await login(s);
    const other = await login(s);
    assert.is(await ctx.roundTrips.measure(() => s.refresh.revoke(refreshToken)), 1);
    assert.is(await s.sessions.get(cookie), null);
    assert.is(await s.refresh.rotate(refreshToken), null);
    assert.is(await s.refresh.revoke(refreshToken), false);
    assert.ok(await s.sessions.get(other.cookie), 'other sessions are untouched');
    const ended = s.events.filter((e) => e.type === 'session.revoked');
    assert.equal(
      ended.map((e) => e.type === 'session.revoked' && [e.reason, e.userId, e.sessionId]),
      [['logout', 'alice', RefreshTokens.parseToken(refreshToken)?.sessionId]],
      'one logout event, only for the live session',
    );
  });

  test('revokeSession() ends a session by id with its refresh state', async (ctx) => {
    const s = stores(ctx);
    const { cookie, session, refreshToken } = await login(s);
    await s.refresh.rotate(refreshToken);
    assert.is(await s.refresh.revokeSession('alice', session.id), true);
    assert.is(await s.refresh.revokeSession('alice', session.id), false);
    assert.is(await s.refresh.revokeSession('alice', 'bad id'), false);
    assert.is(await s.sessions.get(cookie), null);
    assert.equal(
      s.events
        .filter((e) => e.type === 'session.revoked')
        .map((e) => e.type === 'session.revoked' && [e.reason, e.sessionId]),
      [['revoked', session.id]],
    );
    assert.equal(await ctx.keys(), [], 'the retired digests went with it');
  });
});

backendSuite('RefreshTokens with SessionStore.revokeAllForUser', (test) => {
  test('the user-wide revoke deletes every refresh state in one round trip', async (ctx) => {
    const s = stores(ctx);
    const a = await login(s);
    const b = await login(s);
    const rotatedA = await s.refresh.rotate(a.refreshToken);
    assert.ok(rotatedA);
    assert.is(await ctx.roundTrips.measure(() => s.sessions.revokeAllForUser('alice')), 1);
    assert.is(await s.refresh.rotate(rotatedA.token), null);
    assert.is(await s.refresh.rotate(b.refreshToken), null);
    // Only the revoke-before mark is left.
    assert.equal(await ctx.keys(), [new KeySpace(ctx.prefix).revokeBefore(userTag('alice'))]);
  });

  test('with except, the kept session keeps its refresh token', async (ctx) => {
    const s = stores(ctx);
    const kept = await login(s);
    const gone = await login(s);
    await s.sessions.revokeAllForUser('alice', { except: kept.session.id });
    assert.ok(await s.refresh.rotate(kept.refreshToken));
    assert.is(await s.refresh.rotate(gone.refreshToken), null);
  });
});

backendSuite('RefreshTokens lifetimes', (test) => {
  test('retired digests live as long as their session, renewed with it', async (ctx) => {
    const s = stores(ctx);
    const { cookie, session, refreshToken } = await login(s);
    const ks = new KeySpace(ctx.prefix);
    const sessionKey = ks.session(userTag('alice'), session.id);
    const retiredKey = ks.retiredRefresh(userTag('alice'), session.id);
    const same = async (what: string) => {
      const [a, b] = [await ctx.redis.pttl(sessionKey), await ctx.redis.pttl(retiredKey)];
      assert.ok(b >= a - 1000 && b <= a + 1000 && a > 0, `${what}: session ${a}, retired ${b}`);
    };
    await ctx.advance(10 * MIN);
    assert.ok(await s.refresh.rotate(refreshToken));
    await same('after a rotation');
    await ctx.advance(30 * MIN);
    assert.ok(await s.sessions.get(cookie)); // renews the session, and the retired digests with it
    await same('after a renewal by the cookie');
    assert.ok((await ctx.redis.pttl(retiredKey)) > 50 * MIN);
  });

  test('holds zero keys once every lifetime has passed, retired digests included', async (ctx) => {
    const s = stores(ctx, { graceMs: 1000 });
    for (const userId of ['l1', 'ü{x}:"y"']) {
      const { refreshToken } = await login(s, userId);
      let token: string = refreshToken;
      for (let i = 0; i < 4; i++) {
        const rotated = await s.refresh.rotate(token);
        assert.ok(rotated);
        token = rotated.token;
      }
    }
    const reused = await login(s, 'l2');
    await s.refresh.rotate(reused.refreshToken);
    await ctx.advance(2000); // past the grace window
    await rejects(s.refresh.rotate(reused.refreshToken), isReuse, 'RefreshTokenReusedError');
    assert.equal(await ctx.keysWithoutTtl(), []);
    assert.ok(
      (await ctx.keys()).some((k) => k.includes(':rr:')),
      'retired digests are there meanwhile',
    );
    await ctx.advance(HOUR + 1000);
    assert.equal(await ctx.keys(), []);
  });
});
