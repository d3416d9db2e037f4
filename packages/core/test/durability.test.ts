// Revocations that survive a failover (issue 17). With `durability` on, every revoking call returns only
// after a replica acknowledged it; these tests SIGKILL the master that took the writes right after the
// acknowledgements, promote its replica, and probe every revoked credential. They run on a replicated
// Cluster (3 masters + 3 replicas) and on Sentinel (master, replica, three Sentinels), both started once
// for this process, only when this file runs.
import {
  hasRedisServer,
  type RedisClusterHandle,
  type RedisSentinelHandle,
  rawCommand,
  startRedisCluster,
  startRedisSentinel,
} from '@latchkey/testing';
import { closeClient, realRedisSuite, scanKeys } from '@latchkey/testing/backends';
import { Cluster, Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AccessTokens,
  generateDevelopmentKey,
  InvalidOptionError,
  KeyRing,
  OneTimeCodes,
  RefreshTokenReusedError,
  RefreshTokens,
  RevocationList,
  type SecurityEvent,
  ServerSecret,
  SessionStore,
  StaleAuthenticationError,
  StoreFailedError,
  type StoreOptions,
  StoreUnavailableError,
  userTag,
} from '../src/index.js';
import { eventually } from './helpers/assertions.js';

const SECRET = ServerSecret.generate();
const dev = await generateDevelopmentKey();
const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });
// Generous where an acknowledgement is expected (a loaded machine can take a while to replicate), short
// where the frozen-replica test waits for the timeout.
const DURABLE = { replicas: 1, timeoutMs: 5000 } as const;
const FAIL_FAST = { replicas: 1, timeoutMs: 250 } as const;
const COMMAND_TIMEOUT_MS = 1000;

const options = suite('durability options');
options(
  'refuses replicas < 1, a zero or fractional timeout and a non-boolean fsync, naming the option',
  () => {
    const redis = new Redis({ lazyConnect: true });
    for (const [durability, name] of [
      [{ replicas: 0 }, 'durability.replicas'],
      [{ replicas: 1.5 }, 'durability.replicas'],
      [{ replicas: 1, timeoutMs: 0 }, 'durability.timeoutMs'],
      [{ replicas: 1, timeoutMs: 2.5 }, 'durability.timeoutMs'],
      [{ replicas: 1, fsync: 'yes' }, 'durability.fsync'],
      ['on', 'durability'],
    ] as const) {
      assert.throws(
        () => new SessionStore({ redis, durability: durability as never }),
        (e: unknown) => e instanceof InvalidOptionError && e.message.includes(name),
      );
    }
    redis.disconnect();
  },
);
options.run();

/** One deployment to test on: how to connect, and how to find, kill and replace the master of a key. */
interface Deployment {
  readonly kind: 'cluster' | 'sentinel';
  connect(): Redis | Cluster;
  masterOf(key: string): Promise<number>;
  replicaOf(master: number): Promise<number>;
  /** Every replica of the deployment (all masters' on a Cluster: a frozen-replica test must leave none acknowledging). */
  replicas(): Promise<number[]>;
  kill(port: number): void;
  awaitPromotion(port: number): Promise<{ port: number; ms: number }>;
  restart(port: number): Promise<void>;
  pause(port: number): void;
  resume(port: number): void;
}

// Started once, when this file is loaded (uvu loads every file before running any suite, so the ~5 s
// of forming overlap the other suites of the folder).
let clusterStart: Promise<RedisClusterHandle> | null = null;
let sentinelStart: Promise<RedisSentinelHandle> | null = null;
if (hasRedisServer()) {
  clusterStart = startRedisCluster({ replicas: 1 });
  // One after the other: two port searches at once could pick the same free port.
  sentinelStart = clusterStart.then(
    () => startRedisSentinel(),
    () => startRedisSentinel(),
  );
  // A failed start is reported by the suite that awaits it.
  clusterStart.catch(() => undefined);
  sentinelStart.catch(() => undefined);
}

async function clusterDeployment(): Promise<Deployment> {
  if (clusterStart === null) throw new Error('redis-server is not on PATH');
  const h = await clusterStart;
  return {
    kind: 'cluster',
    connect: () => {
      const client = new Cluster(
        h.nodes.map((n) => ({ ...n })),
        { redisOptions: { maxRetriesPerRequest: 1 } },
      );
      client.on('error', () => undefined);
      client.on('node error', () => undefined);
      return client;
    },
    masterOf: (key) => h.masterOf(key),
    replicaOf: async (port) => {
      const [replica] = await h.replicasOf(port);
      if (replica === undefined) throw new Error(`no replica of ${port}`);
      return replica;
    },
    replicas: async () => {
      const all = new Set<number>();
      for (const node of h.nodes) for (const replica of await h.replicasOf(node.port)) all.add(replica);
      if (all.size === 0) throw new Error('no replicas');
      return [...all];
    },
    kill: (port) => h.kill(port),
    awaitPromotion: (port) => h.awaitPromotion(port),
    restart: (port) => h.restart(port),
    pause: (port) => h.pause(port),
    resume: (port) => h.resume(port),
  };
}

