import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { generateDevelopmentKey, ServerSecret } from '@latchkey/core';
import { type RedisServerHandle, rawCommand, startRedisServer } from '@latchkey/testing';
import { realRedisSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, isLoopbackHost, isLoopbackHostHeader, loadConfig } from '../src/config.js';

// The configuration rules of HTTP-API.md, and the server process: start-up line, refusal to start,
// graceful shutdown on SIGTERM / SIGINT.

const config = suite('loadConfig');

/** What production needs besides NODE_ENV (loadConfig checks only their shape). */
const PROD_KEYS = Object.freeze({
  PASETO_SECRET_KEY: `k4.secret.${'A'.repeat(86)}`,
  LATCHKEY_SECRET: 'A'.repeat(43),
  TRUST_PROXY: '1',
});

config(
  'defaults: 127.0.0.1:3000, development mode, the fake Redis, the contract’s lifetimes and limits',
  () => {
    const c = loadConfig({});
    assert.is(c.host, '127.0.0.1');
    assert.is(c.port, 3000);
    assert.is(c.dev, true);
    assert.equal(c.redis, { kind: 'fake' });
    assert.is(c.cookieName, 'sid');
    assert.is(c.secureCookies, false);
    assert.is(c.trustProxy, 0);
    assert.equal(c.limits, {
      accessTokenTtlSeconds: 900,
      sessionIdleTtlSeconds: 3600,
      sessionAbsoluteTtlSeconds: 86400,
      refreshReuseGraceSeconds: 0,
      loginMaxFailures: 5,
      loginMaxFailuresPerIp: 10,
      registerMaxPerIp: 10,
      resetMaxPerIp: 10,
      passkeyLoginMaxPerIp: 30,
      freshAuthSeconds: 600,
    });
  },
);

config('every default is overridable by its variable', () => {
  const c = loadConfig({
    ACCESS_TOKEN_TTL_SECONDS: '60',
    SESSION_IDLE_TTL_SECONDS: '600',
    SESSION_ABSOLUTE_TTL_SECONDS: '7200',
    REFRESH_REUSE_GRACE_SECONDS: '5',
    LOGIN_MAX_FAILURES: '3',
    LOGIN_MAX_FAILURES_PER_IP: '20',
    REGISTER_MAX_PER_IP: '2',
    RESET_MAX_PER_IP: '4',
    PASSKEY_LOGIN_MAX_PER_IP: '7',
    FRESH_AUTH_SECONDS: '120',
    REDIS_URL: 'redis://10.0.0.1:6380/2',
    TRUST_PROXY: '2',
    LATCHKEY_DEV: '1',
    PORT: '8080',
  });
  assert.equal(c.limits, {
    accessTokenTtlSeconds: 60,
    sessionIdleTtlSeconds: 600,
    sessionAbsoluteTtlSeconds: 7200,
    refreshReuseGraceSeconds: 5,
    loginMaxFailures: 3,
    loginMaxFailuresPerIp: 20,
    registerMaxPerIp: 2,
    resetMaxPerIp: 4,
    passkeyLoginMaxPerIp: 7,
    freshAuthSeconds: 120,
  });
  assert.equal(c.redis, { kind: 'url', url: 'redis://10.0.0.1:6380/2' });
  assert.is(c.trustProxy, 2);
  assert.is(c.port, 8080);
  const origins = loadConfig({
    PUBLIC_ORIGIN: 'https://Auth.Example.com/',
    CSRF_TRUSTED_ORIGINS: 'https://a.example, http://b.example:8080',
  });
  assert.is(origins.publicOrigin, 'https://auth.example.com');
  assert.equal(origins.csrfTrustedOrigins, ['https://a.example', 'http://b.example:8080']);
  assert.equal(loadConfig({ REDIS_CLUSTER: '10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002' }).redis, {
    kind: 'cluster',
    nodes: [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ],
  });
  const sentinel = loadConfig({
    REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.2:26379',
    REDIS_SENTINEL_NAME: 'auth',
    REDIS_WAIT_REPLICAS: '1',
  });
  assert.equal(sentinel.redis, {
    kind: 'sentinel',
    sentinels: [
      { host: '10.0.0.1', port: 26379 },
      { host: '10.0.0.2', port: 26379 },
    ],
    name: 'auth',
  });
  assert.equal(sentinel.durability, { replicas: 1, timeoutMs: 250 });
  assert.is(loadConfig({ REDIS_WAIT_REPLICAS: '0' }).durability, undefined);
});

