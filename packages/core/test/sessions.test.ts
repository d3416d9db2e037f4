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
  InvalidInputError,
  InvalidOptionError,
  KeySpace,
  type SecurityEvent,
  SessionDataTooLargeError,
  SessionStore,
  type SessionStoreOptions,
  StaleAuthenticationError,
  StoreUnavailableError,
  userTag,
} from '../src/index.js';
import { sha256 } from '../src/internal/crypto.js';
import { secretDigest } from '../src/sessions.js';
import { rejects } from './helpers/assertions.js';
import { startReplyDropProxy } from './helpers/reply-drop-proxy.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

type Data = Record<string, unknown>;

function store<D extends Data = Data>(
  ctx: BackendContext,
  options: Partial<SessionStoreOptions> = {},
  events: SecurityEvent[] = [],
): SessionStore<D> {
  return new SessionStore<D>({
    redis: ctx.redis,
    clock: ctx.clock,
    prefix: ctx.prefix,
    onEvent: (e) => events.push(e),
    ...options,
  });
}

const ODD_USER_IDS = [
  'user "quoted"',
  '{braces}',
  '}{',
  'a:b:c',
  'ユーザー😀',
  "' OR 1=1 --",
  'x'.repeat(1024),
];

// ---------------------------------------------------------------------------------------------------
// Unit tier: no Redis.

const unit = suite('SessionStore (no Redis)');

unit('parseToken() accepts only v1.<43>.<22>.<43> base64url and never throws', () => {
  const token = `v1.${'A'.repeat(43)}.${'b'.repeat(22)}.${'-'.repeat(43)}`;
  assert.equal(SessionStore.parseToken(token), { tag: 'A'.repeat(43), sessionId: 'b'.repeat(22) });
  for (const bad of [
    undefined,
    null,
    42,
    {},
    '',
    'v1',
    token.slice(0, -1),
    `${token}A`,
    token.replace('v1.', 'r1.'),
    token.replace('v1.', 'v2.'),
    token.replace(/A/, '+'),
    token.replace(/b/, 'é'),
    `${token.slice(0, -1)}\n`,
    'x'.repeat(10 * 1024),
  ]) {
    assert.is(SessionStore.parseToken(bad), null, `bad token ${JSON.stringify(bad)?.slice(0, 40)}`);
  }
});

