import { createHash } from 'node:crypto';
import { backendSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AccessTokens, generateDevelopmentKey, KeyRing } from '../src/index.js';
import { paserkPid } from '../src/key-ring.js';
import { writeSessionRecord } from './helpers/session-record.js';

/** PASERK k4.pid vectors, verbatim from paseto-standard/test-vectors PASERK/k4.pid.json. */
const PID_VECTORS = [
  {
    key: '0000000000000000000000000000000000000000000000000000000000000000',
    paserk: 'k4.pid.S_XQmeEwHbbvRmiyfXfHYpLGjXGzjTRSDoT1YtTakWFE',
  },
  {
    key: '707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f',
    paserk: 'k4.pid.9ShR3xc8-qVJ_di0tc9nx0IDIqbatdeM2mqLFBJsKRHs',
  },
  {
    key: '707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e90',
    paserk: 'k4.pid.-nyvbaTz8U6TQz7OZWW-iB3va31iAxIpUgzUcVQVmW9A',
  },
];

const publicPaserk = (hex: string) => `k4.public.${Buffer.from(hex, 'hex').toString('base64url')}`;
/** The default kid before k4.pid, computed here independently of the library. */
const legacyKid = (publicText: string) =>
  createHash('sha256').update(`latchkey/kid\u0000${publicText}`).digest('base64url').slice(0, 16);

const pid = suite('KeyRing: PASERK k4.pid key ids');

pid('paserkPid matches the official k4.pid test vectors', () => {
  for (const v of PID_VECTORS) assert.is(paserkPid(publicPaserk(v.key)), v.paserk);
});

pid('the default kid of a signing key and of a verification key is its k4.pid', async () => {
  const dev = await generateDevelopmentKey();
  assert.is(dev.kid, paserkPid(dev.public));
  const signing = await KeyRing.fromPaserk({ signing: dev.secret });
  assert.is(signing.signingKid, paserkPid(dev.public));
  assert.equal(signing.kids, [paserkPid(dev.public)]);
  const verifying = await KeyRing.fromPaserk({ verification: [{ key: publicPaserk(PID_VECTORS[1]!.key) }] });
  assert.equal(verifying.kids, [PID_VECTORS[1]!.paserk]);
});

pid('removing a key by its old default id removes the key and its alias', async () => {
  const a = await generateDevelopmentKey();
  const b = await generateDevelopmentKey();
  const ring = await KeyRing.fromPaserk({ signing: a.secret, verification: [{ key: b.public }] });
  assert.throws(() => ring.removeVerificationKey(legacyKid(a.public)), /signing key cannot be removed/);
  assert.ok(ring.removeVerificationKey(legacyKid(b.public)));
  assert.equal(ring.kids, [a.kid]);
  assert.not.ok(ring.removeVerificationKey(legacyKid(b.public)));
});

backendSuite('KeyRing: tokens under the pre-k4.pid default kid', (test) => {
  test('a token whose footer names the old default kid verifies while the ring holds the key', async (ctx) => {
    const dev = await generateDevelopmentKey();
    const old = legacyKid(dev.public);
    await writeSessionRecord(ctx.redis, {
      prefix: ctx.prefix,
      userId: 'alice',
      sessionId: 'sess-1',
      now: ctx.clock.now(),
    });
    // Signed as a deployment before k4.pid did: the footer carries the old default id.
    const before = new AccessTokens({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      keyRing: await KeyRing.fromPaserk({ signing: dev.secret, kid: old }),
    });
    const issued = await before.issue({ userId: 'alice', sessionId: 'sess-1' });
    const footer = JSON.parse(Buffer.from(issued.token.split('.')[3]!, 'base64url').toString());
    assert.equal(footer, { kid: old });

    const ring = await KeyRing.fromPaserk({ signing: dev.secret });
    const after = new AccessTokens({ redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, keyRing: ring });
    assert.is((await after.verify(issued.token)).ok, true);
    const fresh = await after.issue({ userId: 'alice', sessionId: 'sess-1' });
    assert.equal(JSON.parse(Buffer.from(fresh.token.split('.')[3]!, 'base64url').toString()), {
      kid: dev.kid,
    });

    // An explicit kid gets no alias: a ring that names the key itself does not answer to the old id.
    const named = await KeyRing.fromPaserk({ signing: dev.secret, kid: 'k1' });
    const namedTokens = new AccessTokens({
      redis: ctx.redis,
      clock: ctx.clock,
      prefix: ctx.prefix,
      keyRing: named,
    });
    assert.equal(await namedTokens.verify(issued.token), { ok: false, reason: 'unknown_key' });

    // Once the key leaves the ring, the alias goes with it.
    const other = await generateDevelopmentKey();
    await ring.setSigningKey({ key: other.secret });
    assert.is((await after.verify(issued.token)).ok, true);
    ring.removeVerificationKey(dev.kid);
    assert.equal(await after.verify(issued.token), { ok: false, reason: 'unknown_key' });
  });
});

pid.run();
