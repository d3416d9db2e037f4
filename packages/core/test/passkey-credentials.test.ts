import { randomBytes } from 'node:crypto';
import { type BackendContext, backendSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  InvalidInputError,
  InvalidOptionError,
  type NewPasskeyCredential,
  PasskeyCredentials,
  type PasskeyCredentialsOptions,
  type SecurityEvent,
  StoreUnavailableError,
  WebAuthnChallenges,
} from '../src/index.js';
import { rejects } from './helpers/assertions.js';

const DAY = 24 * 60 * 60_000;

function storeFor(
  ctx: BackendContext,
  extra: Partial<PasskeyCredentialsOptions> = {},
  events: SecurityEvent[] = [],
): PasskeyCredentials {
  return new PasskeyCredentials({
    redis: ctx.redis,
    clock: ctx.clock,
    prefix: ctx.prefix,
    onEvent: (e) => events.push(e),
    ...extra,
  });
}

function credential(extra: Partial<NewPasskeyCredential> = {}): NewPasskeyCredential {
  return {
    id: randomBytes(16).toString('base64url'),
    publicKey: new Uint8Array(randomBytes(77)),
    counter: 0,
    transports: ['internal', 'hybrid'],
    deviceType: 'multiDevice',
    backedUp: true,
    ...extra,
  };
}

const options = suite('PasskeyCredentials options');
const fakeRedis = { defineCommand() {} } as unknown as PasskeyCredentialsOptions['redis'];

options('rejects a broken maxPerUser with InvalidOptionError naming it', () => {
  for (const maxPerUser of [0, -1, 1.5, 101]) {
    assert.throws(
      () => new PasskeyCredentials({ redis: fakeRedis, maxPerUser }),
      (e: unknown) => e instanceof InvalidOptionError && e.message.startsWith('maxPerUser'),
    );
  }
});

options.run();

backendSuite('PasskeyCredentials.add', (test) => {
  test('records a credential and its index in two round trips; list and lookup take one', async (ctx) => {
    const events: SecurityEvent[] = [];
    const store = storeFor(ctx, {}, events);
    const cred = credential({ transports: ['usb', 'nfc', 'telepathy', 'usb'] });
    let added: Awaited<ReturnType<PasskeyCredentials['add']>> | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        added = await store.add('alice', cred);
      }),
      2,
    );
    assert.ok(added?.ok);
    let listed: Awaited<ReturnType<PasskeyCredentials['list']>> = [];
    assert.is(
      await ctx.roundTrips.measure(async () => {
        listed = await store.list('alice');
      }),
      1,
    );
    assert.equal(listed, [
      {
        id: cred.id,
        publicKey: cred.publicKey,
        counter: 0,
        transports: ['usb', 'nfc'],
        deviceType: 'multiDevice',
        backedUp: true,
        createdAt: ctx.clock.now(),
        lastUsedAt: null,
      },
    ]);
    let owner: Awaited<ReturnType<PasskeyCredentials['lookup']>> = null;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        owner = await store.lookup(cred.id);
      }),
      1,
    );
    assert.equal(owner, { userId: 'alice', publicKey: cred.publicKey });
    assert.is(events.length, 1);
    assert.is(events[0]?.type, 'passkey.added');
    let count = -1;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        count = await store.count('alice');
      }),
      1,
    );
    assert.is(count, 1);
    assert.is(await store.count('bob'), 0);
  });

  test('refuses a credential id the user has, or another user has, changing nothing', async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential();
    assert.ok((await store.add('alice', cred)).ok);
    assert.equal(await store.add('alice', { ...cred, counter: 5 }), { ok: false, reason: 'exists' });
    assert.equal(await store.add('mallory', credential({ id: cred.id })), { ok: false, reason: 'taken' });
    assert.equal(await store.list('mallory'), []);
    assert.equal((await store.lookup(cred.id))?.userId, 'alice');
    assert.is((await store.list('alice'))[0]?.counter, 0);
  });

  test('caps the credentials per user', async (ctx) => {
    const store = storeFor(ctx, { maxPerUser: 2 });
    assert.ok((await store.add('alice', credential())).ok);
    assert.ok((await store.add('alice', credential())).ok);
    const third = credential();
    assert.equal(await store.add('alice', third), { ok: false, reason: 'limit' });
    assert.is(await store.lookup(third.id), null);
    assert.ok((await store.add('bob', third)).ok);
  });

  test('refuses malformed credentials with InvalidInputError, storing nothing', async (ctx) => {
    const store = storeFor(ctx);
    const bad: Array<Partial<NewPasskeyCredential> | null> = [
      { id: '' },
      { id: 'not base64url!' },
      { id: randomBytes(1024).toString('base64url') },
      { id: 'AB' }, // not canonical: the trailing bits are not zero
      { id: 7 as never },
      { publicKey: new Uint8Array(0) },
      { publicKey: new Uint8Array(2049) },
      { publicKey: 'abc' as never },
      { counter: -1 },
      { counter: 2 ** 32 },
      { counter: 1.5 },
      { transports: 'usb' as never },
      { deviceType: 'cloud' as never },
      { backedUp: 'yes' as never },
    ];
    for (const extra of bad) {
      await rejects(
        store.add('alice', extra === null ? (null as never) : credential(extra)),
        (e) => e instanceof InvalidInputError,
        `InvalidInputError for ${JSON.stringify(extra)}`,
      );
    }
    await rejects(store.add('', credential()), (e) => e instanceof InvalidInputError, 'empty user id');
    await rejects(store.add('\uD800', credential()), (e) => e instanceof InvalidInputError, 'lone surrogate');
    assert.equal(await ctx.keys(), []);
  });

  test("keeps a user's credentials under the user's tag and the index under the id's digest", async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential();
    await store.add('user {with} "odd" chars: é', cred);
    const keys = await ctx.keys();
    assert.is(keys.length, 3);
    const tagged = keys.map((k) => /\{([^}]+)\}/.exec(k)?.[1]);
    assert.is(new Set(tagged).size, 2);
    for (const key of keys) {
      assert.not.ok(key.includes(cred.id), 'no key holds the credential id itself');
      assert.match(key, /:(pk|pkx|pkc):\{[A-Za-z0-9_-]{43}\}(:[A-Za-z0-9_-]{43})?$/);
    }
  });
});