unit('the constructor validates every option and names it', () => {
  const redis = { defineCommand() {} } as never;
  const cases: Array<[Partial<SessionStoreOptions>, string]> = [
    [{ idleTimeoutMs: 0 }, 'idleTimeoutMs'],
    [{ absoluteTimeoutMs: 1.5 }, 'absoluteTimeoutMs'],
    [{ maxSessionsPerUser: 501 }, 'maxSessionsPerUser'],
    [{ maxSessionsPerUser: 0 }, 'maxSessionsPerUser'],
    [{ maxDataBytes: -1 }, 'maxDataBytes'],
    [{ lastSeenResolutionMs: 40 * MIN }, 'lastSeenResolutionMs'],
    [{ clockSkewMs: -1 }, 'clockSkewMs'],
    [{ prefix: '{x}' }, 'prefix'],
  ];
  for (const [options, name] of cases) {
    assert.throws(
      () => new SessionStore({ redis, ...options }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes(name),
      name,
    );
  }
  const defaults = new SessionStore({ redis }).options;
  assert.equal(defaults, {
    idleTimeoutMs: HOUR,
    absoluteTimeoutMs: 24 * HOUR,
    maxSessionsPerUser: 100,
    maxDataBytes: 4096,
    lastSeenResolutionMs: MIN,
    clockSkewMs: MIN,
  });
  assert.ok(Object.isFrozen(defaults));
});

unit('secretDigest() is the first 22 base64url characters (132 bits) of the SHA-256', () => {
  for (const secret of ['', 'A'.repeat(43), 'ü😀']) {
    assert.is(secretDigest(secret), sha256(secret).slice(0, 22));
    assert.is(secretDigest(secret).length, 22);
  }
});

unit.run();

// ---------------------------------------------------------------------------------------------------
// Behaviour tier: fake, redis-server, Cluster.

backendSuite('SessionStore.create', (test) => {
  test('returns a 256-bit token carrying the user tag and a session with its metadata', async (ctx) => {
    const sessions = store<{ theme: string }>(ctx);
    const now = ctx.clock.now();
    const { token, session } = await sessions.create(
      'alice',
      { theme: 'dark' },
      { ip: '203.0.113.7', userAgent: 'Firefox', authenticatedAt: now - 5 },
    );
    const parsed = SessionStore.parseToken(token);
    assert.ok(parsed);
    assert.is(parsed.tag, userTag('alice'));
    assert.is(parsed.sessionId, session.id);
    assert.equal(session, {
      id: session.id,
      userId: 'alice',
      data: { theme: 'dark' },
      createdAt: now,
      authenticatedAt: now - 5,
      lastSeenAt: now,
      expiresAt: now + HOUR,
      idleExpiresAt: now + HOUR,
      absoluteExpiresAt: now + 24 * HOUR,
      ip: '203.0.113.7',
      userAgent: 'Firefox',
    });
    assert.equal(await sessions.get(token), session);
    assert.equal(await ctx.keysWithoutTtl(), []);
  });

  test('is one round trip and emits session.created', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, {}, events);
    let id = '';
    assert.is(
      await ctx.roundTrips.measure(async () => {
        id = (await sessions.create('bob', { a: 1 })).session.id;
      }),
      1,
    );
    assert.equal(events, [{ type: 'session.created', at: ctx.clock.now(), userId: 'bob', sessionId: id }]);
  });

  test('refuses an authentication that began before the user’s revoke-everything mark', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, {}, events);
    const authenticatedAt = ctx.clock.now();
    await ctx.advance(1000);
    await sessions.revokeAllForUser('carol'); // a password reset lands during the login
    await ctx.advance(10);
    await rejects(
      sessions.create('carol', {}, { authenticatedAt }),
      (e) => e instanceof StaleAuthenticationError && e.code === 'ERR_SESSION_STALE_AUTH',
      'StaleAuthenticationError',
    );
    assert.equal(await sessions.listForUser('carol'), []);
    assert.ok(events.some((e) => e.type === 'session.stale-auth-refused'));
    // A login that began after the reset goes through.
    const { token } = await sessions.create('carol', {}, { authenticatedAt: ctx.clock.now() });
    assert.ok(await sessions.get(token));
  });

  test('refuses an authentication that began in the same millisecond as the mark, and accepts one a ms later', async (ctx) => {
    const sessions = store(ctx);
    const at = ctx.clock.now();
    await sessions.revokeAllForUser('erin'); // the reset and the login's check start in one ms
    await rejects(
      sessions.create('erin', {}, { authenticatedAt: at }),
      (e) => e instanceof StaleAuthenticationError,
      'StaleAuthenticationError',
    );
    await ctx.advance(1);
    const { token } = await sessions.create('erin', {}, { authenticatedAt: ctx.clock.now() });
    assert.ok(await sessions.get(token));
  });

  test('the stale refusal carries the mark; a retry at the mark (1 ms ahead of now) is accepted, no further', async (ctx) => {
    const sessions = store(ctx);
    const at = ctx.clock.now();
    await sessions.revokeAllForUser('fred'); // the clock stands still: reset and login share a ms
    let mark = 0;
    await rejects(
      sessions.create('fred', {}, { authenticatedAt: at }).catch((error: unknown) => {
        if (error instanceof StaleAuthenticationError) mark = error.revokedBefore;
        throw error;
      }),
      (e) => e instanceof StaleAuthenticationError,
      'StaleAuthenticationError',
    );
    assert.is(mark, at + 1, 'the mark: the revocation instant + 1 ms');
    await rejects(
      sessions.create('fred', {}, { authenticatedAt: ctx.clock.now() + 2 }),
      (e) => e instanceof InvalidInputError,
      'InvalidInputError',
    );
    const { token, session } = await sessions.create('fred', {}, { authenticatedAt: mark });
    assert.is(session.authenticatedAt, mark);
    assert.ok(await sessions.get(token), 'the retried session is alive under the mark');
    assert.is((await sessions.listForUser('fred')).length, 1);
  });

  test('evicts the oldest sessions beyond maxSessionsPerUser', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, { maxSessionsPerUser: 3 }, events);
    const tokens = [];
    for (let i = 0; i < 5; i++) {
      tokens.push((await sessions.create('dave', { i })).token);
      await ctx.advance(1000);
    }
    assert.is(await sessions.get(tokens[0] as string), null);
    assert.is(await sessions.get(tokens[1] as string), null);
    for (const t of tokens.slice(2)) assert.ok(await sessions.get(t));
    const list = await sessions.listForUser('dave');
    assert.equal(
      list.map((s) => s.data['i']),
      [4, 3, 2],
    );
    const evicted = events.filter((e) => e.type === 'session.revoked' && e.reason === 'evicted');
    assert.is(evicted.length, 2);
    // Evicted sessions leave nothing behind: 3 session hashes and the index.
    assert.is((await ctx.keys()).length, 4);
  });

  test('refuses data above maxDataBytes and writes nothing', async (ctx) => {
    const sessions = store(ctx, { maxDataBytes: 64 });
    await rejects(
      sessions.create('erin', { blob: 'x'.repeat(100) }),
      (e) => e instanceof SessionDataTooLargeError && e.code === 'ERR_SESSION_DATA_TOO_LARGE',
      'SessionDataTooLargeError',
    );
    assert.equal(await ctx.keys(), []);
    // Multi-byte characters count as bytes: 20 × 'é' is 40 bytes of JSON text plus the name.
    await rejects(
      sessions.create('erin', { n: 'é'.repeat(31) }),
      (e) => e instanceof SessionDataTooLargeError,
      'SessionDataTooLargeError for UTF-8 bytes',
    );
    await sessions.create('erin', { n: 'é'.repeat(29) });
  });

  test('refuses bad input with a clear error before any round trip', async (ctx) => {
    const sessions = store(ctx);
    const bad: Array<() => Promise<unknown>> = [
      () => sessions.create('', {}),
      () => sessions.create(42 as never, {}),
      () => sessions.create('x'.repeat(1025), {}),
      () => sessions.create('lone \ud800 surrogate', {}),
      () => sessions.create('u', { n: 10n }),
      () => sessions.create('u', { f: () => 1 }),
      () => sessions.create('u', [] as never),
      () => sessions.create('u', {}, { authenticatedAt: ctx.clock.now() + 1000 }),
      () => sessions.create('u', {}, { idleTimeoutMs: 0 }),
      () => sessions.create('u', {}, { idleTimeoutMs: MIN }),
      () => sessions.create('u', { 'a\u0000b': 1 }),
    ];
    for (const call of bad) {
      const trips = await ctx.roundTrips.measure(() =>
        rejects(call(), (e) => e instanceof InvalidInputError, 'InvalidInputError'),
      );
      assert.is(trips, 0);
    }
  });

  test('takes a null options argument as none (create and revokeAllForUser)', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('n1', {}, null as never);
    assert.ok(await sessions.get(token));
    assert.is(await sessions.revokeAllForUser('n1', null as never), 1);
    assert.is(await sessions.get(token), null);
  });

  test('keeps per-session idle and absolute timeouts', async (ctx) => {
    const sessions = store(ctx);
    const now = ctx.clock.now();
    const { token, session } = await sessions.create(
      'frank',
      {},
      { idleTimeoutMs: 10 * MIN, absoluteTimeoutMs: 30 * MIN },
    );
    assert.is(session.idleExpiresAt, now + 10 * MIN);
    assert.is(session.absoluteExpiresAt, now + 30 * MIN);
    await ctx.advance(11 * MIN);
    assert.is(await sessions.get(token), null);
  });

  test('truncates long client metadata instead of refusing the login', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create(
      'gina',
      {},
      { userAgent: 'U'.repeat(2000), ip: '2001:db8::1'.padEnd(100, 'x') },
    );
    assert.is(session.userAgent, 'U'.repeat(252));
    assert.is(session.ip, '2001:db8::1'.padEnd(63, 'x'));
    assert.equal(await sessions.get(token), session);
    const empty = await sessions.create('gina', {}, { userAgent: 'U', ip: '' });
    assert.not.ok('ip' in empty.session);
  });

  test('cuts a multi-byte user agent at a character boundary and returns it whole from every read', async (ctx) => {
    const sessions = store(ctx);
    // 'é' is two bytes: the 63-byte pieces it is stored in split characters, which must not show.
    const userAgent = `x${'é'.repeat(200)}`;
    // Four pieces of at most 63 bytes, none ending inside a character: x + 31 é, then 31 é thrice.
    const kept = `x${'é'.repeat(124)}`;
    const { token, session } = await sessions.create('gina3', { n: 1 }, { userAgent });
    assert.is(session.userAgent, kept);
    assert.is((await sessions.get(token))?.userAgent, kept);
    assert.is((await sessions.update(token, { n: 2 }))?.userAgent, kept);
    assert.equal(
      (await sessions.listForUser('gina3')).map((s) => s.userAgent),
      [kept],
    );
    const renewed = await sessions.regenerate(token);
    assert.is(renewed?.session.userAgent, kept);
    const emoji = await sessions.create('gina3', {}, { userAgent: `${'U'.repeat(249)}😀x` });
    assert.is(emoji.session.userAgent, 'U'.repeat(249), 'a 4-byte character that does not fit is left out');
  });

  test('keeps a session with a long user agent a compact listpack hash', async (ctx) => {
    if (ctx.kind === 'fake') return; // ioredis-mock has no encodings
    const sessions = store(ctx);
    const userAgent =
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
    const { token } = await sessions.create(
      'user-1234567',
      { theme: 'dark', locale: 'en-GB' },
      { ip: '203.0.113.7', userAgent },
    );
    const [, tag, sid] = token.split('.') as [string, string, string];
    const key = new KeySpace(ctx.prefix).session(tag, sid);
    assert.is(await ctx.redis.call('OBJECT', 'ENCODING', key), 'listpack');
    const bytes = Number(await ctx.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    assert.ok(bytes < 512, `MEMORY USAGE ${bytes} bytes`);
  });

  test('returns client metadata as get() will: a surrogate pair cut in half becomes U+FFFD', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create(
      'gina2',
      {},
      {
        userAgent: `${'U'.repeat(200)}\ud83d`,
        ip: 'lone \udc00',
      },
    );
    assert.is(session.userAgent, `${'U'.repeat(200)}\ufffd`);
    assert.is(session.ip, 'lone \ufffd');
    assert.equal(await sessions.get(token), session);
  });
});