async function sentinelDeployment(): Promise<Deployment> {
  if (sentinelStart === null) throw new Error('redis-server is not on PATH');
  const h = await sentinelStart;
  return {
    kind: 'sentinel',
    connect: () => {
      const client = new Redis({
        sentinels: h.sentinels.map((s) => ({ ...s })),
        name: h.name,
        maxRetriesPerRequest: 1,
      });
      client.on('error', () => undefined);
      return client;
    },
    masterOf: () => h.master(),
    replicaOf: () => h.replica(),
    replicas: async () => [await h.replica()],
    kill: (port) => h.kill(port),
    awaitPromotion: (port) => h.awaitPromotion(port),
    restart: (port) => h.restart(port),
    pause: (port) => h.pause(port),
    resume: (port) => h.resume(port),
  };
}

async function ready(client: Redis | Cluster): Promise<void> {
  await eventually(async () => (await client.ping()) === 'PONG', 'the client is connected', 20_000);
}

/** Every store, on one client and prefix, with durability as given. */
function stores(redis: Redis | Cluster, prefix: string, durability: StoreOptions['durability']) {
  const events: SecurityEvent[] = [];
  const common = {
    redis,
    prefix,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    onEvent: (e: SecurityEvent) => events.push(e),
    ...(durability === undefined ? {} : { durability }),
  };
  return {
    events,
    sessions: new SessionStore(common),
    refresh: new RefreshTokens({ ...common, secret: SECRET }),
    access: new AccessTokens({ ...common, keyRing, cache: false }),
    revocations: new RevocationList(common),
    codes: new OneTimeCodes({ ...common, secret: SECRET }),
  };
}

type Stores = ReturnType<typeof stores>;

/** A user id whose tag lands on the master on `port` (by trying ids). */
async function userOn(d: Deployment, port: number, prefix: string, name: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const id = `${name}-${i}`;
    if ((await d.masterOf(`${prefix}:x:{${userTag(id)}}`)) === port) return id;
  }
  throw new Error('no user id lands on that master');
}

/** A code subject whose code key lands on the master on `port`: issues codes until one does. */
async function codeOn(s: Stores, client: Redis | Cluster, d: Deployment, port: number, prefix: string) {
  for (let i = 0; i < 60; i++) {
    const subject = `subject-${i}@example.com`;
    const before = new Set(await scanKeys(client, prefix));
    const issued = await s.codes.issue({ subject, purpose: 'reset' });
    if (!issued.ok) continue;
    const fresh = (await scanKeys(client, prefix)).filter((k) => !before.has(k) && k.includes(':c:'));
    const key = fresh[0];
    if (key !== undefined && (await d.masterOf(key)) === port) return { subject, code: issued.code };
  }
  throw new Error('no code subject lands on that master');
}

/**
 * Creates one credential per revoking kind, all on the master on `port`, through `s`; `revoke()`
 * performs every revocation concurrently through `r` (`s` by default) and resolves when all were
 * acknowledged; `check()` asserts every revoked credential is refused (and the kept ones still work) —
 * against whatever master serves them now.
 */
