import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { generateDevelopmentKey, ServerSecret } from '@latchkey/core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestApp, type TestApp } from './helpers.js';

// Development mode's guard against DNS rebinding (HTTP-API.md, Running): a request whose Host is not a
// loopback name gets 421; the start-up rules around RESET_MAX_PER_IP; `pnpm start` under a signal.

/** A raw GET with exactly the Host header given (fetch would not send a foreign one). */
function getWithHost(
  app: TestApp,
  path: string,
  host: string | undefined,
): Promise<{ status: number; body: string }> {
  const [, port] = app.host.split(':');
  return new Promise((resolve, reject) => {
    const request = httpRequest({
      host: '127.0.0.1',
      port: Number(port),
      path,
      method: 'GET',
      setHost: false,
    });
    if (host !== undefined) request.setHeader('host', host);
    request.on('response', (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

const rebinding = suite('development mode: Host check (DNS rebinding)');

rebinding('a Host that is not localhost, 127.0.0.1 or [::1] gets 421, the outbox included', async () => {
  const app = await startTestApp();
  try {
    const port = app.host.split(':')[1] as string;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) {
      const reply = await getWithHost(app, '/healthz', host);
      assert.is(reply.status, 200, host);
    }
    for (const host of [
      `evil.example:${port}`,
      'evil.example',
      `127.0.0.1.nip.io:${port}`,
      `10.0.0.5:${port}`,
    ]) {
      for (const path of ['/healthz', '/dev/outbox?to=a@example.com', '/', '/auth/me']) {
        const reply = await getWithHost(app, `${path}`, host);
        assert.is(reply.status, 421, `${host} ${path}`);
        assert.is(JSON.parse(reply.body).error, 'misdirected_request');
      }
    }
  } finally {
    await app.close();
  }
});

rebinding(
  'outside development mode the Host header is not checked (the proxy or TLS names the site)',
  async () => {
    const key = await generateDevelopmentKey();
    const app = await startTestApp({
      // HOST=127.0.0.1 with TRUST_PROXY=1 (the helper's) and no LATCHKEY_DEV: production rules.
      env: { LATCHKEY_DEV: '0', PASETO_SECRET_KEY: key.secret, LATCHKEY_SECRET: ServerSecret.generateText() },
    });
    try {
      assert.is(app.outbox, undefined, 'production: no outbox');
      const reply = await getWithHost(app, '/healthz', 'auth.example.com');
      assert.is(reply.status, 200);
    } finally {
      await app.close();
    }
  },
);

rebinding.run();

const startup = suite('start-up limits');

startup(
  'RESET_MAX_PER_IP at its limit (20000) starts: its derived confirm limit fits the limiter',
  async () => {
    const app = await startTestApp({ env: { RESET_MAX_PER_IP: '20000' } });
    try {
      const reply = await app.client().post('/auth/password-reset/request', { email: 'a@example.com' });
      assert.is(reply.status, 202);
    } finally {
      await app.close();
    }
  },
);

startup.run();

// --- pnpm start under a signal --------------------------------------------------------------------

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

function spawnPnpmStart(): { child: ChildProcess; stdout: () => string; spawned: number[] } {
  const child = spawn('pnpm', ['start'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', PORT: '0', LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr?.resume();
  return { child, stdout: () => out, spawned: [] };
}

async function listeningUrl(stdout: () => string, child: ChildProcess): Promise<string> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const match = /listening on (http:\/\/[^\s]+)/.exec(stdout());
    if (match?.[1] !== undefined) return match[1];
    if (child.exitCode !== null) throw new Error(`pnpm start exited: ${stdout()}`);
    if (performance.now() > deadline) throw new Error(`no start-up line: ${stdout()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Every process below `pid` (pnpm runs scripts in process groups of their own, so a group kill misses
 * them): a failing run ends each by id, so the orphaned server it found does not outlive the test.
 */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    for (const [child, ppid] of parents) {
      if (ppid === parent) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

const pnpmStart = suite('pnpm start');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  pnpmStart(
    `${signal} to the pnpm process stops the server (no orphan left listening) and exits 0`,
    async () => {
      const started = spawnPnpmStart();
      try {
        const url = await listeningUrl(started.stdout, started.child);
        if (started.child.pid !== undefined) started.spawned.push(...descendants(started.child.pid));
        assert.is((await fetch(`${url}/healthz`)).status, 200);
        const exited = once(started.child, 'exit') as Promise<[number | null, string | null]>;
        started.child.kill(signal);
        const timeout = new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`pnpm start did not exit on ${signal}`)), 20_000).unref(),
        );
        const [code] = await Promise.race([exited, timeout]);
        assert.is(code, 0, started.stdout());
        // The server stopped too: nothing listens on its port any more.
        const deadline = performance.now() + 15_000;
        let refused = false;
        while (!refused && performance.now() < deadline) {
          refused = await fetch(`${url}/healthz`).then(
            () => false,
            () => true,
          );
          if (!refused) await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.ok(refused, 'the server still answers after pnpm start was stopped');
        assert.match(started.stdout(), new RegExp(`${signal}: finishing in-flight requests`));
      } finally {
        if (started.child.exitCode === null) started.child.kill('SIGKILL');
        for (const pid of started.spawned) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone (the passing case)
          }
        }
      }
    },
  );
}

pnpmStart.run();