backendSuite('SessionStore.create amr', (test) => {
  test('records how the session was made and returns it from get, listForUser and regenerate', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create('amr-user', {}, { amr: ['pwd', 'otp', 'mfa', 'otp'] });
    assert.equal(session.amr, ['pwd', 'otp', 'mfa']);
    assert.equal((await sessions.get(token))?.amr, ['pwd', 'otp', 'mfa']);
    assert.equal(
      (await sessions.listForUser('amr-user')).map((s) => s.amr),
      [['pwd', 'otp', 'mfa']],
    );
    const moved = await sessions.regenerate(token);
    assert.equal(moved?.session.amr, ['pwd', 'otp', 'mfa']);
    const plain = await sessions.create('amr-user', {});
    assert.is(plain.session.amr, undefined);
    assert.equal(await sessions.get(plain.token), plain.session);
    const listed = await sessions.listForUser('amr-user');
    assert.equal(listed.length, 2);
    assert.is(listed.find((s) => s.id === plain.session.id)?.amr, undefined);
  });

  test('refuses bad amr values before any round trip', async (ctx) => {
    const sessions = store(ctx);
    for (const amr of [
      ['PWD'],
      [''],
      ['a b'],
      ['x'.repeat(17)],
      'pwd',
      [1],
      Array.from({ length: 9 }, (_, i) => `m${i}`),
    ]) {
      await rejects(
        sessions.create('amr-user', {}, { amr: amr as unknown as string[] }),
        (e) => e instanceof InvalidInputError,
        'InvalidInputError',
      );
    }
    assert.equal(await sessions.listForUser('amr-user'), []);
  });

  test('keeps a session with amr and a long user agent a compact listpack hash', async (ctx) => {
    if (ctx.kind === 'fake') return; // ioredis-mock has no encodings
    const sessions = store(ctx);
    const { token } = await sessions.create(
      'amr-user',
      {},
      { userAgent: 'U'.repeat(252), amr: ['pwd', 'otp', 'mfa', 'hwk', 'swk', 'user', 'pin', 'face'] },
    );
    const [, tag, sid] = token.split('.') as [string, string, string];
    const key = new KeySpace(ctx.prefix).session(tag, sid);
    assert.is(await ctx.redis.call('OBJECT', 'ENCODING', key), 'listpack');
  });
});