async function scenario(
  s: Stores,
  client: Redis | Cluster,
  d: Deployment,
  port: number,
  prefix: string,
  r: Stores = s,
) {
  const alice = await userOn(d, port, prefix, 'alice');
  const bob = await userOn(d, port, prefix, 'bob');
  const carol = await userOn(d, port, prefix, 'carol');
  const destroyed = await s.sessions.create(alice, {});
  const revoked = await s.sessions.create(alice, {});
  const reused = await s.sessions.create(alice, {});
  const reusedFirst = await s.refresh.issue(reused.session);
  assert.ok(reusedFirst);
  const second = await s.refresh.rotate(reusedFirst);
  assert.ok(second);
  // Two rotations old: reuse even inside the grace window.
  const rotated = await s.refresh.rotate(second.token);
  assert.ok(rotated);
  const refreshRevoked = await s.sessions.create(alice, {});
  const refreshToken = await s.refresh.issue(refreshRevoked.session);
  assert.ok(refreshToken);
  const jtiHolder = await s.sessions.create(alice, {});
  const access = await s.access.issue({ userId: alice, sessionId: jtiHolder.session.id });
  const bobSessions = [await s.sessions.create(bob, {}), await s.sessions.create(bob, {})];
  const bobAccess = await s.access.issue({ userId: bob, sessionId: bobSessions[0]!.session.id });
  const carolKept = await s.sessions.create(carol, {});
  const carolOther = await s.sessions.create(carol, {});
  const code = await codeOn(s, client, d, port, prefix);
  const beforeMark = Date.now() - 1;
  /** One call of each revoking kind, concurrently, unchecked. */
  const calls = (): Array<Promise<unknown>> => [
    r.sessions.destroy(destroyed.token),
    r.sessions.revoke(alice, revoked.session.id),
    r.refresh.rotate(reusedFirst), // reuse: revokes the session, then throws RefreshTokenReusedError
    r.refresh.revoke(refreshToken),
    r.access.revoke(access.token),
    r.sessions.revokeAllForUser(bob), // logout-all / reset: sessions and the revoke-before mark
    r.sessions.revokeAllForUser(carol, { except: carolKept.session.id }), // password change
    r.codes.verify({ ...code, purpose: 'reset' }), // consumption
  ];
  return {
    calls,
    async revoke(): Promise<void> {
      const results = await Promise.allSettled(calls());
      const reasons = results.map((r) => (r.status === 'rejected' ? r.reason : null));
      assert.ok(reasons[2] instanceof RefreshTokenReusedError, `reuse detected (${String(reasons[2])})`);
      reasons.splice(2, 1);
      assert.equal(reasons.filter((r) => r !== null).map(String), [], 'every revocation succeeded');
      const verified = results[7];
      assert.ok(
        verified?.status === 'fulfilled' && (verified.value as { ok: boolean }).ok,
        'the code was valid',
      );
    },
    /** `p`: stores without durability (a probe that consumes must not need a replica the failover took). */
    async check(p: Stores): Promise<string[]> {
      const back: string[] = [];
      if ((await p.sessions.get(destroyed.token)) !== null) back.push('destroyed session');
      if ((await p.sessions.get(revoked.token)) !== null) back.push('revoked session');
      if ((await p.sessions.get(reused.token)) !== null) back.push('session revoked by refresh reuse');
      if ((await p.refresh.rotate(rotated.token).catch(() => 'reuse')) !== null) back.push('reused refresh');
      if ((await p.sessions.get(refreshRevoked.token)) !== null)
        back.push('session of a revoked refresh token');
      if ((await p.refresh.rotate(refreshToken).catch(() => 'reuse')) !== null) back.push('revoked refresh');
      if ((await p.access.verify(access.token)).ok) back.push('revoked access token');
      for (const b of bobSessions)
        if ((await p.sessions.get(b.token)) !== null) back.push('logout-all session');
      if ((await p.access.verify(bobAccess.token)).ok) back.push('access token after logout-all');
      const stale = await p.sessions.create(bob, {}, { authenticatedAt: beforeMark }).then(
        () => 'created',
        (e: unknown) => (e instanceof StaleAuthenticationError ? 'refused' : String(e)),
      );
      if (stale !== 'refused') back.push(`login older than the mark (${stale})`);
      if ((await p.sessions.get(carolOther.token)) !== null) back.push('session ended by a password change');
      assert.ok(await p.sessions.get(carolKept.token), 'the session that changed the password lives');
      if ((await p.codes.verify({ ...code, purpose: 'reset' })).ok) back.push('consumed code');
      return back;
    },
  };
}

let prefixCounter = 0;
const freshPrefix = (kind: string) => `lkd:${process.pid}.${kind}.${++prefixCounter}`;

