// The `latchkey` command run as a process against the harness's real Redis and Cluster. The fake
// (ioredis-mock) lives inside one process, so a CLI in another process cannot reach it: these tests
// need a real server, and are skipped loudly without one (failed with LATCHKEY_REQUIRE_REDIS=1).
import { randomBytes } from 'node:crypto';
import {
  type RedisSentinelHandle,
  type RedisServerHandle,
  startRedisSentinel,
  startRedisServer,
} from '@latchkey/testing';
import {
  closeClient,
  openBackendClient,
  realRedisSuite,
  sharedRedisCluster,
  sharedRedisServer,
} from '@latchkey/testing/backends';
import { type Cluster, Redis } from 'ioredis';
import * as assert from 'uvu/assert';
import { KeySpace, SessionStore, StaleAuthenticationError, userTag } from '../src/index.js';
import { runCli, SHIFT_CLOCK } from './helpers/cli.js';

const prefix = (): string => `clitest${randomBytes(4).toString('hex')}`;

realRedisSuite('latchkey CLI: sessions and tokens', (test) => {
  let redis: Redis | Cluster;
  let url: string;
  let clusterNodes: string;
  let cluster: Redis | Cluster;

  test.before(async () => {
    redis = await openBackendClient('redis');
    url = `redis://127.0.0.1:${(await sharedRedisServer()).port}`;
    cluster = await openBackendClient('cluster');
    clusterNodes = (await sharedRedisCluster()).nodes.map((n) => `${n.host}:${n.port}`).join(',');
  });
  test.after(async () => {
    await closeClient(redis);
    await closeClient(cluster);
  });

  test('sessions list shows the live sessions newest first, never their data, control characters masked', async () => {
    const p = prefix();
    const store = new SessionStore({ redis, prefix: p });
    const older = await store.create(
      'alice',
      { secretNote: 'NOT-FOR-OPERATORS' },
      {
        ip: '203.0.113.7',
        userAgent: 'Evil\u001b[2JAgent/1.0',
        amr: ['pwd', 'otp', 'mfa'],
      },
    );
    await new Promise((resolve) => setImmediate(resolve));
    const newer = await store.create('alice', {}, {});
    await store.create('bob', {}, {});
    const [asJson, asText] = await Promise.all([
      runCli(['sessions', 'list', 'alice', '--redis', url, '--prefix', p, '--json']),
      runCli(['sessions', 'list', 'alice', '--redis', url, '--prefix', p]),
    ]);
    assert.is(asJson.code, 0, asJson.stderr);
    const listed = JSON.parse(asJson.stdout) as { userId: string; sessions: Array<Record<string, unknown>> };
    assert.is(listed.userId, 'alice');
    const ids = listed.sessions.map((s) => s['id']);
    assert.equal(new Set(ids), new Set([older.session.id, newer.session.id]));
    const first = listed.sessions.find((s) => s['id'] === older.session.id) ?? {};
    assert.is(first['ip'], '203.0.113.7');
    assert.is(first['userAgent'], 'Evil\u001b[2JAgent/1.0');
    assert.equal(first['amr'], ['pwd', 'otp', 'mfa']);
    assert.is(first['createdAt'], new Date(older.session.createdAt).toISOString());
    const createdAt = listed.sessions.map((s) => Date.parse(String(s['createdAt'])));
    assert.equal(
      createdAt,
      [...createdAt].sort((a, b) => b - a),
      'newest first',
    );
    assert.is(asText.code, 0, asText.stderr);
    for (const output of [asJson.stdout, asText.stdout]) {
      assert.not.ok(output.includes('NOT-FOR-OPERATORS'), 'session data was printed');
    }
    assert.match(asText.stdout, /2 live sessions of user "alice"/);
    assert.match(asText.stdout, new RegExp(older.session.id));
    assert.match(asText.stdout, /Evil\?\[2JAgent\/1\.0/);
    assert.not.ok(asText.stdout.includes('\u001b'), 'an escape sequence reached the terminal');
  });

  test('sessions revoke ends that session only; a second revoke finds nothing and exits 1', async () => {
    const p = prefix();
    const store = new SessionStore({ redis, prefix: p });
    const target = await store.create('carol', {});
    const kept = await store.create('carol', {});
    const run = await runCli([
      'sessions',
      'revoke',
      'carol',
      target.session.id,
      '--redis',
      url,
      '--prefix',
      p,
    ]);
    assert.is(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`revoked session ${target.session.id}`));
    assert.is(await store.get(target.token), null);
    assert.ok(await store.get(kept.token));
    const again = await runCli([
      'sessions',
      'revoke',
      'carol',
      target.session.id,
      '--redis',
      url,
      '--prefix',
      p,
      '--json',
    ]);
    assert.is(again.code, 1);
    assert.equal(JSON.parse(again.stdout), { userId: 'carol', sessionId: target.session.id, revoked: false });
  });

  test('sessions revoke --all ends every session and sets the mark that refuses older logins', async () => {
    const p = prefix();
    const store = new SessionStore({ redis, prefix: p });
    const sessions = await Promise.all([store.create('dave', {}), store.create('dave', {})]);
    const other = await store.create('erin', {});
    const checkedBefore = Date.now();
    const run = await runCli([
      'sessions',
      'revoke',
      'dave',
      '--all',
      '--redis',
      url,
      '--prefix',
      p,
      '--json',
    ]);
    assert.is(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { revokedSessions: number; revokedBeforeMs: number };
    assert.is(result.revokedSessions, 2);
    assert.ok(result.revokedBeforeMs > checkedBefore);
    for (const s of sessions) assert.is(await store.get(s.token), null);
    assert.ok(await store.get(other.token), "another user's session survives");
    await store.create('dave', {}, { authenticatedAt: checkedBefore }).then(
      () => assert.unreachable('a login checked before the revocation must be refused'),
      (e: unknown) => assert.instance(e, StaleAuthenticationError),
    );
  });

  test('tokens revoke-before writes a mark that outlives SESSION_ABSOLUTE_TTL_SECONDS, on a Cluster too', async () => {
    const p = prefix();
    const store = new SessionStore({ redis: cluster, prefix: p, absoluteTimeoutMs: 3 * 86_400_000 });
    const { token } = await store.create('frank', {}, { absoluteTimeoutMs: 3 * 86_400_000 });
    const run = await runCli(['tokens', 'revoke-before', 'frank', '--cluster', clusterNodes, '--prefix', p], {
      env: { SESSION_ABSOLUTE_TTL_SECONDS: String(3 * 86_400) },
    });
    assert.is(run.code, 0, run.stderr);
    assert.match(run.stdout, /revoked 1 session with their refresh and access tokens/);
    assert.is(await store.get(token), null);
    const ttl = await cluster.pttl(new KeySpace(p).revokeBefore(userTag('frank')));
    assert.ok(ttl > 3 * 86_400_000, `the mark lives ${ttl} ms, less than the sessions`);
  });

  test('sessions list works on a Cluster (the stores route by hash tag)', async () => {
    const p = prefix();
    const store = new SessionStore({ redis: cluster, prefix: p });
    const { session } = await store.create('grace', {});
    const run = await runCli([
      'sessions',
      'list',
      'grace',
      '--cluster',
      clusterNodes,
      '--prefix',
      p,
      '--json',
    ]);
    assert.is(run.code, 0, run.stderr);
    assert.equal(
      (JSON.parse(run.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id),
      [session.id],
    );
  });
});

realRedisSuite('latchkey CLI: stats', (test) => {
  let redis: Redis | Cluster;
  let url: string;

  test.before(async () => {
    redis = await openBackendClient('redis');
    url = `redis://127.0.0.1:${(await sharedRedisServer()).port}`;
  });
  test.after(async () => closeClient(redis));

  test('stats counts keys, bytes and keys without TTL per kind under the prefix only', async () => {
    const p = prefix();
    const store = new SessionStore({ redis, prefix: p });
    await store.create('u1', {});
    await store.create('u1', {});
    await store.create('u2', {});
    await redis.set(`${p}:app:u:{x}`, 'a user record without TTL');
    await redis.set(`${p}x:s:{elsewhere}:1`, 'another prefix', 'PX', 60_000);
    const run = await runCli(['stats', '--redis', url, '--prefix', p, '--json']);
    assert.is(run.code, 0, run.stderr);
    const stats = JSON.parse(run.stdout) as {
      truncated: boolean;
      total: { keys: number; withoutTtl: number };
      kinds: Record<string, { keys: number; bytes: number; withoutTtl: number; holds?: string }>;
    };
    assert.is(stats.truncated, false);
    assert.is(stats.kinds['s']?.keys, 3);
    assert.is(stats.kinds['s']?.holds, 'sessions');
    assert.ok((stats.kinds['s']?.bytes ?? 0) > 0);
    assert.is(stats.kinds['ix']?.keys, 2);
    assert.equal(stats.kinds['app:u'], { keys: 1, bytes: stats.kinds['app:u']?.bytes ?? -1, withoutTtl: 1 });
    assert.is(stats.total.keys, 6);
    assert.is(stats.total.withoutTtl, 1);
  });

  test('stats scans every master of a Cluster', async () => {
    const cluster = await openBackendClient('cluster');
    try {
      const p = prefix();
      const store = new SessionStore({ redis: cluster, prefix: p });
      // Ten users spread over the three masters' slots.
      for (let i = 0; i < 10; i++) await store.create(`user-${i}`, {});
      const nodes = (await sharedRedisCluster()).nodes.map((n) => `${n.host}:${n.port}`).join(',');
      const run = await runCli(['stats', '--cluster', nodes, '--prefix', p, '--json']);
      assert.is(run.code, 0, run.stderr);
      const stats = JSON.parse(run.stdout) as { nodes: number; kinds: Record<string, { keys: number }> };
      assert.is(stats.nodes, 3);
      assert.is(stats.kinds['s']?.keys, 10);
      assert.is(stats.kinds['ix']?.keys, 10);
    } finally {
      await closeClient(cluster);
    }
  });

  test('stats stops at --max-keys, says so, and reports progress on stderr past 10,000 keys', async () => {
    const p = prefix();
    const pipeline = redis.pipeline();
    for (let i = 0; i < 10_500; i++) pipeline.set(`${p}:rj:{t${i % 7}}:${i}`, '1', 'PX', 120_000);
    await pipeline.exec();
    const [full, bounded] = await Promise.all([
      runCli(['stats', '--redis', url, '--prefix', p, '--json']),
      runCli(['stats', '--redis', url, '--prefix', p, '--max-keys', '100']),
    ]);
    assert.is(full.code, 0, full.stderr);
    const stats = JSON.parse(full.stdout) as { truncated: boolean; total: { keys: number } };
    assert.is(stats.total.keys, 10_500);
    assert.is(stats.truncated, false);
    assert.match(full.stderr, /latchkey stats: 1\d{4} keys under clitest[0-9a-f]+: scanned…/);
    assert.is(bounded.code, 0, bounded.stderr);
    assert.match(bounded.stdout, /^rj\s+100\s/m);
    assert.match(bounded.stdout, /stopped after 100 keys \(--max-keys\)/);
    assert.is(bounded.stderr, '', 'no progress line for a small scan');
  });
});

realRedisSuite('latchkey doctor', (test) => {
  let own: RedisServerHandle | undefined;
  let url: string;
  let clusterNodes: string;

  test.before(async () => {
    url = `redis://127.0.0.1:${(await sharedRedisServer()).port}`;
    clusterNodes = (await sharedRedisCluster()).nodes.map((n) => `${n.host}:${n.port}`).join(',');
  });
  test.after(async () => {
    await own?.stop();
  });

  type Report = {
    ok: boolean;
    findings: Array<{ check: string; status: string; node?: string; message: string }>;
  };
  const statusOf = (report: Report, check: string): string[] =>
    report.findings.filter((f) => f.check === check).map((f) => f.status);

  test('passes a noeviction server, and explains its lack of persistence as a warning', async () => {
    const [asJson, asText] = await Promise.all([
      runCli(['doctor', '--redis', url, '--json']),
      runCli(['doctor', '--redis', url]),
    ]);
    assert.is(asJson.code, 0, asJson.stderr + asJson.stdout);
    const report = JSON.parse(asJson.stdout) as Report;
    assert.ok(report.ok);
    assert.equal(statusOf(report, 'maxmemory-policy'), ['ok']);
    assert.equal(statusOf(report, 'version'), ['ok']);
    assert.equal(statusOf(report, 'persistence'), ['warn']);
    assert.equal(statusOf(report, 'clock'), ['ok']);
    assert.match(report.findings.find((f) => f.check === 'version')?.message ?? '', /^Redis \d+\.\d+/);
    assert.is(asText.code, 0);
    assert.match(asText.stdout, /^warn\s+persistence .*a restart logs everyone out/m);
  });

  test('fails an eviction policy and a durability.replicas no replica can meet; AOF passes', async () => {
    own = await startRedisServer({ args: ['--maxmemory-policy', 'allkeys-lru', '--appendonly', 'yes'] });
    const [report, waiting] = await Promise.all([
      runCli(['doctor', '--redis', own.url]),
      runCli(['doctor', '--redis', own.url, '--json'], { env: { REDIS_WAIT_REPLICAS: '1' } }),
    ]);
    assert.is(report.code, 1);
    assert.match(report.stdout, /^FAIL\s+maxmemory-policy .*allkeys-lru.*set noeviction/m);
    assert.match(report.stdout, /^ok\s+persistence .*AOF/m);
    assert.match(report.stdout, /^1 failing check/m);
    assert.is(waiting.code, 1);
    const parsed = JSON.parse(waiting.stdout) as Report;
    assert.not.ok(parsed.ok);
    assert.equal(statusOf(parsed, 'replication'), ['fail']);
    assert.match(
      parsed.findings.find((f) => f.check === 'replication')?.message ?? '',
      /durability\.replicas 1 cannot work: 0 replicas online/,
    );
  });

  test('fails a clock more than a minute off Redis time', async () => {
    const run = await runCli(['doctor', '--redis', url, '--json'], {
      preload: SHIFT_CLOCK,
      env: { SHIFT_CLOCK_MS: String(-120_000) },
    });
    assert.is(run.code, 1, run.stdout);
    const report = JSON.parse(run.stdout) as Report;
    assert.equal(statusOf(report, 'clock'), ['fail']);
    assert.match(report.findings.find((f) => f.check === 'clock')?.message ?? '', /Redis is 1\d{5} ms ahead/);
  });

  test('checks every master of a Cluster and that all 16384 slots are served', async () => {
    const run = await runCli(['doctor', '--cluster', clusterNodes, '--json']);
    assert.is(run.code, 0, run.stdout + run.stderr);
    const report = JSON.parse(run.stdout) as Report;
    assert.equal(statusOf(report, 'cluster slots'), ['ok']);
    assert.match(
      report.findings.find((f) => f.check === 'cluster slots')?.message ?? '',
      /all 16384 slots are served by 3 masters/,
    );
    assert.is(
      new Set(report.findings.filter((f) => f.check === 'maxmemory-policy').map((f) => f.node)).size,
      3,
    );
  });

  test('fails a Cluster whose slots are not all served', async () => {
    const lonely = await startRedisServer({ args: ['--cluster-enabled', 'yes'] });
    try {
      const run = await runCli(['doctor', '--cluster', `127.0.0.1:${lonely.port}`]);
      assert.is(run.code, 1, run.stdout + run.stderr);
      assert.match(run.stdout, /^FAIL\s+cluster slots\s+slots 0-16383 have no healthy master/m);
    } finally {
      await lonely.stop();
    }
  });
});

realRedisSuite('latchkey CLI on Sentinel', (test) => {
  let sentinel: RedisSentinelHandle;
  let where: string[];

  test.before(async () => {
    sentinel = await startRedisSentinel();
    where = [
      '--sentinels',
      sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(','),
      '--sentinel-name',
      sentinel.name,
    ];
  });
  test.after(async () => {
    await sentinel.stop();
  });

  type Finding = { check: string; status: string; node?: string; message: string };
  const replication = (stdout: string): Finding | undefined =>
    (JSON.parse(stdout) as { findings: Finding[] }).findings.find((f) => f.check === 'replication');

  test('doctor checks the master the Sentinels name, and whether durability.replicas can be met', async () => {
    const master = await sentinel.master();
    const [plain, one, two] = await Promise.all([
      runCli(['doctor', ...where, '--json']),
      runCli(['doctor', ...where, '--json', '--wait-replicas', '1']),
      runCli(['doctor', ...where, '--json', '--wait-replicas', '2']),
    ]);
    assert.is(plain.code, 0, plain.stderr + plain.stdout);
    const warned = replication(plain.stdout);
    assert.is(warned?.status, 'warn');
    assert.match(warned?.message ?? '', /1 replica online.*asynchronous.*durability: \{ replicas: 1 \}/);
    assert.is(warned?.node, `127.0.0.1:${master}`);
    assert.is(one.code, 0, one.stdout);
    assert.match(
      replication(one.stdout)?.message ?? '',
      /durability\.replicas 1 can be met, but revocations answer 503 while one is down/,
    );
    assert.is(two.code, 1);
    assert.is(replication(two.stdout)?.status, 'fail');
  });

  test('sessions list and revoke reach the master through REDIS_SENTINELS', async () => {
    const p = prefix();
    const redis = new Redis({ sentinels: [...sentinel.sentinels], name: sentinel.name });
    try {
      const store = new SessionStore({ redis, prefix: p });
      const { token, session } = await store.create('heidi', {});
      const env = {
        REDIS_SENTINELS: sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(','),
        REDIS_SENTINEL_NAME: sentinel.name,
      };
      const listed = await runCli(['sessions', 'list', 'heidi', '--prefix', p, '--json'], { env });
      assert.is(listed.code, 0, listed.stderr);
      assert.equal(
        (JSON.parse(listed.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id),
        [session.id],
      );
      const revoked = await runCli(['sessions', 'revoke', 'heidi', session.id, '--prefix', p], { env });
      assert.is(revoked.code, 0, revoked.stderr);
      assert.is(await store.get(token), null);
    } finally {
      redis.disconnect();
    }
  });
});