backendSuite('SessionStore.get', (test) => {
  test('slides the idle deadline on use', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('u1', {});
    for (let i = 0; i < 4; i++) {
      await ctx.advance(50 * MIN);
      const s = await sessions.get(token);
      assert.ok(s, `alive after ${(i + 1) * 50} minutes of regular use`);
      assert.is(s.idleExpiresAt, ctx.clock.now() + HOUR);
      assert.is(s.lastSeenAt, ctx.clock.now());
    }
  });

  test('ends a session idle for longer than the idle timeout, and its keys with it', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('u2', {});
    await ctx.advance(59 * MIN);
    assert.ok(await sessions.get(token));
    await ctx.advance(59 * MIN);
    assert.ok(await sessions.get(token), 'renewed by the last use');
    await ctx.advance(61 * MIN);
    assert.equal(await ctx.keys(), [], 'the TTL ended with the idle deadline');
    assert.is(await sessions.get(token), null);
    // session.expired (a record found dead on access) is tested on the real backends, where the
    // logical clock can move without the keys' TTLs.
  });

  test('never extends a session past its absolute lifetime', async (ctx) => {
    const sessions = store(ctx, { absoluteTimeoutMs: 2 * HOUR });
    const { token, session } = await sessions.create('u3', {});
    await ctx.advance(50 * MIN);
    assert.ok(await sessions.get(token));
    await ctx.advance(50 * MIN);
    const late = await sessions.get(token);
    assert.ok(late);
    assert.is(late.idleExpiresAt, session.absoluteExpiresAt, 'the idle deadline is capped');
    assert.is(late.expiresAt, session.absoluteExpiresAt);
    await ctx.advance(19 * MIN);
    assert.ok(await sessions.get(token));
    await ctx.advance(2 * MIN);
    assert.is(await sessions.get(token), null);
    assert.equal(await ctx.keys(), []);
  });

  test('writes lastSeenAt at most once per lastSeenResolutionMs', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create('u4', {});
    await ctx.advance(20_000);
    const early = await sessions.get(token);
    assert.is(early?.lastSeenAt, session.createdAt);
    assert.is(early?.idleExpiresAt, session.idleExpiresAt);
    await ctx.advance(41_000);
    const later = await sessions.get(token);
    assert.is(later?.lastSeenAt, ctx.clock.now());
    assert.is(later?.idleExpiresAt, ctx.clock.now() + HOUR);
  });

  test('is one round trip, renewal included', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('u5', {});
    assert.is(await ctx.roundTrips.measure(() => sessions.get(token)), 1);
    await ctx.advance(2 * MIN);
    assert.is(await ctx.roundTrips.measure(() => sessions.get(token)), 1);
  });

  test('answers null to garbage without a round trip and never throws', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('u6', {});
    const garbage = [
      '',
      'x'.repeat(10 * 1024),
      'ünïcødé-☃-'.repeat(20),
      token.slice(0, -1),
      token.replace('v1.', 'r1.'),
      `${token} `,
      undefined,
      null,
      123,
    ];
    for (const g of garbage) {
      assert.is(await ctx.roundTrips.measure(() => sessions.get(g as string)), 0);
      assert.is(await sessions.get(g as string), null);
    }
  });

  test('answers null to a forged secret for a real session id, and the session survives', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create('u7', { a: 1 });
    const forged = `${token.slice(0, -43)}${'A'.repeat(43)}`;
    assert.is(await sessions.get(forged), null);
    assert.is(await sessions.update(forged, { a: 2 }), null);
    assert.is(await sessions.destroy(forged), false);
    assert.is(await sessions.regenerate(forged), null);
    assert.equal((await sessions.get(token))?.data, session.data);
  });

  test('stores the token only as a digest', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('u8', { k: 'v' });
    const secret = token.split('.')[3] as string;
    const dump = JSON.stringify(await ctx.dump());
    assert.ok(dump.includes(secretDigest(secret)), 'the dump holds the record, with the digest');
    assert.not.ok(dump.includes(secret), 'the secret part never reaches Redis');
    assert.not.ok(dump.includes(token));
  });
});

