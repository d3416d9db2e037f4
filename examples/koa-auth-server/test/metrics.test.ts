import type { AddressInfo } from 'node:net';
import { generateDevelopmentKey, ServerSecret } from '@latchkey/core';
import { startRedisServer } from '@latchkey/testing';
import { realRedisSuite } from '@latchkey/testing/backends';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { Metrics } from '../src/metrics.js';
import { RedisAvailability } from '../src/outage.js';
import { closeRedis, createRedisClient } from '../src/redis.js';
import {
  eventually,
  lastCode,
  randomIp,
  replaceScript,
  signUp,
  startTestApp,
  type TestApp,
} from './helpers.js';

// GET /metrics (Prometheus text exposition format 0.0.4), scraped and parsed: the counters move with
// what happens — failed logins, lockouts, refresh reuse, revocations, Redis round trips and outages.

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the text format: `# HELP` / `# TYPE` comments, then `name{label="value",…} number` lines. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const labelText = match[2] ?? '';
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;
    let at = 0;
    while (at < labelText.length) {
      pair.lastIndex = at;
      const label = pair.exec(labelText);
      assert.ok(label, `bad labels in: ${line}`);
      labels[label[1] as string] = (label[2] as string).replace(/\\(.)/g, (_, c: string) =>
        c === 'n' ? '\n' : c,
      );
      at = pair.lastIndex;
    }
    const raw = match[3] as string;
    const value = raw === '+Inf' ? Number.POSITIVE_INFINITY : Number(raw);
    assert.ok(!Number.isNaN(value), `bad value in: ${line}`);
    samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels` (0 when none). */
function total(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

async function scrape(app: TestApp, headers: Record<string, string> = {}): Promise<Sample[]> {
  const reply = await fetch(`${app.url}/metrics`, { headers });
  assert.is(reply.status, 200);
  assert.match(reply.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await reply.text();
  assert.match(text, /^# HELP latchkey_security_events_total /m);
  assert.match(text, /^# TYPE http_request_duration_seconds histogram$/m);
  return parseExposition(text);
}

const PASSWORD = 'correct horse battery';

const counters = suite('GET /metrics in development mode');

counters('security events, HTTP requests and Redis round trips move with what happens', async () => {
  const app = await startTestApp({ env: { LOGIN_MAX_FAILURES: '3' } });
  try {
    const before = await scrape(app);
    assert.is(total(before, 'latchkey_redis_up'), 1);
    const client = app.client();
    const user = await signUp(client, undefined, PASSWORD);

    // Three wrong passwords lock the account for this IP; the fourth attempt is refused (429).
    const attacker = app.client({ ip: randomIp() });
    for (let i = 0; i < 3; i++) {
      assert.is(
        (await attacker.post('/auth/login', { email: user.email, password: 'wrong password!' })).status,
        401,
      );
    }
    assert.is(
      (await attacker.post('/auth/login', { email: user.email, password: 'wrong password!' })).status,
      429,
    );

    // Refresh reuse: rotate once, then present the rotated-away token.
    const rotated = await client.post('/auth/refresh', { refreshToken: user.refreshToken });
    assert.is(rotated.status, 200);
    assert.is((await client.post('/auth/refresh', { refreshToken: user.refreshToken })).status, 401);
    assert.is((await client.get('/no/such/path/4242')).status, 404);

    const after = await scrape(app);
    const moved = (name: string, labels: Record<string, string>): number =>
      total(after, name, labels) - total(before, name, labels);
    assert.is(moved('latchkey_security_events_total', { type: 'login.failed' }), 3);
    assert.ok(
      moved('latchkey_security_events_total', { type: 'login.blocked' }) >= 1,
      'a lockout is counted',
    );
    assert.is(moved('latchkey_security_events_total', { type: 'login.succeeded' }), 1);
    assert.is(moved('latchkey_security_events_total', { type: 'refresh.reuse-detected' }), 1);
    assert.is(moved('latchkey_security_events_total', { type: 'session.created' }), 1);
    assert.ok(
      moved('latchkey_security_events_total', { type: 'session.revoked' }) >= 1,
      'reuse revoked the session',
    );
    assert.is(moved('http_requests_total', { method: 'POST', route: '/auth/login', status: '401' }), 3);
    assert.is(moved('http_requests_total', { method: 'POST', route: '/auth/login', status: '429' }), 1);
    assert.is(moved('http_requests_total', { method: 'POST', route: '/auth/refresh', status: '401' }), 1);
    assert.is(moved('http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }), 1);
    assert.is(moved('http_request_duration_seconds_count', { method: 'POST', route: '/auth/login' }), 5);
    assert.ok(
      after.every((s) => !Object.values(s.labels).some((v) => v.includes('4242'))),
      'a raw path became a label value',
    );
    assert.ok(
      moved('latchkey_redis_command_duration_seconds_count', {
        operation: 'session-create',
        outcome: 'ok',
      }) >= 1,
    );
    assert.ok(
      moved('latchkey_redis_command_duration_seconds_count', {
        operation: 'refresh-rotate',
        outcome: 'ok',
      }) >= 2,
    );
    assert.ok(moved('latchkey_redis_command_duration_seconds_count', { operation: 'limiter-check' }) >= 4);
    assert.is(total(after, 'latchkey_redis_command_errors_total'), 0);
  } finally {
    await app.close();
  }
});

counters(
  'a Redis outage shows as redis_up 0, an outage, unavailable round trips, and its length once back',
  async () => {
    const app = await startTestApp();
    try {
      const client = app.client();
      await signUp(client, undefined, PASSWORD);
      assert.is((await client.get('/auth/me')).status, 200);
      const restore = replaceScript(app.redis, 'session-get', () =>
        Promise.reject(new Error('connection reset')),
      );
      assert.is((await client.get('/auth/me')).status, 503);
      const down = await scrape(app);
      assert.is(total(down, 'latchkey_redis_up'), 0);
      assert.is(total(down, 'latchkey_redis_outages_total'), 1);
      assert.is(
        total(down, 'latchkey_redis_command_errors_total', {
          operation: 'session-get',
          outcome: 'unavailable',
        }),
        1,
      );
      assert.is(total(down, 'http_requests_total', { route: '/auth/me', status: '503' }), 1);
      restore();
      // RedisAvailability probes with PING every 500 ms while down.
      let up: Sample[] = [];
      await eventually(
        async () => {
          up = await scrape(app);
          return total(up, 'latchkey_redis_up') === 1;
        },
        5000,
        'latchkey_redis_up back to 1',
      );
      assert.is(total(up, 'latchkey_redis_outage_duration_seconds_count'), 1);
      assert.is(total(up, 'latchkey_redis_outages_total'), 1);
    } finally {
      await app.close();
    }
  },
);

counters('code exhaustion, a password reset and logout-all are counted by type', async () => {
  const app = await startTestApp();
  try {
    const client = app.client();
    const user = await signUp(client, undefined, PASSWORD);
    assert.is((await client.post('/auth/verify-email/request')).status, 202);
    const code = lastCode(app, user.email, 'verify-email');
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) {
      assert.is((await client.post('/auth/verify-email/confirm', { code: wrong })).status, 400);
    }
    assert.is((await client.post('/auth/password-reset/request', { email: user.email })).status, 202);
    const resetCode = lastCode(app, user.email, 'password-reset');
    const reset = await client.post('/auth/password-reset/confirm', {
      email: user.email,
      code: resetCode,
      newPassword: 'another horse battery',
    });
    assert.is(reset.status, 204);
    const samples = await scrape(app);
    const events = (type: string): number => total(samples, 'latchkey_security_events_total', { type });
    assert.is(events('code.exhausted'), 1);
    assert.is(events('password.reset'), 1);
    assert.is(events('session.revoked-all'), 1);
    assert.ok(
      total(samples, 'latchkey_redis_command_duration_seconds_count', { operation: 'code-verify' }) >= 6,
    );
  } finally {
    await app.close();
  }
});

counters('other methods on /metrics are 405', async () => {
  const app = await startTestApp();
  try {
    const reply = await app.client().post('/metrics', {});
    assert.is(reply.status, 405);
  } finally {
    await app.close();
  }
});

counters.run();

const production = suite('GET /metrics in production');

async function productionEnv(extra: Record<string, string>): Promise<Record<string, string>> {
  return {
    NODE_ENV: 'production',
    LATCHKEY_DEV: '0',
    PASETO_SECRET_KEY: (await generateDevelopmentKey()).secret,
    LATCHKEY_SECRET: ServerSecret.generateText(),
    ...extra,
  };
}

const TOKEN = 'metrics-token-0123456789abcdefghijklmnopqrstuvwxyz';

production('without METRICS_PORT or METRICS_TOKEN, /metrics is 404 on the app port', async () => {
  const app = await startTestApp({ env: await productionEnv({}) });
  try {
    assert.is((await app.client().get('/metrics')).status, 404);
  } finally {
    await app.close();
  }
});

production('with METRICS_TOKEN, /metrics on the app port needs that bearer token', async () => {
  const app = await startTestApp({ env: await productionEnv({ METRICS_TOKEN: TOKEN }) });
  try {
    const client = app.client();
    const missing = await client.get('/metrics');
    assert.is(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.is((await client.get('/metrics', { bearer: `${TOKEN}x` })).status, 401);
    assert.is((await client.get('/metrics', { bearer: TOKEN.slice(0, -1) })).status, 401);
    const samples = await scrape(app, { authorization: `Bearer ${TOKEN}` });
    assert.is(total(samples, 'latchkey_redis_up'), 1);
  } finally {
    await app.close();
  }
});

production(
  'with METRICS_PORT, the app port answers 404 and the metrics listener serves (behind the token)',
  async () => {
    const env = await productionEnv({ METRICS_PORT: '0', METRICS_TOKEN: TOKEN });
    const config = loadConfig({ HOST: '127.0.0.1', TRUST_PROXY: '1', ...env });
    assert.equal(config.metrics, { port: 0, token: TOKEN, onAppPort: false });
    const app = await startTestApp({ env });
    const metrics = new Metrics();
    metrics.watch(new RedisAvailability(app.redis, createLogger('silent')));
    const listener = metrics.listener(TOKEN);
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    try {
      assert.is((await app.client().get('/metrics', { bearer: TOKEN })).status, 404);
      const base = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
      assert.is((await fetch(`${base}/metrics`)).status, 401);
      assert.is((await fetch(`${base}/other`)).status, 404);
      assert.is(
        (await fetch(`${base}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }))
          .status,
        405,
      );
      const reply = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.is(reply.status, 200);
      const samples = parseExposition(await reply.text());
      assert.is(total(samples, 'latchkey_redis_up'), 1);
    } finally {
      listener.close();
      listener.closeAllConnections();
      await app.close();
    }
  },
);

