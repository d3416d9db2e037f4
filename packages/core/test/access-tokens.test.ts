import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { createFakeRedis, TestClock } from '@latchkey/testing';
import { type BackendContext, backendSuite, realRedisSuite } from '@latchkey/testing/backends';
import { type Claims, PublicProtocol } from 'paseto';
import * as v2 from 'paseto/v2/public';
import * as v3 from 'paseto/v3/public';
import { ImportSecretKeyFactory, SignFactory } from 'paseto/v4/public';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AccessTokens,
  type AccessTokensOptions,
  generateDevelopmentKey,
  InvalidInputError,
  InvalidOptionError,
  KeyError,
  KeyRing,
  KeySpace,
  SessionStore,
  StoreUnavailableError,
  userTag,
} from '../src/index.js';
import { LruMap } from '../src/internal/lru.js';
import { eventually, rejects } from './helpers/assertions.js';
import { startOwnRedis } from './helpers/own-redis.js';
import { iso, signV4Public } from './helpers/paseto.js';
import {
  type SessionRecordInput,
  writeRevokeBeforeMark,
  writeSessionRecord,
} from './helpers/session-record.js';

const MINUTE = 60_000;
const IMPLICIT_TEXT = 'latchkey/access-token/v1';
const IMPLICIT = new TextEncoder().encode(IMPLICIT_TEXT);
const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

const dev = await generateDevelopmentKey();
const other = await generateDevelopmentKey();
const forger = new PublicProtocol(ImportSecretKeyFactory, SignFactory);
const devSecret = await forger.ImportSecretKey(dev.secret as `k4.secret.${string}`);

/** Signs arbitrary claims with the test's key, as latchkey would (unless told otherwise). */
function forge(
  claims: Claims,
  options: { footer?: unknown; assertion?: Uint8Array; nonExpiring?: boolean } = {},
): Promise<string> {
  return forger.Sign(devSecret, claims, {
    footer: encode(options.footer ?? { kid: dev.kid }),
    implicitAssertion: options.assertion ?? IMPLICIT,
    addIssuedAt: false,
    ...(options.nonExpiring === true ? { nonExpiring: true } : {}),
  });
}

/**
 * Signs any payload and footer with the test's key and latchkey's implicit assertion, for what
 * paseto's Sign refuses to produce: claims of the wrong type, unparsable dates, footers of another
 * shape. The verifier must still never accept or crash on them.
 */
function signRaw(payload: string, footer = JSON.stringify({ kid: dev.kid })): string {
  return signV4Public(dev.secret, payload, footer, IMPLICIT_TEXT);
}

/** The same token with one payload character changed (the signature no longer matches). */
function flipPayloadChar(token: string): string {
  const at = 'v4.public.'.length + 5;
  const c = token[at] === 'A' ? 'B' : 'A';
  return `${token.slice(0, at)}${c}${token.slice(at + 1)}`;
}

async function ring(): Promise<KeyRing> {
  return KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });
}

function tokensFor(
  ctx: BackendContext,
  keyRing: KeyRing,
  extra: Partial<AccessTokensOptions> = {},
): AccessTokens {
  return new AccessTokens({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, keyRing, ...extra });
}

/** A live session record written directly (not through SessionStore), created now unless `extra` says. */
function writeSession(
  ctx: BackendContext,
  userId: string,
  sessionId: string,
  extra: Partial<SessionRecordInput> = {},
): Promise<string> {
  return writeSessionRecord(ctx.redis, {
    prefix: ctx.prefix,
    userId,
    sessionId,
    now: ctx.clock.now(),
    ...extra,
  });
}

/** A live session (authenticated 1234 ms ago) and a token for it. */
async function login(
  ctx: BackendContext,
  tokens: AccessTokens,
  userId = 'alice',
  sessionId = 'sess-0000000000000001',
) {
  const authenticatedAt = ctx.clock.now() - 1234;
  await writeSession(ctx, userId, sessionId, { authenticatedAt });
  const issued = await tokens.issue({ userId, sessionId });
  return { userId, sessionId, authenticatedAt, ...issued };
}

// ---------------------------------------------------------------------------------------------------

const keyRing = suite('KeyRing');

keyRing('loads PASERK text, derives a stable default kid, and verifies with the signing key', async () => {
  const a = await KeyRing.fromPaserk({ signing: dev.secret });
  const b = await KeyRing.fromPaserk({ signing: `  ${dev.secret}\n` });
  assert.is(a.signingKid, dev.kid);
  assert.is(b.signingKid, dev.kid);
  assert.equal(a.kids, [dev.kid]);
});