// On the fake the installed clock also expires keys (no record is left to find dead), and there is no
// connection to lose: these run on the real backends only, and count as skipped, never as passed, where
// redis-server is missing.
backendSuite(
  'SessionStore on a real server',
  (test) => {
    test('reports expiry on access when the record outlives its logical lifetime', async (ctx) => {
      const events: SecurityEvent[] = [];
      const sessions = store(ctx, {}, events);
      const { token, session } = await sessions.create('u2b', {});
      ctx.clock.advance(HOUR + 1000); // logical time only: the key is still in Redis
      assert.is(await sessions.get(token), null);
      assert.equal(
        events.filter((e) => e.type === 'session.expired').map((e) => (e as { sessionId: string }).sessionId),
        [session.id],
      );
      assert.equal(await ctx.keys(), [], 'the dead record and the index are deleted on access');
    });

    test('a closed connection raises StoreUnavailableError', async (ctx) => {
      const client = ctx.connect();
      const sessions = new SessionStore({
        redis: client,
        clock: ctx.clock,
        prefix: ctx.prefix,
        commandTimeoutMs: 500,
      });
      const { token } = await sessions.create('u9', {});
      client.disconnect();
      for (const call of [
        () => sessions.get(token),
        () => sessions.create('u9', {}),
        () => sessions.update(token, { a: 1 }),
        () => sessions.revokeAllForUser('u9'),
      ]) {
        await rejects(call(), (e) => e instanceof StoreUnavailableError, 'StoreUnavailableError');
      }
      // Nothing was lost on the server: the suite's own connection still sees the session.
      assert.ok(await store(ctx).get(token));
    });
  },
  { backends: ['redis', 'cluster'] },
);