backendSuite('PasskeyCredentials.lookup', (test) => {
  test('an unknown or malformed id is null; a malformed one costs no round trip', async (ctx) => {
    const store = storeFor(ctx);
    assert.is(await store.lookup(randomBytes(32).toString('base64url')), null);
    ctx.roundTrips.reset();
    for (const id of ['', '!!', 'A'.repeat(10 * 1024), 'AB']) assert.is(await store.lookup(id), null);
    assert.is(ctx.roundTrips.count, 0);
    await rejects(store.lookup(null as never), (e) => e instanceof InvalidInputError, 'non-string id');
  });
});

backendSuite('PasskeyCredentials.recordUse', (test) => {
  test('moves the counter forward and sets lastUsedAt in one round trip', async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential({ counter: 3, deviceType: 'singleDevice', backedUp: false });
    await store.add('alice', cred);
    ctx.clock.advance(1000);
    let used: Awaited<ReturnType<PasskeyCredentials['recordUse']>> | undefined;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        used = await store.recordUse('alice', cred.id, 4);
      }),
      1,
    );
    assert.equal(used, { ok: true, deviceType: 'singleDevice', backedUp: false });
    const [listed] = await store.list('alice');
    assert.is(listed?.counter, 4);
    assert.is(listed?.lastUsedAt, ctx.clock.now());
  });

  test('refuses a counter that does not move forward and emits a security event', async (ctx) => {
    const events: SecurityEvent[] = [];
    const store = storeFor(ctx, {}, events);
    const cred = credential({ counter: 10 });
    await store.add('alice', cred);
    for (const counter of [10, 9, 0]) {
      assert.equal(await store.recordUse('alice', cred.id, counter), {
        ok: false,
        reason: 'counter_regressed',
      });
    }
    const regressed = events.filter((e) => e.type === 'passkey.counter-regressed');
    assert.is(regressed.length, 3);
    assert.equal(
      regressed.map((e) =>
        e.type === 'passkey.counter-regressed' ? [e.storedCounter, e.presentedCounter] : [],
      ),
      [
        [10, 10],
        [10, 9],
        [10, 0],
      ],
    );
    const [listed] = await store.list('alice');
    assert.is(listed?.counter, 10);
    assert.is(listed?.lastUsedAt, null);
  });

  test('an authenticator without a counter (always 0) is accepted every time', async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential({ counter: 0 });
    await store.add('alice', cred);
    for (let i = 0; i < 3; i++) assert.ok((await store.recordUse('alice', cred.id, 0)).ok);
    // Once it shows a counter, it must keep moving forward.
    assert.ok((await store.recordUse('alice', cred.id, 1)).ok);
    assert.equal(await store.recordUse('alice', cred.id, 0), { ok: false, reason: 'counter_regressed' });
  });

  test('compares counters past 2^31 exactly', async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential({ counter: 2 ** 32 - 3 });
    await store.add('alice', cred);
    assert.equal(await store.recordUse('alice', cred.id, 2 ** 32 - 3), {
      ok: false,
      reason: 'counter_regressed',
    });
    assert.ok((await store.recordUse('alice', cred.id, 2 ** 32 - 2)).ok);
    assert.is((await store.list('alice'))[0]?.counter, 2 ** 32 - 2);
    assert.ok((await store.recordUse('alice', cred.id, 2 ** 32 - 1)).ok);
  });

  test('parallel uses with one counter value: exactly one is recorded', async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential({ counter: 5 });
    await store.add('alice', cred);
    const results = await Promise.all(Array.from({ length: 20 }, () => store.recordUse('alice', cred.id, 6)));
    assert.is(results.filter((r) => r.ok).length, 1);
  });

  test("another user's or a removed credential is unknown", async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential();
    await store.add('alice', cred);
    assert.equal(await store.recordUse('bob', cred.id, 1), { ok: false, reason: 'unknown' });
    await store.remove('alice', cred.id);
    assert.equal(await store.recordUse('alice', cred.id, 1), { ok: false, reason: 'unknown' });
    await rejects(
      store.recordUse('alice', cred.id, -1),
      (e) => e instanceof InvalidInputError,
      'bad counter',
    );
    await rejects(store.recordUse('alice', '!!', 1), (e) => e instanceof InvalidInputError, 'bad id');
  });
});