keyRing('loads keys from files and builds a verify-only ring', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-keys-'));
  try {
    writeFileSync(join(dir, 'signing'), `${dev.secret}\n`);
    writeFileSync(join(dir, 'old.pub'), other.public);
    const full = await KeyRing.fromPaserk({
      signing: { file: join(dir, 'signing') },
      kid: 'now',
      verification: [{ kid: 'old', key: { file: join(dir, 'old.pub') } }],
    });
    assert.equal(full.kids.sort(), ['now', 'old']);
    const verifyOnly = await KeyRing.fromPaserk({ verification: [{ key: dev.public }] });
    assert.is(verifyOnly.signingKid, undefined);
    assert.equal(verifyOnly.kids, [dev.kid]);
    writeFileSync(join(dir, 'big'), 'k4.secret.'.padEnd(10_000, 'A'));
    for (const file of [join(dir, 'missing'), join(dir, 'big'), dir]) {
      await KeyRing.fromPaserk({ signing: { file } }).then(
        () => assert.unreachable(`loaded ${file}`),
        (e: unknown) => assert.instance(e, KeyError),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

keyRing('refuses wrong key types, bad PASERK, empty rings, bad and clashing kids', async () => {
  const cases: Array<[Parameters<typeof KeyRing.fromPaserk>[0], new (...a: never[]) => Error]> = [
    [{ signing: dev.public }, KeyError],
    [{ signing: 'k4.secret.not-base64!' }, KeyError],
    [{ signing: 'k3.secret.AAAA' }, KeyError],
    [{ verification: [{ key: dev.secret }] }, KeyError],
    [{}, KeyError],
    [{ signing: dev.secret, kid: 'bad kid' }, InvalidOptionError],
    [{ signing: dev.secret, kid: 'x'.repeat(65) }, InvalidOptionError],
    [{ kid: 'orphan' }, InvalidOptionError],
    [{ signing: dev.secret, kid: 'k', verification: [{ kid: 'k', key: other.public }] }, KeyError],
  ];
  for (const [options, type] of cases) {
    await KeyRing.fromPaserk(options).then(
      () => assert.unreachable(`accepted ${JSON.stringify(options)}`),
      (e: unknown) => assert.instance(e, type),
    );
  }
});

keyRing('never prints a secret key', async () => {
  const r = await KeyRing.fromPaserk({ signing: dev.secret, kid: 'k1' });
  const secretPart = dev.secret.slice('k4.secret.'.length, 30);
  for (const text of [String(r), inspect(r), JSON.stringify(r)]) {
    assert.not.ok(text.includes(secretPart), text);
    assert.ok(text.includes('k1'));
  }
});

keyRing('holds at most 32 keys, also when rotation adds them through setSigningKey', async () => {
  const r = await ring();
  const keys = await Promise.all(Array.from({ length: 32 }, () => generateDevelopmentKey()));
  for (let i = 0; i < 31; i++)
    await r.setSigningKey({ kid: `k${i}`, key: (keys[i] as { secret: string }).secret });
  assert.is(r.kids.length, 32);
  await r.setSigningKey({ kid: 'k32', key: (keys[31] as { secret: string }).secret }).then(
    () => assert.unreachable('a 33rd key'),
    (e: unknown) => assert.instance(e, KeyError),
  );
  await r.addVerificationKey({ key: other.public }).then(
    () => assert.unreachable('a 33rd key'),
    (e: unknown) => assert.instance(e, KeyError),
  );
  assert.is(r.signingKid, 'k30', 'a refused rotation changes nothing');
  assert.ok(r.removeVerificationKey('k0'));
  await r.setSigningKey({ kid: 'k32', key: (keys[31] as { secret: string }).secret });
  assert.is(r.signingKid, 'k32');
});

keyRing('refuses to remove the signing key', async () => {
  const r = await ring();
  assert.throws(
    () => r.removeVerificationKey(dev.kid),
    (e: unknown) => e instanceof KeyError,
  );
  assert.is(r.removeVerificationKey('never-there'), false);
});

keyRing.run();

// ---------------------------------------------------------------------------------------------------

const options = suite('AccessTokens options');

options('rejects bad options, naming them', async () => {
  const redis = createFakeRedis();
  const keyRing = await ring();
  const cases: Array<[Partial<AccessTokensOptions>, string]> = [
    [{ ttlMs: 999 }, 'ttlMs'],
    [{ ttlMs: 25 * 3600_000 }, 'ttlMs'],
    [{ issuer: '' }, 'issuer'],
    [{ audience: 'a'.repeat(300) }, 'audience'],
    [{ clockToleranceMs: -5 }, 'clockToleranceMs'],
    [{ maxTokenLength: 100 }, 'maxTokenLength'],
    [{ cache: { maxEntries: 0 } }, 'cache.maxEntries'],
    [{ keyRing: {} as KeyRing }, 'keyRing'],
  ];
  for (const [extra, name] of cases) {
    assert.throws(
      () => new AccessTokens({ redis, keyRing, ...extra }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.includes(name),
      name,
    );
  }
  redis.disconnect();
});

options.run();

// ---------------------------------------------------------------------------------------------------

const issue = suite('AccessTokens.issue');

issue('signs v4.public with sub, sid, jti, iat, exp, iss, aud and the kid in the footer only', async () => {
  const clock = new TestClock({ start: Date.UTC(2030, 0, 1, 12, 0, 0, 750) });
  const redis = createFakeRedis();
  const tokens = new AccessTokens({
    redis,
    clock,
    keyRing: await ring(),
    issuer: 'iss-x',
    audience: 'aud-y',
  });
  const issued = await tokens.issue({
    userId: 'ü§er',
    sessionId: 'sid_1',
    claims: { role: 'admin', n: [1, 2] },
  });
  const [version, purpose, payload, footer] = issued.token.split('.');
  assert.is(`${version}.${purpose}`, 'v4.public');
  assert.equal(JSON.parse(Buffer.from(footer as string, 'base64url').toString()), { kid: dev.kid });
  const body = Buffer.from(payload as string, 'base64url');
  const claims = JSON.parse(body.subarray(0, body.length - 64).toString());
  assert.equal(claims, {
    role: 'admin',
    n: [1, 2],
    sub: 'ü§er',
    sid: 'sid_1',
    jti: issued.jti,
    iat: '2030-01-01T12:00:00Z',
    exp: '2030-01-01T12:15:00Z',
    iss: 'iss-x',
    aud: 'aud-y',
  });
  assert.not.ok('kid' in claims);
  assert.is(issued.issuedAt, Date.UTC(2030, 0, 1, 12, 0, 0));
  assert.is(issued.expiresAt, Date.UTC(2030, 0, 1, 12, 15, 0));
  assert.match(issued.jti, /^[A-Za-z0-9_-]{22}$/);
  redis.disconnect();
});

issue('refuses registered claims in custom claims, bad ids, lifetimes and oversized tokens', async () => {
  const redis = createFakeRedis();
  const tokens = new AccessTokens({ redis, keyRing: await ring(), maxTokenLength: 1024 });
  const bad: unknown[] = [
    { userId: 'a', sessionId: 's', claims: { sub: 'mallory' } },
    { userId: 'a', sessionId: 's', claims: { exp: 'never' } },
    { userId: 'a', sessionId: 's', claims: { jti: 'mine' } },
    { userId: '', sessionId: 's' },
    { userId: 'a'.repeat(1025), sessionId: 's' },
    { userId: 'a', sessionId: 'bad id' },
    { userId: 'a', sessionId: 's', ttlMs: 10 },
    { userId: 'a', sessionId: 's', claims: [] },
    { userId: 'a', sessionId: 's', claims: { big: 'x'.repeat(2000) } },
    { userId: 'a', sessionId: 's', claims: { n: 10n } },
    null,
  ];
  for (const input of bad) {
    await tokens.issue(input as never).then(
      () => assert.unreachable(`issued for ${inspect(input)}`),
      (e: unknown) => assert.instance(e, InvalidInputError),
    );
  }
  redis.disconnect();
});

issue('needs a signing key', async () => {
  const redis = createFakeRedis();
  const verifyOnly = await KeyRing.fromPaserk({ verification: [{ key: dev.public }] });
  const tokens = new AccessTokens({ redis, keyRing: verifyOnly });
  await tokens.issue({ userId: 'a', sessionId: 's' }).then(
    () => assert.unreachable('signed without a key'),
    (e: unknown) => assert.instance(e, KeyError),
  );
  redis.disconnect();
});

issue.run();

// ---------------------------------------------------------------------------------------------------

backendSuite('AccessTokens.verify', (test) => {
  test('accepts a fresh token in exactly one round trip, cached or not', async (ctx) => {
    for (const cache of [false, undefined] as const) {
      const tokens = tokensFor(ctx, await ring(), cache === false ? { cache } : {});
      const t = await login(ctx, tokens, `user-${String(cache)}`);
      for (let i = 0; i < 2; i++) {
        let result: Awaited<ReturnType<AccessTokens['verify']>> | undefined;
        const trips = await ctx.roundTrips.measure(async () => {
          result = await tokens.verify(t.token);
        });
        assert.is(trips, 1, `cache ${String(cache)}, call ${i}`);
        assert.ok(result?.ok);
        if (result?.ok) {
          assert.is(result.userId, t.userId);
          assert.is(result.sessionId, t.sessionId);
          assert.is(result.jti, t.jti);
          assert.is(result.expiresAt, t.expiresAt);
          assert.is(result.authenticatedAt, t.authenticatedAt, 'the session’s m:aa, in ms');
          assert.is(result.claims.sub, t.userId);
          assert.ok(Object.isFrozen(result.claims));
        }
      }
    }
  });

  test('never writes to Redis, also for dead sessions and revoked tokens', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const t = await login(ctx, tokens);
    await tokens.revoke(t.token);
    await writeSession(ctx, 'bob', 'bob-session', { now: ctx.clock.now() - 2 * 3600_000 });
    const idle = await tokens.issue({ userId: 'bob', sessionId: 'bob-session' });
    const before = await ctx.dump();
    ctx.roundTrips.reset();
    assert.equal(await tokens.verify(t.token), { ok: false, reason: 'revoked' });
    assert.equal(await tokens.verify(idle.token), { ok: false, reason: 'session_revoked' });
    if (ctx.kind !== 'fake') assert.equal(ctx.roundTrips.commands, ['evalsha', 'evalsha']);
    assert.equal(await ctx.dump(), before);
  });

  test('fails once the token is revoked, by token or by id, also when it was cached', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const a = await login(ctx, tokens);
    const b = await tokens.issue({ userId: a.userId, sessionId: a.sessionId });
    assert.ok((await tokens.verify(a.token)).ok);
    assert.ok((await tokens.verify(b.token)).ok);
    assert.is(await tokens.revoke(a.token), true);
    assert.is(await tokens.revoke({ jti: b.jti, userId: a.userId, expiresAt: b.expiresAt }), true);
    assert.equal(await tokens.verify(a.token), { ok: false, reason: 'revoked' });
    assert.equal(await tokens.verify(b.token), { ok: false, reason: 'revoked' });
    const c = await tokens.issue({ userId: a.userId, sessionId: a.sessionId });
    assert.ok((await tokens.verify(c.token)).ok, 'other tokens of the session live on');
    // The records go away with the tokens.
    await ctx.advance(16 * MINUTE + 5_000 + MINUTE);
    const space = new KeySpace(ctx.prefix);
    assert.equal(
      (await ctx.keys()).filter((k) => k.startsWith(space.revokedJtiBase(userTag(a.userId)))),
      [],
    );
    assert.equal(await ctx.keysWithoutTtl(), []);
  });

  test('fails when the session is gone, idle or past its absolute lifetime', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const gone = await login(ctx, tokens, 'u1', 's1');
    await ctx.redis.del(new KeySpace(ctx.prefix).session(userTag('u1'), 's1'));
    assert.equal(await tokens.verify(gone.token), { ok: false, reason: 'session_revoked' });

    await writeSession(ctx, 'u2', 's2', { idleMs: 2 * MINUTE });
    const idle = await tokens.issue({ userId: 'u2', sessionId: 's2' });
    await writeSession(ctx, 'u3', 's3', { idleMs: 10 * MINUTE, absoluteMs: 3 * MINUTE });
    const absolute = await tokens.issue({ userId: 'u3', sessionId: 's3' });
    assert.ok((await tokens.verify(idle.token)).ok);
    assert.ok((await tokens.verify(absolute.token)).ok);
    ctx.clock.advance(2 * MINUTE); // logical time only: the records are still in Redis
    assert.equal(await tokens.verify(idle.token), { ok: false, reason: 'session_revoked' });
    assert.ok((await tokens.verify(absolute.token)).ok);
    ctx.clock.advance(MINUTE);
    assert.equal(await tokens.verify(absolute.token), { ok: false, reason: 'session_revoked' });
  });

  test('a user-wide mark kills older tokens; tokens of a later login pass', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const before = await login(ctx, tokens, 'carol', 'old-session');
    const sameSecond = await tokens.issue({ userId: 'carol', sessionId: 'old-session' });
    ctx.clock.advance(250); // the mark falls inside the same second as the tokens' iat
    await writeRevokeBeforeMark(ctx.redis, ctx.prefix, 'carol', ctx.clock.now());
    assert.equal(await tokens.verify(before.token), { ok: false, reason: 'session_revoked' });
    assert.equal(await tokens.verify(sameSecond.token), { ok: false, reason: 'session_revoked' });
    ctx.clock.advance(1);
    await writeSession(ctx, 'carol', 'new');
    const after = await tokens.issue({ userId: 'carol', sessionId: 'new' });
    assert.ok((await tokens.verify(after.token)).ok, 'authenticated after the mark');
    assert.equal(await tokens.verify(before.token), { ok: false, reason: 'session_revoked' });
  });

  test('expires by the injected clock, with the clock tolerance, cache or not', async (ctx) => {
    for (const cache of [false, undefined] as const) {
      const tokens = tokensFor(ctx, await ring(), cache === false ? { cache } : {});
      const t = await login(ctx, tokens, `exp-${String(cache)}`);
      assert.ok((await tokens.verify(t.token)).ok);
      ctx.clock.set(t.expiresAt + 4_000);
      assert.ok((await tokens.verify(t.token)).ok, 'inside the 5 s tolerance');
      ctx.clock.set(t.expiresAt + 5_001);
      assert.equal(await tokens.verify(t.token), { ok: false, reason: 'expired' });
      assert.is(await tokens.revoke(t.token), false, 'an expired token needs no record');
    }
  });

  test('refuses a token that is not yet valid', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const ahead = new AccessTokens({
      redis: ctx.redis,
      prefix: ctx.prefix,
      keyRing: await ring(),
      clock: { now: () => ctx.clock.now() + 10 * MINUTE },
    });
    await writeSession(ctx, 'f', 's');
    const future = await ahead.issue({ userId: 'f', sessionId: 's' });
    assert.equal(await tokens.verify(future.token), { ok: false, reason: 'not_yet_valid' });
    const nbf = await forge({
      sub: 'f',
      sid: 's',
      jti: 'j1',
      iat: iso(ctx.clock.now()),
      nbf: iso(ctx.clock.now() + MINUTE),
      exp: iso(ctx.clock.now() + 5 * MINUTE),
    });
    assert.equal(await tokens.verify(nbf), { ok: false, reason: 'not_yet_valid' });
  });

  test('rotates keys: the old kid verifies until removed; an unknown kid fails', async (ctx) => {
    const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: 'k1' });
    const tokens = tokensFor(ctx, keyRing);
    const old = await login(ctx, tokens);
    assert.ok((await tokens.verify(old.token)).ok);
    await keyRing.setSigningKey({ kid: 'k2', key: other.secret });
    const fresh = await tokens.issue({ userId: old.userId, sessionId: old.sessionId });
    assert.match(Buffer.from(fresh.token.split('.')[3] as string, 'base64url').toString(), /"k2"/);
    assert.ok((await tokens.verify(old.token)).ok, 'k1 still verifies');
    assert.ok((await tokens.verify(fresh.token)).ok);
    assert.ok(keyRing.removeVerificationKey('k1'));
    ctx.roundTrips.reset();
    assert.equal(await tokens.verify(old.token), { ok: false, reason: 'unknown_key' });
    assert.is(ctx.roundTrips.count, 0, 'an unknown key is decided locally');
    assert.ok((await tokens.verify(fresh.token)).ok);

    const stranger = await KeyRing.fromPaserk({ signing: dev.secret, kid: 'k9' });
    const foreign = await tokensFor(ctx, stranger).issue({ userId: old.userId, sessionId: old.sessionId });
    assert.equal(await tokens.verify(foreign.token), { ok: false, reason: 'unknown_key' });
  });

  test('accepts only the exact footer latchkey writes, even when it is correctly signed', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    await writeSession(ctx, 'a', 's');
    const payload = JSON.stringify({
      sub: 'a',
      sid: 's',
      jti: 'j',
      iat: iso(ctx.clock.now()),
      exp: iso(ctx.clock.now() + MINUTE),
    });
    assert.ok((await tokens.verify(signRaw(payload))).ok, 'the raw signer is faithful');
    ctx.roundTrips.reset();
    for (const footer of [
      `{"kid":"${dev.kid}","kid":"${dev.kid}"}`,
      ` {"kid":"${dev.kid}"}`,
      `{"kid": "${dev.kid}"}`,
      `{"kid":"${dev.kid}"}\n`,
      `{"kid":"${dev.kid}","exp":"x"}`,
      `{"\\u006bid":"${dev.kid}"}`,
    ]) {
      assert.equal(await tokens.verify(signRaw(payload, footer)), { ok: false, reason: 'malformed' }, footer);
    }
    assert.is(ctx.roundTrips.count, 0, 'decided before any Redis call');
  });

  test('signed claims of the wrong type or shape are claim failures, never exceptions', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const now = ctx.clock.now();
    const base = { sub: 'a', sid: 's', jti: 'j', iat: iso(now), exp: iso(now + MINUTE) };
    const cases: Array<[unknown, string]> = [
      [{ ...base, sub: 1 }, 'claims'],
      [{ ...base, exp: 123 }, 'claims'],
      [{ ...base, exp: '2099-02-30T00:00:00Z' }, 'claims'],
      [{ ...base, nbf: 'garbage' }, 'claims'],
      [{ ...base, iat: 'yesterday' }, 'claims'],
      [{ ...base, aud: 5 }, 'claims'],
      [{ ...base, jti: { a: 1 } }, 'claims'],
      [{ ...base, sid: ['s'] }, 'claims'],
      [{ ...base, iat: null }, 'claims'],
      [{ ...base, nbf: iso(now + 10 * MINUTE) }, 'not_yet_valid'],
      [[1], 'malformed'],
      ['"x"', 'malformed'],
    ];
    ctx.roundTrips.reset();
    for (const [claims, reason] of cases) {
      const payload = typeof claims === 'string' ? claims : JSON.stringify(claims);
      assert.equal(await tokens.verify(signRaw(payload)), { ok: false, reason }, payload);
    }
    assert.is(ctx.roundTrips.count, 0);
  });

  test('refuses (and never caches) a token claiming a longer life than issue() signs', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    await writeSession(ctx, 'a', 's');
    const now = ctx.clock.now();
    const claims = { sub: 'a', sid: 's', jti: 'j', iat: iso(now) };
    assert.ok((await tokens.verify(await forge({ ...claims, exp: iso(now + 24 * 3600_000) }))).ok, '24 h');
    const forever = await forge({ ...claims, jti: 'k', exp: iso(now + 25 * 3600_000) });
    assert.equal(await tokens.verify(forever), { ok: false, reason: 'claims' });
    assert.is(tokens.cacheStats().entries, 1);
  });

  test('a key id naming another key is a bad signature', async (ctx) => {
    const tokens = tokensFor(ctx, await KeyRing.fromPaserk({ signing: other.secret, kid: 'k1' }));
    const t = await forge(
      { sub: 'a', sid: 's', jti: 'j', iat: iso(ctx.clock.now()) },
      { footer: { kid: 'k1' } },
    );
    assert.equal(await tokens.verify(t), { ok: false, reason: 'invalid_signature' });
  });

  test('rejects tampered payloads and footers, locally', async (ctx) => {
    const keyRing = await KeyRing.fromPaserk({
      signing: dev.secret,
      kid: 'k1',
      verification: [{ kid: 'k2', key: other.public }],
    });
    const tokens = tokensFor(ctx, keyRing);
    const t = await login(ctx, tokens);
    const [v, p, payload, footer] = t.token.split('.') as [string, string, string, string];
    const bytes = Buffer.from(payload, 'base64url');
    const json = bytes.subarray(0, bytes.length - 64).toString();
    const swapped = Buffer.concat([Buffer.from(json.replace(t.userId, 'mallory')), bytes.subarray(-64)]);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1;
    const cases: Array<[string, string]> = [
      [`${v}.${p}.${swapped.toString('base64url')}.${footer}`, 'invalid_signature'],
      [`${v}.${p}.${flipped.toString('base64url')}.${footer}`, 'invalid_signature'],
      [`${v}.${p}.${payload}.${Buffer.from('{"kid":"k2"}').toString('base64url')}`, 'invalid_signature'],
      [`${v}.${p}.${payload}.${Buffer.from('{"kid":"k1","x":1}').toString('base64url')}`, 'malformed'],
      [`${v}.${p}.${payload}.${Buffer.from('{"kid":"k 1"}').toString('base64url')}`, 'malformed'],
      [`${v}.${p}.${payload}.${Buffer.from('["k1"]').toString('base64url')}`, 'malformed'],
      [`${v}.${p}.${payload}.${Buffer.from('not json').toString('base64url')}`, 'malformed'],
      [
        `${v}.${p}.${payload}.${Buffer.from(`{"kid":"${'k'.repeat(200)}"}`).toString('base64url')}`,
        'malformed',
      ],
      [`${v}.${p}.${payload}`, 'malformed'],
      [`${v}.${p}.${payload}.${footer}.`, 'malformed'],
    ];
    ctx.roundTrips.reset();
    for (const [token, reason] of cases) {
      assert.equal(await tokens.verify(token), { ok: false, reason }, token.slice(-40));
    }
    assert.is(ctx.roundTrips.count, 0);
    assert.ok((await tokens.verify(t.token)).ok, 'the original still verifies');
  });

  test('rejects other versions and purposes, huge, non-ASCII and non-string input locally', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const v2p = new PublicProtocol(v2.GenerateKeyPairFactory, v2.SignFactory);
    const v3p = new PublicProtocol(v3.GenerateKeyPairFactory, v3.SignFactory);
    const claims = { sub: 'a', sid: 's', jti: 'j' };
    const v2Token = await v2p.Sign((await v2p.GenerateKeyPair()).secretKey, claims, {
      footer: encode({ kid: dev.kid }),
    });
    const v3Token = await v3p.Sign((await v3p.GenerateKeyPair()).secretKey, claims, {
      footer: encode({ kid: dev.kid }),
    });
    const valid = (await login(ctx, tokens)).token;
    const inputs: unknown[] = [
      v2Token,
      v3Token,
      `v4.local.${Buffer.alloc(120, 7).toString('base64url')}.${Buffer.from(`{"kid":"${dev.kid}"}`).toString('base64url')}`,
      valid.replace('v4.public.', 'v4.local.'),
      valid.replace('v4.public.', 'v3.public.'),
      `${valid.slice(0, 40)}${'A'.repeat(1024 * 1024)}`,
      `${valid.slice(0, 30)}é${valid.slice(31)}`,
      `${valid}💥`,
      ` ${valid}`,
      '',
      'v4.public..',
      'Bearer x',
      undefined,
      null,
      42,
      { token: valid },
    ];
    ctx.roundTrips.reset();
    for (const input of inputs) {
      assert.equal(
        await tokens.verify(input as string),
        { ok: false, reason: 'malformed' },
        String(input).slice(0, 30),
      );
    }
    assert.is(ctx.roundTrips.count, 0);
  });

  test('rejects tokens missing exp, jti, sid, sub or iat, or with bad shapes, as claims', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    const now = ctx.clock.now();
    const base = { sub: 'alice', sid: 'sid-1', jti: 'jti-1', iat: iso(now), exp: iso(now + MINUTE) };
    const without = (name: keyof typeof base) => {
      const copy: Record<string, string> = { ...base };
      delete copy[name];
      return copy;
    };
    const cases: Array<[Claims, boolean]> = [
      [without('exp'), true],
      [without('jti'), false],
      [without('sid'), false],
      [without('sub'), false],
      [without('iat'), false],
      [{ ...base, jti: 'a b' }, false],
      [{ ...base, sid: '../x' }, false],
      [{ ...base, sub: '' }, false],
    ];
    ctx.roundTrips.reset();
    for (const [claims, nonExpiring] of cases) {
      const token = await forge(claims, { nonExpiring });
      assert.equal(await tokens.verify(token), { ok: false, reason: 'claims' }, JSON.stringify(claims));
    }
    assert.is(ctx.roundTrips.count, 0);
  });

  test('separates latchkey tokens from anything else signed with the key (implicit assertion)', async (ctx) => {
    const tokens = tokensFor(ctx, await ring());
    await writeSession(ctx, 'a', 's');
    const claims = {
      sub: 'a',
      sid: 's',
      jti: 'j',
      iat: iso(ctx.clock.now()),
      exp: iso(ctx.clock.now() + MINUTE),
    };
    assert.ok((await tokens.verify(await forge(claims))).ok, 'the forger is faithful');
    for (const assertion of [new Uint8Array(), new TextEncoder().encode('some-other-purpose')]) {
      assert.equal(await tokens.verify(await forge(claims, { assertion })), {
        ok: false,
        reason: 'invalid_signature',
      });
    }
  });

  test('checks issuer and audience when configured', async (ctx) => {
    const keyRing = await ring();
    const strict = tokensFor(ctx, keyRing, { issuer: 'https://auth', audience: 'api' });
    const lax = tokensFor(ctx, keyRing);
    const t = await login(ctx, lax);
    assert.equal(await strict.verify(t.token), { ok: false, reason: 'claims' });
    const good = await strict.issue({ userId: t.userId, sessionId: t.sessionId });
    assert.ok((await strict.verify(good.token)).ok);
    const wrongAud = tokensFor(ctx, keyRing, { issuer: 'https://auth', audience: 'other' });
    assert.equal(await wrongAud.verify(good.token), { ok: false, reason: 'claims' });
  });

  test('the cache never accepts a revoked, expired, tampered or de-keyed token', async (ctx) => {
    const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: 'k1' });
    const tokens = tokensFor(ctx, keyRing, { cache: { maxEntries: 2 } });
    const t = await login(ctx, tokens);
    assert.ok((await tokens.verify(t.token)).ok); // now cached
    // Revoked: Redis is still asked.
    const r = await tokens.issue({ userId: t.userId, sessionId: t.sessionId });
    assert.ok((await tokens.verify(r.token)).ok);
    await tokens.revoke(r.token);
    const hits = tokens.cacheStats().hits;
    assert.equal(await tokens.verify(r.token), { ok: false, reason: 'revoked' });
    assert.is(tokens.cacheStats().hits, hits + 1, 'the revoked token came from the cache, Redis said no');
    // Tampered: another string, never a hit.
    const tampered = flipPayloadChar(t.token);
    assert.equal(await tokens.verify(tampered), { ok: false, reason: 'invalid_signature' });
    assert.is(tokens.cacheStats().hits, hits + 1);
    // Expired: by the injected clock, even though cached (and the stale entry is dropped).
    ctx.clock.set(t.expiresAt + 1);
    assert.ok((await tokens.verify(t.token)).ok, 'inside the tolerance: verified again, not from cache');
    assert.is(tokens.cacheStats().hits, hits + 1);
    ctx.clock.set(t.expiresAt + 5_001);
    assert.equal(await tokens.verify(t.token), { ok: false, reason: 'expired' });
    assert.is(tokens.cacheStats().hits, hits + 1);
    // Key ring change: the cache empties.
    ctx.clock.set(ctx.clock.now() + 1);
    const u = await login(ctx, tokens, 'zed', 'zed-session');
    assert.ok((await tokens.verify(u.token)).ok);
    await keyRing.setSigningKey({ kid: 'k2', key: other.secret });
    keyRing.removeVerificationKey('k1');
    assert.equal(await tokens.verify(u.token), { ok: false, reason: 'unknown_key' });
  });

  test('the cache is bounded, hits on repeats and skips oversized tokens', async (ctx) => {
    const tokens = tokensFor(ctx, await ring(), { cache: { maxEntries: 2, maxTokenLength: 600 } });
    const a = await login(ctx, tokens);
    const more = [];
    for (let i = 0; i < 3; i++) more.push(await tokens.issue({ userId: a.userId, sessionId: a.sessionId }));
    const big = await tokens.issue({
      userId: a.userId,
      sessionId: a.sessionId,
      claims: { pad: 'x'.repeat(400) },
    });
    assert.ok(big.token.length > 600 && a.token.length <= 600);
    assert.ok((await tokens.verify(a.token)).ok);
    assert.ok((await tokens.verify(a.token)).ok);
    assert.equal(tokens.cacheStats(), { entries: 1, hits: 1, misses: 1 });
    assert.ok((await tokens.verify(big.token)).ok);
    assert.ok((await tokens.verify(big.token)).ok);
    assert.equal(tokens.cacheStats(), { entries: 1, hits: 1, misses: 3 }, 'the big token is never cached');
    for (const t of more) assert.ok((await tokens.verify(t.token)).ok);
    assert.is(tokens.cacheStats().entries, 2, 'bounded');
    assert.ok((await tokens.verify(a.token)).ok);
    assert.is(tokens.cacheStats().hits, 1, 'the least recently used entry was evicted');
    const off = tokensFor(ctx, await ring(), { cache: false });
    assert.ok((await off.verify(a.token)).ok);
    assert.ok((await off.verify(a.token)).ok);
    assert.equal(off.cacheStats(), { entries: 0, hits: 0, misses: 0 });
  });
});