realRedisSuite('SessionStore over a connection that loses a reply', (test) => {
  // ioredis re-sends a command whose reply was lost to a reconnect (autoResendUnfulfilledCommands):
  // the scripts must answer the repeat as they answered the original.
  async function dropping(run: (sessions: SessionStore, drop: () => void) => Promise<void>) {
    const proxy = await startReplyDropProxy((await sharedRedisServer()).port);
    const redis = new Redis(proxy.port, '127.0.0.1', { retryStrategy: () => 10 });
    redis.on('error', () => {
      // the cut connection is expected
    });
    try {
      const prefix = `lkt:${process.pid}:drop:${Math.random().toString(36).slice(2)}`;
      await run(new SessionStore({ redis, prefix, maxSessionsPerUser: 2 }), () => proxy.dropNextReply());
      assert.is(proxy.dropped, 1, 'one reply was lost');
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  }

  test('regenerate() answers with the new session, not null', async () => {
    await dropping(async (sessions, drop) => {
      const { token } = await sessions.create('alice', { a: 1 });
      drop();
      const next = await sessions.regenerate(token);
      assert.ok(next, 'the repeated call finds the regenerated session');
      assert.equal(await sessions.get(next.token), next.session);
      assert.is(await sessions.get(token), null);
    });
  });

  test('create() at the per-user cap evicts one session, not two', async () => {
    await dropping(async (sessions, drop) => {
      const first = await sessions.create('bob', {});
      const second = await sessions.create('bob', {});
      drop();
      const third = await sessions.create('bob', {});
      assert.is(await sessions.get(first.token), null, 'the oldest is evicted');
      assert.ok(await sessions.get(second.token), 'the repeat evicts nothing more');
      assert.ok(await sessions.get(third.token));
    });
  });
});

backendSuite('SessionStore.update', (test) => {
  test('merges fields and deletes those set to undefined', async (ctx) => {
    const sessions = store<{ a?: number; b?: string; c?: boolean }>(ctx);
    const { token } = await sessions.create('v1', { a: 1, b: 'x' });
    const updated = await sessions.update(token, { b: undefined, c: true });
    assert.equal(updated?.data, { a: 1, c: true });
    assert.equal((await sessions.get(token))?.data, { a: 1, c: true });
  });

  test('50 concurrent updates of different fields all survive', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('v2', {});
    await Promise.all(Array.from({ length: 50 }, (_, i) => sessions.update(token, { [`f${i}`]: i })));
    const data = (await sessions.get(token))?.data ?? {};
    assert.is(Object.keys(data).length, 50);
    for (let i = 0; i < 50; i++) assert.is(data[`f${i}`], i);
  });

  test('a logout racing an in-flight update stays logged out', async (ctx) => {
    const sessions = store(ctx);
    for (let i = 0; i < 10; i++) {
      const { token } = await sessions.create('v3', { n: 0 });
      const racers =
        i % 2 === 0
          ? [sessions.update(token, { n: i }), sessions.destroy(token)]
          : [sessions.destroy(token), sessions.update(token, { n: i })];
      await Promise.all(racers);
      assert.is(await sessions.get(token), null);
      assert.is(await sessions.update(token, { n: 99 }), null);
    }
    assert.equal(await ctx.keys(), [], 'nothing was resurrected');
  });

  test('never brings back an expired or revoked session', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create('v4', {});
    assert.ok(await sessions.revoke('v4', session.id));
    assert.is(await sessions.update(token, { a: 1 }), null);
    const second = await sessions.create('v4', {});
    await ctx.advance(HOUR + MIN);
    assert.is(await sessions.update(second.token, { a: 1 }), null);
    assert.equal(await ctx.keys(), []);
  });

  test('keeps data apart from metadata: no field can overwrite userId or expiry', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create('v5', {});
    const updated = await sessions.update(token, {
      'm:uid': 'mallory',
      'm:ae': '9999999999999',
      userId: 'mallory',
      'r:cur': 'x',
    });
    assert.is(updated?.userId, 'v5');
    assert.is(updated?.absoluteExpiresAt, session.absoluteExpiresAt);
    assert.equal(updated?.data, {
      'm:uid': 'mallory',
      'm:ae': '9999999999999',
      userId: 'mallory',
      'r:cur': 'x',
    });
  });

  test('merges awkward names and values exactly, keeping field order', async (ctx) => {
    const sessions = store(ctx);
    const awkward: Data = {
      '': 'empty name',
      a: { nested: { b: [1, ',', '"', '\\'] } },
      ab: 'a prefix of this name is another name',
      'ü😀 "q" \\ :,{}': 'ü😀\u0000\u0001\n',
      n: null,
      f: false,
      z: 0,
    };
    const { token } = await sessions.create('v1b', awkward);
    assert.equal((await sessions.get(token))?.data, awkward);
    const updated = await sessions.update(token, { a: undefined, ab: 'replaced', new: [{}], '': undefined });
    const expected: Data = {
      ab: 'replaced',
      'ü😀 "q" \\ :,{}': 'ü😀\u0000\u0001\n',
      n: null,
      f: false,
      z: 0,
      new: [{}],
    };
    assert.equal(updated?.data, expected);
    const loaded = await sessions.get(token);
    assert.equal(loaded?.data, expected);
    assert.equal(Object.keys(loaded?.data ?? {}), Object.keys(expected), 'existing fields keep their order');
    assert.equal(
      (await sessions.update(token, Object.fromEntries(Object.keys(expected).map((k) => [k, undefined]))))
        ?.data,
      {},
    );
    assert.equal((await sessions.get(token))?.data, {});
    assert.equal((await sessions.update(token, { again: 1 }))?.data, { again: 1 });
  });

  test('a data field named __proto__ stays a plain field', async (ctx) => {
    const sessions = store(ctx);
    const data = JSON.parse('{"__proto__": {"isAdmin": true}, "a": 1}') as Data;
    const { token } = await sessions.create('v5b', data);
    const loaded = await sessions.get(token);
    assert.ok(loaded);
    assert.is((loaded.data as { isAdmin?: unknown }).isAdmin, undefined);
    assert.is(Object.getPrototypeOf(loaded.data), Object.prototype);
    assert.equal(Object.keys(loaded.data).sort(), ['__proto__', 'a']);
  });

  test('refuses an update that would exceed maxDataBytes and keeps the data', async (ctx) => {
    const sessions = store(ctx, { maxDataBytes: 50 });
    const { token } = await sessions.create('v6', { a: 'x'.repeat(20) });
    await rejects(
      sessions.update(token, { b: 'y'.repeat(25) }),
      (e) => e instanceof SessionDataTooLargeError,
      'SessionDataTooLargeError',
    );
    assert.equal((await sessions.get(token))?.data, { a: 'x'.repeat(20) });
    // Replacing a field counts its new size only; deleting one frees its bytes.
    assert.ok(await sessions.update(token, { a: 'z'.repeat(40) }));
    assert.ok(await sessions.update(token, { a: undefined, b: 'y'.repeat(40) }));
    await rejects(
      sessions.update(token, { c: 'w'.repeat(10) }),
      (e) => e instanceof SessionDataTooLargeError,
      'SessionDataTooLargeError at the cap',
    );
    assert.ok(await sessions.update(token, { b: undefined, c: 'w'.repeat(10) }));
    assert.equal((await sessions.get(token))?.data, { c: 'w'.repeat(10) });
  });

  test('is one round trip', async (ctx) => {
    const sessions = store(ctx);
    const { token } = await sessions.create('v7', {});
    assert.is(await ctx.roundTrips.measure(() => sessions.update(token, { a: 1 })), 1);
  });
});

backendSuite('SessionStore.regenerate', (test) => {
  test('issues a new token and id, keeps the data, and kills the old token at once', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, {}, events);
    const { token, session } = await sessions.create('w1', { role: 'guest' }, { ip: '198.51.100.1' });
    await ctx.advance(2 * MIN);
    ctx.roundTrips.reset();
    const next = await sessions.regenerate(token);
    assert.is(ctx.roundTrips.count, 1);
    assert.ok(next);
    assert.is.not(next.token, token);
    assert.is.not(next.session.id, session.id);
    assert.equal(next.session.data, { role: 'guest' });
    assert.is(next.session.createdAt, session.createdAt);
    assert.is(next.session.absoluteExpiresAt, session.absoluteExpiresAt);
    assert.is(next.session.ip, '198.51.100.1');
    assert.is(await sessions.get(token), null);
    assert.equal(await sessions.get(next.token), next.session);
    assert.equal(
      (await sessions.listForUser('w1')).map((s) => s.id),
      [next.session.id],
    );
    assert.ok(
      events.some(
        (e) =>
          e.type === 'session.regenerated' &&
          e.previousSessionId === session.id &&
          e.sessionId === next.session.id,
      ),
    );
    assert.is(await sessions.regenerate(token), null, 'the old token cannot regenerate again');
  });
});