backendSuite('PasskeyCredentials.remove', (test) => {
  test('removes the credential and its index in two round trips; nothing is left', async (ctx) => {
    const events: SecurityEvent[] = [];
    const store = storeFor(ctx, {}, events);
    const a = credential();
    const b = credential();
    await store.add('alice', a);
    await store.add('alice', b);
    let removed = false;
    assert.is(
      await ctx.roundTrips.measure(async () => {
        removed = await store.remove('alice', a.id);
      }),
      2,
    );
    assert.ok(removed);
    assert.is(await store.lookup(a.id), null);
    assert.equal(
      (await store.list('alice')).map((c) => c.id),
      [b.id],
    );
    assert.not.ok(await store.remove('alice', a.id));
    assert.ok(await store.remove('alice', b.id));
    assert.equal(await ctx.keys(), []);
    assert.equal(
      events.map((e) => e.type),
      ['passkey.added', 'passkey.added', 'passkey.removed', 'passkey.removed'],
    );
  });

  test("cannot remove another user's credential or its index", async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential();
    await store.add('alice', cred);
    assert.not.ok(await store.remove('mallory', cred.id));
    assert.equal((await store.lookup(cred.id))?.userId, 'alice');
    assert.is((await store.list('alice')).length, 1);
    assert.not.ok(await store.remove('alice', 'A'.repeat(10 * 1024)));
  });

  test('credentials live until removed: they are the only keys without a TTL', async (ctx) => {
    const store = storeFor(ctx);
    const cred = credential();
    await store.add('alice', cred);
    await ctx.advance(400 * DAY);
    assert.is((await store.list('alice')).length, 1);
    assert.is((await ctx.keysWithoutTtl()).length, 3);
    await store.remove('alice', cred.id);
    assert.equal(await ctx.keys(), []);
  });
});

// A lone redis-server has no replica to acknowledge: with durability on, exactly the calls that revoke
// (consume a challenge, move a counter, remove a credential) fail closed; the others go through.
backendSuite(
  'passkeys with durability and no replica',
  (test) => {
    test('consume, recordUse and remove fail closed; issue, add, lookup and list work', async (ctx) => {
      const durability = { replicas: 1, timeoutMs: 100 } as const;
      const base = { redis: ctx.redis, clock: ctx.clock, prefix: ctx.prefix, durability };
      const challenges = new WebAuthnChallenges(base);
      const store = new PasskeyCredentials(base);
      const { challenge } = await challenges.issue({ purpose: 'registration', owner: 'sid' });
      const cred = credential();
      assert.ok((await store.add('alice', cred)).ok);
      assert.is((await store.lookup(cred.id))?.userId, 'alice');
      assert.is((await store.list('alice')).length, 1);
      const unavailable = (e: unknown) => e instanceof StoreUnavailableError;
      await rejects(
        challenges.consume({ purpose: 'registration', owner: 'sid', challenge }),
        unavailable,
        'consume to fail closed',
      );
      await rejects(store.recordUse('alice', cred.id, 1), unavailable, 'recordUse to fail closed');
      await rejects(store.remove('alice', cred.id), unavailable, 'remove to fail closed');
    });
  },
  { backends: ['redis'] },
);