config(
  'development mode needs NODE_ENV ≠ production (any case, or prod), a loopback HOST, no TRUST_PROXY and no TLS — or LATCHKEY_DEV=1',
  () => {
    const tlsFiles = { TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' };
    const keys = {
      PASETO_SECRET_KEY: PROD_KEYS.PASETO_SECRET_KEY,
      LATCHKEY_SECRET: PROD_KEYS.LATCHKEY_SECRET,
    };
    const cases: Array<[Record<string, string>, boolean]> = [
      [{}, true],
      [{ NODE_ENV: 'development' }, true],
      [{ NODE_ENV: 'test', HOST: 'localhost' }, true],
      [{ HOST: '127.0.0.1', TRUST_PROXY: '0' }, true],
      // A proxy on the same host serves remote clients: production rules.
      [{ HOST: '127.0.0.1', TRUST_PROXY: '1', ...keys }, false],
      [{ HOST: '::1', TRUST_PROXY: '3', ...keys }, false],
      // Serving TLS itself: production rules.
      [{ HOST: '127.0.0.1', ...tlsFiles, ...keys }, false],
      // NODE_ENV in any case, and its short form.
      [{ NODE_ENV: 'Production', HOST: '127.0.0.1', ...PROD_KEYS }, false],
      [{ NODE_ENV: 'PRODUCTION', HOST: 'localhost', ...PROD_KEYS }, false],
      [{ NODE_ENV: 'prod', HOST: '127.0.0.1', ...PROD_KEYS }, false],
      [{ NODE_ENV: ' Prod ', HOST: '127.0.0.1', ...PROD_KEYS }, false],
      // LATCHKEY_DEV=1 says so explicitly, also with a proxy or TLS; 0 leaves the rule.
      [{ HOST: '127.0.0.1', TRUST_PROXY: '1', LATCHKEY_DEV: '1' }, true],
      [{ HOST: '127.0.0.1', ...tlsFiles, LATCHKEY_DEV: '1' }, true],
      [{ HOST: '127.0.0.1', LATCHKEY_DEV: '0' }, true],
      [{ HOST: '127.0.0.1', TRUST_PROXY: '1', LATCHKEY_DEV: '0', ...keys }, false],
    ];
    for (const [env, dev] of cases) assert.is(loadConfig(env).dev, dev, JSON.stringify(env));
    for (const nodeEnv of ['Production', 'prod', 'PROD']) {
      assert.throws(
        () => loadConfig({ NODE_ENV: nodeEnv, LATCHKEY_DEV: '1', ...PROD_KEYS }),
        (error: unknown) =>
          error instanceof ConfigError && /LATCHKEY_DEV=1 is not allowed/.test(error.message),
        nodeEnv,
      );
    }
  },
);

config('HOST=127.0.0.1 with TRUST_PROXY=1 and NODE_ENV unset refuses to start without the keys', () => {
  for (const env of [
    { HOST: '127.0.0.1', TRUST_PROXY: '1' },
    { HOST: 'localhost', TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' },
    { HOST: '127.0.0.1', TRUST_PROXY: '1', NODE_ENV: 'development' },
  ]) {
    try {
      loadConfig(env);
      assert.unreachable(JSON.stringify(env));
    } catch (error) {
      assert.instance(error, ConfigError);
      const line = (error as Error).message;
      assert.match(
        line,
        /^refusing to start outside development mode \((TRUST_PROXY is set|TLS is configured)/,
      );
      assert.match(line, /PASETO_SECRET_KEY/);
      assert.match(line, /LATCHKEY_SECRET/);
    }
  }
});

config('a dev-mode Host check accepts only localhost, 127.0.0.1 and [::1], with or without the port', () => {
  for (const ok of [
    'localhost',
    'localhost:3000',
    '127.0.0.1',
    '127.0.0.1:41234',
    '[::1]',
    '[::1]:3000',
    'LOCALHOST:80',
  ]) {
    assert.ok(isLoopbackHostHeader(ok), ok);
  }
  for (const bad of [
    undefined,
    '',
    'evil.example',
    'evil.example:3000',
    'localhost.evil.example',
    '127.0.0.2:3000',
    '127.0.0.1.nip.io',
    '[::1]x',
    '::1',
    '127.0.0.1:3000:1',
    'localhost:abc',
  ]) {
    assert.not.ok(isLoopbackHostHeader(bad), String(bad));
  }
});

config('development mode needs NODE_ENV ≠ production and a loopback HOST, or LATCHKEY_DEV=1', () => {
  assert.is(loadConfig({ HOST: 'localhost' }).dev, true);
  assert.is(loadConfig({ HOST: '::1' }).dev, true);
  assert.is(loadConfig({ HOST: '127.0.0.2' }).dev, true);
  assert.is(loadConfig({ HOST: '0.0.0.0', LATCHKEY_DEV: '1' }).dev, true);
  assert.is(loadConfig({ NODE_ENV: 'development', HOST: '::ffff:127.0.0.1' }).dev, true);
  assert.is(loadConfig({ HOST: '0.0.0.0', ...PROD_KEYS }).dev, false);
  assert.is(loadConfig({ HOST: '0.0.0.0', LATCHKEY_DEV: '0', ...PROD_KEYS }).dev, false);
  assert.is(loadConfig({ HOST: 'localhost', NODE_ENV: 'production', ...PROD_KEYS }).dev, false);
  assert.not.ok(isLoopbackHost('0.0.0.0'));
  assert.not.ok(isLoopbackHost('::'));
  assert.not.ok(isLoopbackHost('192.168.1.10'));
  assert.not.ok(isLoopbackHost('localhost.example.com'));
});

config(
  'outside development it refuses to start without the keys and a proxy or TLS setting, naming them',
  async () => {
    const key = await generateDevelopmentKey();
    const secret = ServerSecret.generateText();
    const refusal = (env: Record<string, string>): string => {
      try {
        loadConfig(env);
      } catch (error) {
        assert.instance(error, ConfigError);
        return (error as Error).message;
      }
      throw new Error('expected a refusal');
    };
    const all = refusal({ NODE_ENV: 'production' });
    assert.match(all, /PASETO_SECRET_KEY/);
    assert.match(all, /LATCHKEY_SECRET/);
    assert.match(all, /TRUST_PROXY/);
    assert.not.match(all, /\n/, 'one line');
    const proxy = refusal({ HOST: '0.0.0.0', PASETO_SECRET_KEY: key.secret, LATCHKEY_SECRET: secret });
    assert.match(proxy, /TRUST_PROXY/);
    assert.not.match(proxy, /PASETO_SECRET_KEY \(/);
    assert.match(
      refusal({
        NODE_ENV: 'production',
        PASETO_SECRET_KEY: 'k4.public.x',
        LATCHKEY_SECRET: secret,
        TRUST_PROXY: '1',
      }),
      /PASERK/,
    );
    assert.match(
      refusal({
        NODE_ENV: 'production',
        PASETO_SECRET_KEY: key.secret,
        LATCHKEY_SECRET: 'c2hvcnQ',
        TRUST_PROXY: '1',
      }),
      /32/,
    );
    const ok = loadConfig({
      NODE_ENV: 'production',
      PASETO_SECRET_KEY: key.secret,
      LATCHKEY_SECRET: secret,
      TRUST_PROXY: '1',
    });
    assert.is(ok.dev, false);
    assert.is(ok.cookieName, '__Host-sid');
    assert.is(ok.secureCookies, true);
    const tls = loadConfig({
      NODE_ENV: 'production',
      PASETO_SECRET_KEY: key.secret,
      LATCHKEY_SECRET: secret,
      TLS_CERT_FILE: '/c.pem',
      TLS_KEY_FILE: '/k.pem',
    });
    assert.equal(tls.tls, { certFile: '/c.pem', keyFile: '/k.pem' });
  },
);

config('malformed values are refused in one line naming the variable', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ TRUST_PROXY: 'true' }, /TRUST_PROXY/],
    [{ LATCHKEY_DEV: 'yes' }, /LATCHKEY_DEV/],
    // Development mode (the outbox shows every code) is never on in production, whatever else is set.
    [{ NODE_ENV: 'production', LATCHKEY_DEV: '1', ...PROD_KEYS }, /LATCHKEY_DEV=1 .*NODE_ENV=production/],
    // Its confirmations are limited to 5× it, and the limiter accepts at most 100000 per window.
    [{ RESET_MAX_PER_IP: '20001' }, /^RESET_MAX_PER_IP must be .*20000/],
    [{ RESET_MAX_PER_IP: '100000' }, /^RESET_MAX_PER_IP must be .*20000/],
    [{ ACCESS_TOKEN_TTL_SECONDS: '0' }, /ACCESS_TOKEN_TTL_SECONDS/],
    [{ ACCESS_TOKEN_TTL_SECONDS: '90000' }, /ACCESS_TOKEN_TTL_SECONDS/],
    [{ REFRESH_REUSE_GRACE_SECONDS: '-1' }, /REFRESH_REUSE_GRACE_SECONDS/],
    [{ LOGIN_MAX_FAILURES: '1.5' }, /LOGIN_MAX_FAILURES/],
    [{ SESSION_IDLE_TTL_SECONDS: '100', SESSION_ABSOLUTE_TTL_SECONDS: '50' }, /SESSION_IDLE_TTL_SECONDS/],
    [{ REDIS_URL: 'localhost:6379' }, /REDIS_URL/],
    [{ REDIS_URL: 'redis://a', REDIS_CLUSTER: 'b:1' }, /REDIS_CLUSTER/],
    [{ REDIS_CLUSTER: 'host-without-port' }, /REDIS_CLUSTER/],
    [{ REDIS_SENTINELS: 'a:1' }, /REDIS_SENTINEL_NAME/],
    [{ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'x', REDIS_URL: 'redis://a' }, /REDIS_SENTINELS/],
    [{ REDIS_WAIT_REPLICAS: 'one' }, /REDIS_WAIT_REPLICAS/],
    [{ REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '5000' }, /REDIS_WAIT_TIMEOUT_MS/],
    [{ TLS_CERT_FILE: '/c.pem' }, /TLS_KEY_FILE/],
    [{ PUBLIC_ORIGIN: 'https://example.com/path' }, /PUBLIC_ORIGIN/],
    [{ CSRF_TRUSTED_ORIGINS: 'https://ok.example,not an origin' }, /CSRF_TRUSTED_ORIGINS/],
  ];
  for (const [env, pattern] of cases) {
    try {
      loadConfig(env);
      assert.unreachable(JSON.stringify(env));
    } catch (error) {
      assert.instance(error, ConfigError, JSON.stringify(env));
      assert.match((error as Error).message, pattern);
      assert.not.match((error as Error).message, /\n/);
    }
  }
});