backendSuite('SessionStore.destroy', (test) => {
  test('ends the session once and leaves no key behind', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, {}, events);
    const { token, session } = await sessions.create('x1', {});
    assert.is(await sessions.destroy(token), true);
    assert.is(await sessions.destroy(token), false);
    assert.is(await sessions.get(token), null);
    assert.equal(await ctx.keys(), []);
    assert.ok(
      events.some((e) => e.type === 'session.revoked' && e.reason === 'logout' && e.sessionId === session.id),
    );
  });
});

backendSuite('SessionStore.revoke', (test) => {
  test('ends one session by its public id, and only the user’s own', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, {}, events);
    const a = await sessions.create('y1', {});
    const b = await sessions.create('y1', {});
    assert.is(await sessions.revoke('someone-else', a.session.id), false);
    assert.ok(await sessions.get(a.token));
    assert.is(await sessions.revoke('y1', a.session.id), true);
    assert.is(await sessions.get(a.token), null);
    assert.ok(await sessions.get(b.token));
    assert.is(await sessions.revoke('y1', a.session.id), false);
    assert.equal(
      events
        .filter((e) => e.type === 'session.revoked')
        .map((e) => e.type === 'session.revoked' && [e.reason, e.userId, e.sessionId]),
      [['revoked', 'y1', a.session.id]],
    );
  });

  test('answers false to a malformed id without a round trip', async (ctx) => {
    const sessions = store(ctx);
    for (const id of ['', 'short', 'x'.repeat(5000), '../../etc', undefined]) {
      assert.is(await ctx.roundTrips.measure(() => sessions.revoke('y2', id as string)), 0);
      assert.is(await sessions.revoke('y2', id as string), false);
    }
  });
});

backendSuite('SessionStore.listForUser', (test) => {
  test('does not list a session authenticated before the user’s revoke-before mark', async (ctx) => {
    const sessions = store(ctx);
    const before = await sessions.create('m1', { n: 1 });
    await ctx.advance(10);
    const after = await sessions.create('m1', { n: 2 });
    // A mark between the two authentications, with both sessions still stored (as a revocation made
    // by a server whose clock is behind leaves them until someone looks). Listing is the first look.
    const mark = new KeySpace(ctx.prefix).revokeBefore(userTag('m1'));
    await ctx.redis.set(mark, String(before.session.authenticatedAt + 5), 'PX', 24 * HOUR);
    assert.equal(
      (await sessions.listForUser('m1')).map((s) => s.id),
      [after.session.id],
      'the listing honours the mark',
    );
    assert.is(await sessions.get(before.token), null);
    assert.ok(await sessions.get(after.token));
  });

  test('lists live sessions only, newest first, and prunes the dead from the index', async (ctx) => {
    const sessions = store(ctx);
    const old = await sessions.create('z1', { n: 1 }, { idleTimeoutMs: 10 * MIN });
    await ctx.advance(MIN);
    const mid = await sessions.create('z1', { n: 2 }, { ip: '192.0.2.1', userAgent: 'curl' });
    await ctx.advance(MIN);
    const fresh = await sessions.create('z1', { n: 3 });
    let list = await sessions.listForUser('z1');
    assert.equal(
      list.map((s) => s.id),
      [fresh.session.id, mid.session.id, old.session.id],
    );
    assert.equal(list[1], mid.session);
    await ctx.advance(20 * MIN); // the first one idles out
    list = await sessions.listForUser('z1');
    assert.equal(
      list.map((s) => s.id),
      [fresh.session.id, mid.session.id],
    );
    const index = new KeySpace(ctx.prefix).sessionIndex(userTag('z1'));
    assert.equal((await ctx.redis.zrange(index, 0, -1)).sort(), [fresh.session.id, mid.session.id].sort());
    assert.equal(await sessions.listForUser('nobody'), []);
  });

  test('does not count as activity', async (ctx) => {
    const sessions = store(ctx);
    const { token, session } = await sessions.create('z2', {});
    await ctx.advance(30 * MIN);
    const [listed] = await sessions.listForUser('z2');
    assert.is(listed?.lastSeenAt, session.lastSeenAt);
    await ctx.advance(31 * MIN);
    assert.is(await sessions.get(token), null);
  });
});