/** Retries `read` while the client is still finding the new master (unavailable errors), up to 20 s. */
async function afterRecovery<T>(read: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + 20_000;
  for (;;) {
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const REVOKING_EVENTS = new Set([
  'session.revoked',
  'session.revoked-all',
  'access-token.revoked',
  'refresh.reuse-detected',
]);

for (const [kind, deploy] of [
  ['replicated Cluster', clusterDeployment],
  ['Sentinel', sentinelDeployment],
] as const) {
  realRedisSuite(`durability on a ${kind}`, (test) => {
    test('every revoked credential stays refused after its master is SIGKILLed right after the acknowledgements', async () => {
      const d = await deploy();
      const client = d.connect();
      try {
        await ready(client);
        const prefix = freshPrefix('on');
        const port = await d.masterOf(`${prefix}:x:{${userTag('alice-0')}}`);
        const s = stores(client, prefix, DURABLE);
        const sc = await scenario(s, client, d, port, prefix);
        await sc.revoke().then(() => d.kill(port)); // the kill follows the last acknowledgement at once
        const promoted = await d.awaitPromotion(port);
        try {
          assert.equal(
            await afterRecovery(() => sc.check(stores(client, prefix, undefined))),
            [],
            `came back after promotion (${promoted.ms} ms)`,
          );
        } finally {
          await d.restart(port);
        }
      } finally {
        await closeClient(client);
      }
    });

    test('with the replica frozen, every revoking call fails closed within its timeout and claims nothing', async () => {
      const d = await deploy();
      const client = d.connect();
      try {
        await ready(client);
        const prefix = freshPrefix('closed');
        const port = await d.masterOf(`${prefix}:x:{${userTag('alice-0')}}`);
        const s = stores(client, prefix, FAIL_FAST);
        const sc = await scenario(stores(client, prefix, DURABLE), client, d, port, prefix, s);
        const replicas = await d.replicas();
        const started = performance.now();
        for (const replica of replicas) d.pause(replica);
        let outcomes: Array<{ ok: boolean; error: unknown; ms: number }>;
        try {
          const timed = (p: Promise<unknown>) =>
            p.then(
              () => ({ ok: true, error: null, ms: performance.now() - started }),
              (error: unknown) => ({ ok: false, error, ms: performance.now() - started }),
            );
          s.events.length = 0;
          outcomes = await Promise.all(sc.calls().map(timed));
        } finally {
          for (const replica of replicas) d.resume(replica);
        }
        const bound = COMMAND_TIMEOUT_MS + FAIL_FAST.timeoutMs + 400;
        for (const outcome of outcomes) {
          assert.not.ok(outcome.ok, 'a revoking call reported success without an acknowledgement');
          const error = outcome.error instanceof AggregateError ? outcome.error.errors[0] : outcome.error;
          assert.ok(
            error instanceof StoreUnavailableError ||
              (error instanceof assert.Assertion && String(error.message).includes('reuse')),
            `expected StoreUnavailableError, got ${String(error)}`,
          );
          assert.ok(outcome.ms <= bound, `answered after ${Math.round(outcome.ms)} ms (bound ${bound})`);
        }
        assert.equal(
          s.events.filter((e) => REVOKING_EVENTS.has(e.type)).map((e) => e.type),
          [],
          'no revocation event was emitted',
        );
      } finally {
        await closeClient(client);
      }
    });

    test('fsync (WAITAOF) refuses plainly where the server cannot do it, and nothing claims success', async () => {
      const d = await deploy();
      const client = d.connect();
      try {
        await ready(client);
        const prefix = freshPrefix('fsync');
        const info = String(
          await (client instanceof Cluster ? client.nodes('master')[0] : client)?.info('server'),
        );
        const [major = 0, minor = 0] = (/redis_version:(\d+)\.(\d+)/.exec(info) ?? []).slice(1).map(Number);
        const s = stores(client, prefix, { ...DURABLE, fsync: true });
        const { token } = await s.sessions.create('grace', {});
        const error = await s.sessions.destroy(token).then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(error instanceof StoreFailedError, `expected StoreFailedError, got ${String(error)}`);
        if (major < 7 || (major === 7 && minor < 2)) {
          assert.match(error.message, /7\.2/, 'says WAITAOF needs Redis 7.2');
        }
        assert.equal(
          s.events.filter((e) => REVOKING_EVENTS.has(e.type)),
          [],
        );
      } finally {
        await closeClient(client);
      }
    });

    test('without durability the window is real: a revocation the replica never got is undone by the failover', async () => {
      const d = await deploy();
      const client = d.connect();
      try {
        await ready(client);
        const prefix = freshPrefix('off');
        const port = await d.masterOf(`${prefix}:x:{${userTag('alice-0')}}`);
        const s = stores(client, prefix, undefined);
        const user = await userOn(d, port, prefix, 'frank');
        const { token } = await s.sessions.create(user, {});
        await client.wait?.(1, 1000); // the session itself reached the replica
        const replica = await d.replicaOf(port);
        d.pause(replica);
        await rawCommand(port, 'CLIENT KILL TYPE replica'); // what it has not received, it never will
        assert.ok(await s.sessions.destroy(token), 'the logout reported success');
        d.kill(port);
        d.resume(replica);
        await d.awaitPromotion(port);
        try {
          const back = await afterRecovery(() => s.sessions.get(token));
          assert.ok(back, 'the logged-out session is accepted again (the documented window)');
        } finally {
          await d.restart(port);
        }
      } finally {
        await closeClient(client);
      }
    });
  });
}

if (clusterStart !== null || sentinelStart !== null) {
  // Stops the deployments once every suite of the process has run (uvu has no global after hook).
  process.once('beforeExit', () => {
    void clusterStart?.then((h) => h.stop());
    void sentinelStart?.then((h) => h.stop());
  });
}