backendSuite('AccessTokens.verify with SessionStore', (test) => {
  function stores(ctx: BackendContext, keyRing: KeyRing) {
    const common = { redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix };
    return { sessions: new SessionStore(common), tokens: new AccessTokens({ ...common, keyRing }) };
  }

  test('the README quick start runs as written', async (ctx) => {
    const { redis, clock, prefix } = ctx;
    const sessions = new SessionStore({ redis, clock, prefix });
    const user = { id: 'readme-user' };
    const authenticatedAt = clock.now();
    // --- README ---
    const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: '2025-06' });
    const accessTokens = new AccessTokens({ redis, keyRing, clock, prefix });
    const { session } = await sessions.create(user.id, {}, { authenticatedAt });
    const { token, expiresAt } = await accessTokens.issue({ userId: user.id, sessionId: session.id });
    const result = await accessTokens.verify(token);
    assert.ok(result.ok && result.userId === user.id && result.sessionId === session.id);
    assert.is(expiresAt, Math.floor((clock.now() + 15 * MINUTE) / 1000) * 1000);
    assert.is(await accessTokens.revoke(token), true);
    assert.equal(await accessTokens.verify(token), { ok: false, reason: 'revoked' });
    const second = await accessTokens.issue({ userId: user.id, sessionId: session.id });
    assert.ok(await sessions.revoke(user.id, session.id));
    assert.equal(await accessTokens.verify(second.token), { ok: false, reason: 'session_revoked' });
    assert.is(await sessions.revokeAllForUser(user.id), 0);
  });

  test('carries the session’s amr as a signed claim that verify() exposes in one round trip', async (ctx) => {
    const { sessions, tokens } = stores(ctx, await ring());
    const { session } = await sessions.create('amy', {}, { amr: ['pwd', 'otp', 'mfa'] });
    const issued = await tokens.issue({ userId: 'amy', sessionId: session.id, amr: session.amr });
    let result: Awaited<ReturnType<AccessTokens['verify']>> | undefined;
    const trips = await ctx.roundTrips.measure(async () => {
      result = await tokens.verify(issued.token);
    });
    assert.is(trips, 1);
    assert.ok(result?.ok);
    if (result?.ok) {
      assert.equal(result.amr, ['pwd', 'otp', 'mfa']);
      assert.equal(result.claims.amr, ['pwd', 'otp', 'mfa']);
    }
    const plain = await tokens.issue({ userId: 'amy', sessionId: session.id });
    const r2 = await tokens.verify(plain.token);
    assert.ok(r2.ok && r2.amr.length === 0 && r2.claims.amr === undefined);
    await rejects(
      tokens.issue({ userId: 'amy', sessionId: session.id, amr: ['NOT OK'] }),
      (e) => e instanceof InvalidInputError,
      'InvalidInputError',
    );
    await rejects(
      tokens.issue({ userId: 'amy', sessionId: session.id, claims: { amr: ['mfa'] } }),
      (e) => e instanceof InvalidInputError,
      'InvalidInputError',
    );
    // A signed but malformed amr claim (not minted by issue()) is refused as bad claims.
    const now = ctx.clock.now();
    const forged = await forge({
      sub: 'amy',
      sid: session.id,
      jti: 'a'.repeat(22),
      iat: new Date(Math.floor(now / 1000) * 1000).toISOString(),
      exp: new Date(Math.floor(now / 1000) * 1000 + 60_000).toISOString(),
      amr: 'mfa',
    } as unknown as Claims);
    assert.equal(await tokens.verify(forged), { ok: false, reason: 'claims' });
  });

  test('a token lives with its session and dies when that session is revoked or destroyed', async (ctx) => {
    const { sessions, tokens } = stores(ctx, await ring());
    const a = await sessions.create('ann', {});
    const b = await sessions.create('ann', {});
    const ta = await tokens.issue({ userId: 'ann', sessionId: a.session.id });
    const tb = await tokens.issue({ userId: 'ann', sessionId: b.session.id });
    const ok = await tokens.verify(ta.token);
    assert.ok(ok.ok);
    if (ok.ok) assert.is(ok.authenticatedAt, a.session.authenticatedAt);
    assert.ok(await sessions.revoke('ann', a.session.id));
    assert.equal(await tokens.verify(ta.token), { ok: false, reason: 'session_revoked' });
    assert.ok((await tokens.verify(tb.token)).ok, 'the other session is untouched');
    assert.ok(await sessions.destroy(b.token));
    assert.equal(await tokens.verify(tb.token), { ok: false, reason: 'session_revoked' });
  });

  test('revokeAllForUser kills older tokens; tokens of a later login pass', async (ctx) => {
    const { sessions, tokens } = stores(ctx, await ring());
    const a = await sessions.create('bea', {});
    const old = await tokens.issue({ userId: 'bea', sessionId: a.session.id });
    assert.ok((await tokens.verify(old.token)).ok);
    ctx.clock.advance(10);
    assert.is(await sessions.revokeAllForUser('bea'), 1);
    assert.equal(await tokens.verify(old.token), { ok: false, reason: 'session_revoked' });
    ctx.clock.advance(1);
    const again = await sessions.create('bea', {});
    const fresh = await tokens.issue({ userId: 'bea', sessionId: again.session.id });
    assert.ok((await tokens.verify(fresh.token)).ok, 'a login after the mark');
    assert.equal(await tokens.verify(old.token), { ok: false, reason: 'session_revoked' });
  });

  test('a password change keeps the current session and its tokens, and kills the others', async (ctx) => {
    const { sessions, tokens } = stores(ctx, await ring());
    const current = await sessions.create('cid', {});
    const elsewhere = await sessions.create('cid', {});
    const mine = await tokens.issue({ userId: 'cid', sessionId: current.session.id });
    const theirs = await tokens.issue({ userId: 'cid', sessionId: elsewhere.session.id });
    ctx.clock.advance(5);
    await sessions.revokeAllForUser('cid', { except: current.session.id, setMark: true });
    assert.ok((await tokens.verify(mine.token)).ok);
    assert.equal(await tokens.verify(theirs.token), { ok: false, reason: 'session_revoked' });
  });

  test('an idle session takes its tokens with it, and everything is gone after all lifetimes', async (ctx) => {
    const { sessions, tokens } = stores(ctx, await ring());
    const s = await sessions.create('dan', {}, { idleTimeoutMs: 5 * MINUTE, absoluteTimeoutMs: 20 * MINUTE });
    const t = await tokens.issue({ userId: 'dan', sessionId: s.session.id });
    await tokens.revoke((await tokens.issue({ userId: 'dan', sessionId: s.session.id })).token);
    await ctx.advance(5 * MINUTE);
    assert.equal(await tokens.verify(t.token), { ok: false, reason: 'session_revoked' });
    await ctx.advance(24 * 3600_000);
    assert.equal(await ctx.keys(), []);
  });
});