config.run();

// --- the process ----------------------------------------------------------------------------------

const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url));

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function spawnServer(env: Record<string, string>): Started {
  const child = spawn(process.execPath, ['--conditions=latchkey-source', '--import', 'tsx', SERVER], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  return { child, stdout: () => out, stderr: () => err };
}

async function listening(started: Started, timeoutMs = 20_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const match = /listening on (http:\/\/[^\s]+)/.exec(started.stdout());
    if (match?.[1] !== undefined) return match[1];
    if (started.child.exitCode !== null) throw new Error(`exited: ${started.stderr()}`);
    if (performance.now() > deadline)
      throw new Error(`no start-up line: ${started.stdout()} ${started.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const proc = suite('the server process');

proc('refuses to start in production without keys: exit 1 and one clear line', async () => {
  const started = spawnServer({ NODE_ENV: 'production', PORT: '0' });
  const code = await exitCode(started.child);
  assert.is(code, 1);
  const lines = started.stderr().trim().split('\n');
  assert.is(lines.length, 1, started.stderr());
  assert.match(
    lines[0] as string,
    /^koa-auth-server: refusing to start .*PASETO_SECRET_KEY.*LATCHKEY_SECRET.*TRUST_PROXY/,
  );
  assert.is(started.stdout(), '');
  const forced = spawnServer({ NODE_ENV: 'production', LATCHKEY_DEV: '1', PORT: '0' });
  assert.is(await exitCode(forced.child), 1);
  assert.match(
    forced.stderr(),
    /^koa-auth-server: LATCHKEY_DEV=1 is not allowed with NODE_ENV=production\n$/,
  );
  assert.is(forced.stdout(), '');
});

proc(
  'starts on the fake with a clear start-up line, serves, and exits 0 on SIGTERM after in-flight requests',
  async () => {
    const started = spawnServer({ PORT: '0', LOG_LEVEL: 'silent' });
    try {
      const url = await listening(started);
      const out = started.stdout();
      assert.match(out, /listening on http:\/\/127\.0\.0\.1:\d+/);
      assert.match(out, /embedded fake Redis .*lost on exit/);
      assert.match(out, /generated .*PASETO signing key/);
      assert.match(out, /development/);
      const register = await fetch(`${url}/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'sig@example.com', password: 'correct horse' }),
      });
      assert.is(register.status, 201);
      // A login is in flight when the signal arrives: its headers and half its body are sent, the
      // rest only once the server has said it is stopping. It still completes.
      const body = JSON.stringify({ email: 'sig@example.com', password: 'correct horse' });
      const half = Math.floor(body.length / 2);
      const { hostname, port } = new URL(url);
      const request = httpRequest({
        host: hostname,
        port,
        method: 'POST',
        path: '/auth/login',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      });
      const answered = new Promise<number>((resolve, reject) => {
        request.on('response', (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        request.on('error', reject);
      });
      request.write(body.slice(0, half));
      await new Promise((resolve) => setTimeout(resolve, 200));
      started.child.kill('SIGTERM');
      await until(() => started.stdout().includes('SIGTERM'), 5000);
      request.end(body.slice(half));
      assert.is(await answered, 200);
      const refused = await fetch(`${url}/healthz`).then(
        (r) => r.status,
        () => 'refused',
      );
      assert.is(refused, 'refused', 'no new connections are accepted');
      assert.is(await exitCode(started.child), 0);
      assert.match(started.stdout(), /stopped/);
    } finally {
      if (started.child.exitCode === null) started.child.kill('SIGKILL');
    }
  },
);