backendSuite('SessionStore.revokeAllForUser', (test) => {
  test('ends every session of the user in one round trip and sets the mark', async (ctx) => {
    const events: SecurityEvent[] = [];
    const sessions = store(ctx, {}, events);
    const tokens = [];
    for (let i = 0; i < 4; i++) tokens.push((await sessions.create('r1', {})).token);
    const other = await sessions.create('r1-other', {});
    let count = -1;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        count = await sessions.revokeAllForUser('r1');
      }),
      1,
    );
    assert.is(count, 4);
    for (const t of tokens) assert.is(await sessions.get(t), null);
    assert.ok(await sessions.get(other.token), 'another user is untouched');
    const mark = new KeySpace(ctx.prefix).revokeBefore(userTag('r1'));
    // Exclusive of this millisecond: an authentication at `now` counts as before the revocation.
    assert.is(await ctx.redis.get(mark), String(ctx.clock.now() + 1));
    const pttl = await ctx.redis.pttl(mark);
    assert.ok(pttl >= 24 * HOUR, `the mark outlives the longest session (pttl ${pttl})`);
    assert.ok(events.some((e) => e.type === 'session.revoked-all' && e.count === 4));
    // Exactly the other user's session and index remain, plus the mark.
    assert.is((await ctx.keys()).length, 3);
  });

  test('with except keeps the current session and sets no mark', async (ctx) => {
    const sessions = store(ctx);
    const before = ctx.clock.now();
    const current = await sessions.create('r2', { me: true });
    const others = [await sessions.create('r2', {}), await sessions.create('r2', {})];
    await ctx.advance(1000);
    assert.is(await sessions.revokeAllForUser('r2', { except: current.session.id }), 2);
    assert.ok(await sessions.get(current.token));
    for (const o of others) assert.is(await sessions.get(o.token), null);
    assert.equal(
      (await sessions.listForUser('r2')).map((s) => s.id),
      [current.session.id],
    );
    // No mark: a login that began before still completes (logout-others is not a credential change).
    assert.ok(await sessions.create('r2', {}, { authenticatedAt: before }));
  });

  test('with except and setMark keeps the current session and refuses logins that began before', async (ctx) => {
    const sessions = store(ctx);
    const before = ctx.clock.now();
    const current = await sessions.create('r3', {});
    const other = await sessions.create('r3', {});
    await ctx.advance(1000);
    assert.is(await sessions.revokeAllForUser('r3', { except: current.session.id, setMark: true }), 1);
    const kept = await sessions.get(current.token);
    assert.ok(kept, 'the current session survives its own mark');
    assert.is(kept.authenticatedAt, ctx.clock.now() + 1, 'it counts as re-authenticated at the mark');
    assert.is(await sessions.get(other.token), null);
    await rejects(
      sessions.create('r3', {}, { authenticatedAt: before }),
      (e) => e instanceof StaleAuthenticationError,
      'StaleAuthenticationError',
    );
  });

  test('works for user ids with quotes, braces, colons and unicode', async (ctx) => {
    const sessions = store(ctx);
    for (const userId of ODD_USER_IDS) {
      const { token, session } = await sessions.create(userId, { who: userId });
      assert.equal(await sessions.get(token), session);
      assert.equal(
        (await sessions.listForUser(userId)).map((s) => s.userId),
        [userId],
      );
      assert.is(await sessions.revokeAllForUser(userId), 1);
      assert.is(await sessions.get(token), null);
    }
    for (const key of await ctx.keys()) {
      assert.ok(/^[\x21-\x7e]+$/.test(key), `key ${key} holds only the user tag`);
    }
  });
});

backendSuite('SessionStore lifetimes', (test) => {
  test('every key lives at least as long as what it holds, and is renewed with the idle deadline', async (ctx) => {
    const sessions = store(ctx, { idleTimeoutMs: 2 * HOUR });
    const ks = new KeySpace(ctx.prefix);
    const tag = userTag('t1');
    // Real Redis counts PTTL down in real time while the test runs: allow a little of it.
    const near = async (key: string, expected: number, what: string) => {
      const pttl = await ctx.redis.pttl(key);
      assert.ok(pttl <= expected && pttl > expected - 2000, `${what}: pttl ${pttl}, expected ${expected}`);
    };
    const long = await sessions.create('t1', {}, { absoluteTimeoutMs: 4 * HOUR });
    const short = await sessions.create('t1', {}, { idleTimeoutMs: 10 * MIN });
    await near(ks.session(tag, long.session.id), 2 * HOUR, 'session');
    await near(ks.session(tag, short.session.id), 10 * MIN, 'short session');
    await near(ks.sessionIndex(tag), 2 * HOUR, 'index: its longest member');
    await ctx.advance(90 * MIN);
    assert.ok(await sessions.get(long.token));
    await near(ks.session(tag, long.session.id), 2 * HOUR, 'renewed session');
    await near(ks.sessionIndex(tag), 2 * HOUR, 'index, extended with it');
    await ctx.advance(100 * MIN);
    const late = await sessions.get(long.token);
    assert.is(late?.idleExpiresAt, long.session.absoluteExpiresAt);
    await near(ks.session(tag, long.session.id), long.session.absoluteExpiresAt - ctx.clock.now(), 'capped');
    await sessions.revokeAllForUser('t1');
    await near(ks.revokeBefore(tag), 24 * HOUR + MIN, 'mark: the longest lifetime plus skew');
  });

  test('holds zero keys, indexes and marks included, once every lifetime has passed', async (ctx) => {
    const sessions = store(ctx, { maxSessionsPerUser: 2 });
    const a = await sessions.create('l1', { a: 1 });
    await ctx.advance(1000);
    await sessions.create('l1', {}, { absoluteTimeoutMs: 3 * HOUR });
    await ctx.advance(1000);
    await sessions.create('l1', {}); // evicts the first
    const b = await sessions.create('l2', {}, { idleTimeoutMs: 2 * HOUR, absoluteTimeoutMs: 48 * HOUR });
    await sessions.update(b.token, { x: 'y' });
    const regen = await sessions.regenerate(b.token);
    assert.ok(regen);
    await sessions.create('l3', {});
    await sessions.revokeAllForUser('l3');
    await ctx.advance(1); // a login in the mark's own millisecond is refused
    await sessions.create('l3', {});
    assert.is(await sessions.get(a.token), null);
    assert.equal(await ctx.keysWithoutTtl(), []);
    for (let i = 0; i < 47; i++) {
      await ctx.advance(HOUR);
      await sessions.get(regen.token); // keep one alive until its absolute end
    }
    await ctx.advance(2 * HOUR);
    assert.equal(await ctx.keys(), []);
  });
});