// ---------------------------------------------------------------------------------------------------

// A real server of its own (stopped and restarted): where redis-server is missing this suite is not
// defined at all, or fails under LATCHKEY_REQUIRE_REDIS=1 — a skipped outage check never passes.
realRedisSuite('AccessTokens.verify when Redis is down', (outage) => {
  outage('raises StoreUnavailableError, never "valid", and recovers when Redis returns', async () => {
    const { server, redis, close } = await startOwnRedis({ maxRetriesPerRequest: 1 });
    const clock = new TestClock();
    const prefix = 'lkt-outage';
    try {
      const tokens = new AccessTokens({ redis, clock, prefix, keyRing: await ring(), commandTimeoutMs: 300 });
      await writeSessionRecord(redis, { prefix, userId: 'o', sessionId: 's', now: clock.now() });
      const t = await tokens.issue({ userId: 'o', sessionId: 's' });
      assert.ok((await tokens.verify(t.token)).ok);
      await server.stop();
      for (let i = 0; i < 2; i++) {
        await tokens.verify(t.token).then(
          (result) => assert.unreachable(`answered ${JSON.stringify(result)} while Redis is down`),
          (e: unknown) => assert.instance(e, StoreUnavailableError),
        );
      }
      await server.start();
      await eventually(async () => (await redis.ping()) === 'PONG', 'Redis is back');
      // The restarted server is empty: the session is gone, and the answer says so (not "valid").
      assert.equal(await tokens.verify(t.token), { ok: false, reason: 'session_revoked' });
      await writeSessionRecord(redis, { prefix, userId: 'o', sessionId: 's', now: clock.now() });
      assert.ok((await tokens.verify(t.token)).ok);
    } finally {
      await close();
    }
  });
});

const lru = suite('LruMap (the cache behind AccessTokens)');

lru('evicts the least recently used entry and refreshes on get', () => {
  const map = new LruMap<string, number>(2);
  map.set('a', 1);
  map.set('b', 2);
  assert.is(map.get('a'), 1);
  map.set('c', 3);
  assert.is(map.get('b'), undefined);
  assert.is(map.get('a'), 1);
  assert.is(map.get('c'), 3);
  assert.is(map.size, 2);
  map.clear();
  assert.is(map.size, 0);
  assert.throws(() => new LruMap(0));
});

lru.run();