proc('SIGINT exits 0 too', async () => {
  const started = spawnServer({ PORT: '0', LOG_LEVEL: 'silent' });
  try {
    await listening(started);
    started.child.kill('SIGINT');
    assert.is(await exitCode(started.child), 0);
  } finally {
    if (started.child.exitCode === null) started.child.kill('SIGKILL');
  }
});

proc.run();

realRedisSuite('the server process on a real Redis', (test) => {
  test('with REDIS_URL it names the server and warns when maxmemory-policy is not noeviction', async () => {
    const redis: RedisServerHandle = await startRedisServer();
    const started = spawnServer({ PORT: '0', REDIS_URL: redis.url });
    try {
      const { Redis } = await import('ioredis');
      const admin = new Redis(redis.port, '127.0.0.1');
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await admin.quit();
      const url = await listening(started);
      assert.match(started.stdout(), new RegExp(`Redis server at redis://127\\.0\\.0\\.1:${redis.port}`));
      await until(() => started.stdout().includes('maxmemory-policy is allkeys-lru'), 10_000).catch(
        () => undefined,
      );
      assert.match(started.stdout(), /maxmemory-policy is allkeys-lru/);
      assert.is((await fetch(`${url}/healthz`)).status, 200);
      started.child.kill('SIGTERM');
      assert.is(await exitCode(started.child), 0);
      // It closed its connection with QUIT (the admin connection above quit before it started).
      const stats = await rawCommand(redis.port, 'INFO commandstats');
      assert.match(stats, /cmdstat_quit:calls=2\b/, 'the server process said QUIT');
    } finally {
      if (started.child.exitCode === null) started.child.kill('SIGKILL');
      await redis.stop();
    }
  });
});
