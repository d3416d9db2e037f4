// pnpm chaos [--duration=<s>] — a bounded chaos run on loopback (not part of `pnpm test`).
//
// Starts its own redis-server (AOF on, so a restart keeps what was acknowledged) and the example server
// (development mode, its dev outbox), drives mixed HTTP load (register, login, me by cookie and by
// bearer, refresh, logout, logout-all, password reset through the outbox) and, on a schedule, kills Redis
// (SIGKILL, restart) or freezes it (SIGSTOP, SIGCONT). Every credential whose revocation was acknowledged
// (2xx) goes into a ledger that is re-probed after each recovery. Prints status counts, 500s, 503s
// without Retry-After, the slowest 503, recovery times and re-accepted credentials, and exits 1 when a
// bound is broken: 500s = 0, 503s without Retry-After = 0, slowest 503 ≤ 2 s, re-accepted = 0, every
// recovery ≤ 15 s. Default 180 s (about 3 minutes in all); CI runs `--duration=40`.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { freePort, startRedisServer } from '@latchkey/testing';

const root = join(import.meta.dirname, '..');
const durationArg = process.argv.find((a) => a.startsWith('--duration='));
const DURATION_MS = Math.min(Number(durationArg?.split('=')[1] ?? 180), 600) * 1000;
if (!(DURATION_MS > 0)) throw new Error('--duration=<seconds> must be a positive number');
const VIRTUAL_USERS = 6;
const FAULT_EVERY_MS = DURATION_MS >= 90_000 ? 25_000 : Math.floor(DURATION_MS / 3); // short runs: one of each
const FREEZE_MS = 3000;
const DOWN_MS = 2000;
const BOUNDS = { slowest503Ms: 2000, recoveryMs: 15_000 };

const statuses = new Map<string, number>();
let errors500 = 0;
let no503RetryAfter = 0;
let slowest503 = 0;
let transportErrors = 0;
const transportReasons = new Map<string, number>();
const recoveries: Array<{ fault: string; ms: number }> = [];
let reaccepted = 0;
let probes = 0;
const ledger: Array<{ kind: 'cookie' | 'bearer' | 'refresh'; value: string; what: string }> = [];
let stopping = false;

interface Reply {
  status: number;
  body: Record<string, unknown>;
  cookie: string | undefined;
}

