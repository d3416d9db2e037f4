import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { type ClusterControl, clusterControl, waitForReplicaLinks } from './cluster-control.js';

const run = promisify(execFile);

/** True when a `redis-server` binary is on PATH. */
export function hasRedisServer(): boolean {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return probe.status === 0;
}

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /** Extra `redis-server` arguments, after the defaults (e.g. `['--appendonly', 'yes']`). @default [] */
  readonly args?: readonly string[];
}

/** A `redis-server` process this package started, on 127.0.0.1. */
export interface RedisServerHandle {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** The process id while running, else null. */
  readonly pid: number | null;
  /**
   * Stops the process (SIGTERM, then SIGKILL after 2 s) and waits for it to exit, and removes its
   * temporary directory — unless a snapshot was saved there (`SAVE`), which {@link RedisServerHandle.start}
   * loads; every directory is removed when the process exits. Idempotent.
   */
  stop(): Promise<void>;
  /** Starts it again on the same port (after {@link RedisServerHandle.stop}), empty unless it was saved. */
  start(): Promise<void>;
}

/** A Redis Cluster this package started (three masters, with `{ replicas: 1 }` one replica each). */
export interface RedisClusterHandle extends ClusterControl {
  /** Every node, masters and replicas (any of them works as a start-up node). */
  readonly nodes: ReadonlyArray<{ host: '127.0.0.1'; port: number }>;
  /** Stops every node and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
/** Temporary directories of servers still in use; removed on stop and, at the latest, at exit. */
const tempDirs = new Set<string>();
let exitHookInstalled = false;

/** @internal A fresh temporary directory that is removed at exit unless {@link removeTempDir} ran first. */
export function makeTempDir(name: string): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), `latchkey-${name}-`));
  tempDirs.add(dir);
  return dir;
}

/** @internal */
export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

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
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
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
      const array = /^\*(\d+)\r\n/.exec(data); // an array of N bulk strings: 1 + 2N lines
      const complete =
        bulk !== null
          ? data.length >= bulk[0].length + Number(bulk[1])
          : array !== null
            ? data.endsWith('\r\n') && data.split('\r\n').length - 1 >= 1 + 2 * Number(array[1])
            : data.includes('\r\n');
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

/** @internal Polls `check` every 50 ms until it is true, or throws after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** @internal Spawns `redis-server` with `args` (stdio ignored); the process is killed by pid at exit. */
export function spawnTracked(args: string[]): ChildProcess {
  installExitHook();
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  child.unref();
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** @internal Spawns a `redis-server` (no persistence, `noeviction`) killed by pid at exit. */
export function spawnServer(port: number, dir: string, extra: string[]): ChildProcess {
  return spawnTracked([
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
    // Every node of a deployment shares `dir`: its own RDB name keeps one node's full-sync file from
    // being loaded by another, or by itself when it is started again.
    '--dbfilename',
    `dump-${port}.rdb`,
    '--logfile',
    join(dir, `redis-${port}.log`),
    '--maxmemory-policy',
    'noeviction',
    '--protected-mode',
    'no',
    ...extra,
  ]);
}

/** @internal The last `lines` lines of the log {@link spawnServer} writes for `port` in `dir` ('' when none). */
export function serverLogTail(dir: string, port: number, lines = 30): string {
  return logTail(join(dir, `redis-${port}.log`), lines);
}

/** @internal The last `lines` lines of a log file, headed by its name ('' when it cannot be read). */
export function logTail(file: string, lines = 30): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return `${basename(file)} (last ${lines} lines):\n${text}`;
  } catch {
    return '';
  }
}

/** @internal SIGCONT for a child that may be frozen (harmless otherwise). */
export function resumeChild(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGCONT');
  } catch {
    // already gone
  }
}

/** @internal SIGTERM, then SIGKILL after 2 s; resolves when the process is gone. */
export async function stopChild(child: ChildProcess | null): Promise<void> {
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
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const port = await freePort();
  const dir = makeTempDir('redis');
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    if (child !== null && child.exitCode === null && child.signalCode === null) return;
    mkdirSync(dir, { recursive: true });
    tempDirs.add(dir);
    child = spawnServer(port, dir, [...(options.args ?? [])]);
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
      // A snapshot the test saved is what a later start() loads; the exit hook removes it then.
      if (!existsSync(join(dir, `dump-${port}.rdb`)) && !existsSync(join(dir, 'appendonlydir')))
        removeTempDir(dir);
    },
    start,
  };
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /**
   * Replicas per master: 0 (three masters) or 1 (three masters and three replicas, for failover tests).
   * @default 0
   */
  readonly replicas?: 0 | 1;
  /** `cluster-node-timeout` in ms (how soon a dead master is noticed). @default 3000, 2000 with replicas */
  readonly nodeTimeoutMs?: number;
}

/**
 * Starts a Redis Cluster of three masters (and, with `{ replicas: 1 }`, one replica each) on free
 * ports (`--cluster-enabled yes`, then `redis-cli --cluster create … --cluster-yes`) and resolves once
 * every node reports `cluster_state:ok` (about 3 s) and every replica's link is up. Killed by pid when
 * the process exits; its temporary directory is removed on stop and at exit.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const replicas = options.replicas ?? 0;
  if (replicas !== 0 && replicas !== 1) throw new Error('startRedisCluster: replicas must be 0 or 1');
  const nodeTimeoutMs = options.nodeTimeoutMs ?? (replicas === 0 ? 3000 : 2000);
  const dir = makeTempDir('cluster');
  const ports: number[] = [];
  while (ports.length < 3 * (1 + replicas)) {
    const port = await freePort(true);
    if (!ports.includes(port)) ports.push(port);
  }
  const children = new Map<number, ChildProcess>();
  const spawnNode = (port: number): ChildProcess => {
    const child = spawnServer(port, dir, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
      '--cluster-node-timeout',
      String(nodeTimeoutMs),
    ]);
    children.set(port, child);
    return child;
  };
  for (const port of ports) spawnNode(port);
  const stop = async (): Promise<void> => {
    for (const child of children.values()) resumeChild(child); // a SIGSTOPped node ignores SIGTERM
    await Promise.all([...children.values()].map((child) => stopChild(child)));
    removeTempDir(dir);
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
      String(replicas),
      '--cluster-yes',
    ]);
    for (const port of ports) {
      await waitFor(
        async () => (await rawCommand(port, 'CLUSTER INFO')).includes('cluster_state:ok'),
        `cluster_state:ok on ${port}`,
        20_000,
      );
    }
    if (replicas > 0) await waitForReplicaLinks(ports);
  } catch (error) {
    await stop();
    throw error;
  }
  const handle: RedisClusterHandle = {
    nodes: ports.map((port) => ({ host: '127.0.0.1' as const, port })),
    stop,
    ...clusterControl(ports, children, spawnNode, (port) => serverLogTail(dir, port)),
  };
  return handle;
}
