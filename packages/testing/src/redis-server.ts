import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** True when a `redis-server` binary is on PATH. */
export function hasRedisServer(): boolean {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return probe.status === 0;
}

/** A `redis-server` process this package started, on 127.0.0.1. */
export interface RedisServerHandle {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** The process id while running, else null. */
  readonly pid: number | null;
  /** Stops the process (SIGTERM, then SIGKILL after 2 s) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after {@link RedisServerHandle.stop}), empty. */
  start(): Promise<void>;
}

/** A 3-master Redis Cluster this package started. */
export interface RedisClusterHandle {
  readonly nodes: ReadonlyArray<{ host: '127.0.0.1'; port: number }>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous kill by pid: the servers never outlive the test process, also when a test fails.
  process.on('exit', () => {
    for (const child of running) {
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => process.exit(130));
  }
}

/** A free TCP port on 127.0.0.1 (and, with `bus`, port + 10000 free too, for a cluster bus). */
export async function freePort(bus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (!bus) return port;
    if (port + 10000 > 65535) continue;
    try {
      await listenOnce(port + 10000);
      return port;
    } catch {
      // bus port taken; try another
    }
  }
  throw new Error('no free port found on 127.0.0.1');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const chosen = typeof address === 'object' && address !== null ? address.port : port;
      server.close(() => resolve(chosen));
    });
  });
}

/** Sends one inline command and resolves with the first reply line. */
export function rawCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8');
      const bulk = /^\$(\d+)\r\n/.exec(data);
      const complete =
        bulk === null ? data.includes('\r\n') : data.length >= bulk[0].length + Number(bulk[1]);
      if (complete) {
        clearTimeout(timer);
        socket.destroy();
        resolve(data);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnServer(port: number, dir: string, extra: string[]): ChildProcess {
  installExitHook();
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction',
      '--protected-mode',
      'no',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  child.unref();
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

async function stopChild(child: ChildProcess | null): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a throwaway `redis-server` on a free port of 127.0.0.1 (no persistence, `noeviction`) and
 * resolves once it answers PING. It is killed by pid when the process exits, also on failure.
 */
export async function startRedisServer(): Promise<RedisServerHandle> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-redis-'));
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    if (child !== null && child.exitCode === null && child.signalCode === null) return;
    child = spawnServer(port, dir, []);
    await waitFor(
      async () => (await rawCommand(port, 'PING')).startsWith('+PONG'),
      `redis-server on ${port}`,
    );
  };
  await start();
  return {
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child !== null && child.exitCode === null && child.signalCode === null
        ? (child.pid ?? null)
        : null;
    },
    async stop() {
      await stopChild(child);
      child = null;
    },
    start,
  };
}

/**
 * Starts a 3-master Redis Cluster on free ports (`--cluster-enabled yes`, then
 * `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`) and resolves once every node
 * reports `cluster_state:ok` (about 3 s). Killed by pid when the process exits.
 */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-cluster-'));
  const ports: number[] = [];
  while (ports.length < 3) {
    const port = await freePort(true);
    if (!ports.includes(port)) ports.push(port);
  }
  const children = ports.map((port) =>
    spawnServer(port, dir, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
      '--cluster-node-timeout',
      '3000',
    ]),
  );
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((child) => stopChild(child)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      await waitFor(
        async () => (await rawCommand(port, 'PING')).startsWith('+PONG'),
        `cluster node on ${port}`,
      );
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const port of ports) {
      await waitFor(
        async () => (await rawCommand(port, 'CLUSTER INFO')).includes('cluster_state:ok'),
        `cluster_state:ok on ${port}`,
        20_000,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: ports.map((port) => ({ host: '127.0.0.1' as const, port })), stop };
}