production('METRICS_TOKEN and METRICS_PORT are checked at start-up', () => {
  const base = { HOST: '127.0.0.1', LATCHKEY_DEV: '1' };
  for (const env of [
    { METRICS_TOKEN: 'short' },
    { METRICS_TOKEN: `${TOKEN} with spaces` },
    { METRICS_PORT: '70000' },
    { METRICS_PORT: '3000', PORT: '3000' },
  ]) {
    assert.throws(
      () => loadConfig({ ...base, ...env }),
      (e: unknown) => e instanceof ConfigError,
      JSON.stringify(env),
    );
  }
  assert.equal(loadConfig(base).metrics, { port: undefined, token: undefined, onAppPort: true });
});

production.run();

realRedisSuite('latchkey_redis_up follows Redis, not the last request', (test) => {
  test('read at each scrape: 0 when started while Redis is down, 1 once it is up, 0 when it stops while idle', async () => {
    const server = await startRedisServer();
    await server.stop(); // down from the start: nothing listens on its port yet
    const redis = createRedisClient({ kind: 'url', url: server.url });
    const app = await startTestApp({ redis });
    try {
      const never = await scrape(app);
      assert.is(total(never, 'latchkey_redis_up'), 0, 'no Redis was ever seen');
      assert.is(total(never, 'latchkey_redis_outages_total'), 1, 'the scrape began the outage');
      assert.is(total(never, 'latchkey_redis_command_duration_seconds_count'), 0, 'no request was made');

      await server.start();
      let up: Sample[] = [];
      await eventually(
        async () => {
          up = await scrape(app);
          return total(up, 'latchkey_redis_up') === 1;
        },
        10_000,
        'latchkey_redis_up to read 1 once Redis is up',
      );
      assert.is(total(up, 'latchkey_redis_outage_duration_seconds_count'), 1);

      await server.stop(); // the server is idle: no request finds out
      const idle = await scrape(app);
      assert.is(total(idle, 'latchkey_redis_up'), 0, 'Redis stopped while no request was made');
      assert.is(total(idle, 'latchkey_redis_outages_total'), 2);
    } finally {
      await app.close();
      await closeRedis(redis);
      await server.stop();
    }
  });
});