let base = '';
async function call(
  route: string,
  method: string,
  path: string,
  options: { json?: unknown; cookie?: string; bearer?: string; ip: string; count?: boolean },
): Promise<Reply> {
  const headers: Record<string, string> = { 'x-forwarded-for': options.ip };
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  if (options.cookie !== undefined) headers['cookie'] = options.cookie;
  if (options.bearer !== undefined) headers['authorization'] = `Bearer ${options.bearer}`;
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch(base + path, {
      method,
      headers,
      ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    transportErrors++;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = `${route}: ${cause?.code ?? cause?.message ?? String(error)}`;
    transportReasons.set(reason, (transportReasons.get(reason) ?? 0) + 1);
    return { status: 0, body: {}, cookie: undefined };
  }
  const ms = performance.now() - started;
  const text = await response.text();
  if (options.count !== false) {
    const key = `${route} ${response.status}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    if (response.status >= 500 && response.status !== 503) errors500++;
    if (response.status === 503) {
      if (response.headers.get('retry-after') === null) no503RetryAfter++;
      slowest503 = Math.max(slowest503, ms);
    }
  }
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON (204)
  }
  const setCookie = response.headers.get('set-cookie');
  const cookie = setCookie?.split(';')[0];
  return {
    status: response.status,
    body,
    cookie: cookie === undefined || cookie.endsWith('=') ? undefined : cookie,
  };
}

const ok = (reply: Reply) => reply.status >= 200 && reply.status < 300;

/** One user's life: every route, recording each acknowledged revocation in the ledger. */
async function cycle(): Promise<boolean> {
  const ip = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const email = `chaos-${randomBytes(6).toString('hex')}@example.com`;
  const password = 'correct horse battery';
  if (!ok(await call('register', 'POST', '/auth/register', { json: { email, password }, ip }))) return false;
  const login = async () => {
    const r = await call('login', 'POST', '/auth/login', { json: { email, password }, ip });
    return ok(r) && r.cookie !== undefined
      ? { cookie: r.cookie, access: String(r.body['accessToken']), refresh: String(r.body['refreshToken']) }
      : null;
  };
  const a = await login();
  if (a === null) return false;
  await call('me (cookie)', 'GET', '/auth/me', { cookie: a.cookie, ip });
  await call('me (bearer)', 'GET', '/auth/me', { bearer: a.access, ip });
  const refreshed = await call('refresh', 'POST', '/auth/refresh', { json: { refreshToken: a.refresh }, ip });
  if (ok(refreshed)) {
    // The rotated-away token: presenting it again must never work (it is reuse, which revokes).
    ledger.push({ kind: 'refresh', value: a.refresh, what: 'a rotated refresh token' });
  }
  if (ok(await call('logout', 'POST', '/auth/logout', { cookie: a.cookie, ip }))) {
    ledger.push({ kind: 'cookie', value: a.cookie, what: 'a logged-out cookie' });
  }
  const b = await login();
  const c = await login();
  if (b !== null && c !== null) {
    if (ok(await call('logout-all', 'POST', '/auth/logout-all', { bearer: b.access, ip }))) {
      ledger.push(
        { kind: 'cookie', value: c.cookie, what: 'a cookie after logout-all' },
        { kind: 'bearer', value: c.access, what: 'an access token after logout-all' },
        { kind: 'refresh', value: c.refresh, what: 'a refresh token after logout-all' },
      );
    }
  }
  const d = await login();
  if (d === null) return false;
  const requested = await call('reset request', 'POST', '/auth/password-reset/request', {
    json: { email },
    ip,
  });
  if (!ok(requested)) return false;
  const outbox = await call('outbox', 'GET', `/dev/outbox?to=${encodeURIComponent(email)}`, {
    ip,
    count: false,
  });
  const messages = (outbox.body['messages'] ?? []) as Array<{ purpose: string; code: string }>;
  const code = messages.filter((m) => m.purpose === 'password-reset').at(-1)?.code;
  if (code === undefined) return false;
  const confirm = await call('reset confirm', 'POST', '/auth/password-reset/confirm', {
    json: { email, code, newPassword: 'a brand new password' },
    ip,
  });
  if (ok(confirm)) {
    ledger.push(
      { kind: 'cookie', value: d.cookie, what: 'a cookie after a password reset' },
      { kind: 'bearer', value: d.access, what: 'an access token after a password reset' },
      { kind: 'refresh', value: d.refresh, what: 'a refresh token after a password reset' },
    );
  }
  return ok(confirm);
}

/** Re-probes the ledger; a 2xx is a revoked credential accepted again. 503s are retried later. */
async function probeLedger(): Promise<void> {
  const ip = '10.255.255.1';
  for (const entry of ledger.slice(-600)) {
    const reply =
      entry.kind === 'cookie'
        ? await call('probe', 'GET', '/auth/me', { cookie: entry.value, ip, count: false })
        : entry.kind === 'bearer'
          ? await call('probe', 'GET', '/auth/me', { bearer: entry.value, ip, count: false })
          : await call('probe', 'POST', '/auth/refresh', {
              json: { refreshToken: entry.value },
              ip,
              count: false,
            });
    probes++;
    if (ok(reply)) {
      reaccepted++;
      console.log(`RE-ACCEPTED: ${entry.what} (${entry.kind}), status ${reply.status}`);
    }
  }
}

async function healthy(): Promise<boolean> {
  const reply = await call('healthz', 'GET', '/healthz', { ip: '10.255.255.2', count: false });
  return reply.status === 200;
}

async function waitHealthy(limitMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (await healthy()) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Number.POSITIVE_INFINITY;
}

async function main(): Promise<number> {
  const redis = await startRedisServer({ args: ['--appendonly', 'yes', '--appendfsync', 'everysec'] });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  let server: ChildProcess | null = null;
  try {
    server = spawn(
      process.execPath,
      [
        '--conditions=latchkey-source',
        '--import',
        'tsx',
        join(root, 'examples/koa-auth-server/src/server.ts'),
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          HOST: '127.0.0.1',
          PORT: String(port),
          REDIS_URL: redis.url,
          TRUST_PROXY: '1',
          LATCHKEY_DEV: '1', // development mode (the dev outbox) behind TRUST_PROXY: random client IPs
          LOG_LEVEL: 'warn',
          REGISTER_MAX_PER_IP: '10000',
          RESET_MAX_PER_IP: '10000',
          LOGIN_MAX_FAILURES_PER_IP: '10000',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let serverLog = 0;
    let serverTail = '';
    server.stderr?.on('data', (chunk: Buffer) => {
      serverLog += chunk.length;
      serverTail = (serverTail + chunk.toString('utf8')).slice(-2000);
    });
    server.stdout?.on('data', (chunk: Buffer) => {
      serverLog += chunk.length;
    });
    if (!Number.isFinite(await waitHealthy(30_000))) {
      const last = await call('healthz', 'GET', '/healthz', { ip: '10.255.255.2', count: false });
      throw new Error(
        `the example server did not start (GET /healthz: ${last.status} ${JSON.stringify(last.body)}; ${serverTail})`,
      );
    }
    transportErrors = 0; // the refused connections of the start-up wait do not count
    transportReasons.clear();
    console.log(
      `chaos: ${DURATION_MS / 1000} s, ${VIRTUAL_USERS} virtual users, a fault every ${FAULT_EVERY_MS / 1000} s ` +
        `(Redis ${redis.url}, server ${base})`,
    );
    const started = performance.now();
    const users = Array.from({ length: VIRTUAL_USERS }, async () => {
      while (!stopping) {
        // A cycle cut short by a 503 waits a little, as a client honouring Retry-After would (less so).
        if ((await cycle().catch(() => false)) === false) await new Promise((r) => setTimeout(r, 200));
      }
    });
    // Faults at fixed times (k × FAULT_EVERY_MS), whatever the probes of the last recovery took.
    for (let k = 1; k * FAULT_EVERY_MS + 1000 < DURATION_MS; k++) {
      const wait = started + k * FAULT_EVERY_MS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const pid = redis.pid;
      if (pid === null) throw new Error('redis-server is not running');
      const kind = k % 2 === 1 ? 'kill + restart' : 'freeze (SIGSTOP)';
      if (kind === 'kill + restart') {
        process.kill(pid, 'SIGKILL');
        await redis.stop();
        await new Promise((resolve) => setTimeout(resolve, DOWN_MS));
        await redis.start();
      } else {
        process.kill(pid, 'SIGSTOP');
        await new Promise((resolve) => setTimeout(resolve, FREEZE_MS));
        process.kill(pid, 'SIGCONT');
      }
      const ms = await waitHealthy(BOUNDS.recoveryMs);
      recoveries.push({ fault: kind, ms });
      console.log(
        `  ${kind}: serving again after ${Number.isFinite(ms) ? `${Math.round(ms)} ms` : 'NEVER'}; probing ${Math.min(ledger.length, 600)} revoked credentials`,
      );
      await probeLedger();
    }
    const left = DURATION_MS - (performance.now() - started);
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    stopping = true;
    await Promise.all(users);
    await probeLedger();
    console.log(`\nserver log at LOG_LEVEL=warn: ${serverLog} bytes`);
  } finally {
    stopping = true;
    server?.kill('SIGTERM');
    await redis.stop();
  }

  console.log('\nstatus counts:');
  for (const [key, count] of [...statuses].sort()) console.log(`  ${key.padEnd(22)} ${count}`);
  const worstRecovery = Math.max(0, ...recoveries.map((r) => r.ms));
  const checks: Array<[string, boolean, string]> = [
    ['500s', errors500 === 0, String(errors500)],
    ['503s without Retry-After', no503RetryAfter === 0, String(no503RetryAfter)],
    [
      'slowest 503',
      slowest503 <= BOUNDS.slowest503Ms,
      `${Math.round(slowest503)} ms (≤ ${BOUNDS.slowest503Ms})`,
    ],
    [
      're-accepted credentials',
      reaccepted === 0,
      `${reaccepted} of ${probes} probes (ledger ${ledger.length})`,
    ],
    [
      'recoveries',
      recoveries.length > 0 && worstRecovery <= BOUNDS.recoveryMs,
      `${recoveries.map((r) => `${r.fault} ${Math.round(r.ms)} ms`).join(', ') || 'none'}`,
    ],
  ];
  console.log(
    `\ntransport errors (no HTTP answer): ${transportErrors} ${JSON.stringify(Object.fromEntries(transportReasons))}`,
  );
  let failed = 0;
  for (const [name, passed, detail] of checks) {
    if (!passed) failed++;
    console.log(`${passed ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
  }
  console.log(failed === 0 ? '\nchaos: every bound held' : `\nchaos: ${failed} bound(s) broken`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