const availability = suite('RedisAvailability.check');

availability(
  'a PING sent before an outage that failed after its recovery begins no second outage',
  async () => {
    // A Redis stand-in whose PINGs answer when the test says.
    const pings: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
    const redis = {
      ping: () => new Promise<void>((resolve, reject) => pings.push({ resolve, reject })),
    } as unknown as ConstructorParameters<typeof RedisAvailability>[0];
    const watched = new RedisAvailability(redis, createLogger('silent'));
    const changes: boolean[] = [];
    watched.on('change', (change: { up: boolean }) => changes.push(change.up));
    try {
      const scrape = watched.check(); // PING 1 in flight while Redis is up
      watched.failed(new Error('a request failed')); // the outage begins; the probe PINGs every 500 ms
      await eventually(async () => pings.length >= 2, 3000, 'the probe pinged');
      pings[1]?.resolve(); // the probe sees Redis back
      await eventually(async () => watched.up, 3000, 'recovered');
      pings[0]?.reject(new Error('Connection is closed.')); // the scrape's stale PING fails late
      assert.is(await scrape, true, 'the scrape reports what is known now');
      assert.is(watched.up, true);
      assert.equal(changes, [false, true], 'one outage, not two');
    } finally {
      watched.close();
    }
  },
);

availability.run();
