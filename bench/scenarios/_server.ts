// What every scenario server shares: its environment, one ioredis client with a command counter, the
// HTTP server on 127.0.0.1, and the IPC protocol with the runner (ready → stats → stop).
//
//   BENCH_PORT        port on 127.0.0.1 to listen on
//   BENCH_REDIS_URL   the bench's own redis-server
//   BENCH_PREFIX      key prefix of this scenario (scenarios never share keys)
//   BENCH_MODE        a variant of the scenario (plain / rolling, cache / nocache, …)
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Session } from 'node:inspector/promises';
import { Redis } from 'ioredis';

export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

export interface ScenarioEnv {
  readonly port: number;
  readonly redisUrl: string;
  readonly prefix: string;
  readonly mode: string;
}

export function scenarioEnv(): ScenarioEnv {
  const port = Number(process.env['BENCH_PORT']);
  const redisUrl = process.env['BENCH_REDIS_URL'] ?? '';
  if (!Number.isInteger(port) || port <= 0 || !redisUrl.startsWith('redis://127.0.0.1:')) {
    throw new Error('a scenario runs under bench/src/main.ts (BENCH_PORT, BENCH_REDIS_URL on 127.0.0.1)');
  }
  return {
    port,
    redisUrl,
    prefix: process.env['BENCH_PREFIX'] ?? 'bench',
    mode: process.env['BENCH_MODE'] ?? '',
  };
}

/** Counts what this process sends to Redis; a script call counts once. */
let roundTrips = 0;

/**
 * One ioredis 5 client with default options (every scenario uses the same client and settings), its
 * round trips counted: one integer increment per command, so the counter costs nothing measurable.
 */
export function connectRedis(env: ScenarioEnv): Redis {
  const redis = new Redis(env.redisUrl, { lazyConnect: false });
  const target = redis as unknown as { sendCommand: (...args: unknown[]) => unknown };
  const original = target.sendCommand;
  target.sendCommand = function counted(this: unknown, ...args: unknown[]) {
    roundTrips++;
    return original.apply(this, args);
  };
  return redis;
}

/**
 * Listens on 127.0.0.1:BENCH_PORT, tells the runner it is ready, answers its `stats` requests with
 * the round-trip count, and exits on `stop` (or when the runner goes away).
 */
export function serve(listener: Listener, closables: ReadonlyArray<{ quit(): Promise<unknown> }>): void {
  const env = scenarioEnv();
  const server = createServer(listener);
  server.keepAliveTimeout = 65_000;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections();
    server.close();
    // A normal exit, so that --cpu-prof can write its profile.
    void Promise.allSettled(closables.map((c) => c.quit())).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  let profiler: Session | null = null;
  process.on('message', (message: unknown) => {
    const m = (message ?? {}) as { type?: unknown; file?: unknown };
    if (m.type === 'stats') {
      const cpu = process.cpuUsage();
      process.send?.({ type: 'stats', roundTrips, cpuMicros: cpu.user + cpu.system });
    } else if (m.type === 'profile-start') {
      void startProfile().then((session) => {
        profiler = session;
        process.send?.({ type: 'profile-started' });
      });
    } else if (m.type === 'profile-stop' && typeof m.file === 'string') {
      const file = m.file;
      const session = profiler;
      profiler = null;
      void (session === null ? Promise.resolve() : stopProfile(session, file)).then(() =>
        process.send?.({ type: 'profile-stopped' }),
      );
    } else if (m.type === 'stop') stop();
  });
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  server.listen(env.port, '127.0.0.1', () => process.send?.({ type: 'ready' }));
}

/** The V8 sampling profiler over exactly the measured window (BENCH_CPU_PROF). */
async function startProfile(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return session;
}

async function stopProfile(session: Session, file: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
}

/** A tiny JSON answer for `/__setup` (the runner merges `headers` into every request it sends). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The synthetic client of the n-th login check: an address of 198.18.0.0/15 (RFC 2544, reserved for
 * benchmarks; only ever a string here, never contacted) and an account name. 131,072 addresses and
 * 100,003 accounts keep every bucket below the default limits for a whole run, so no scenario
 * measures the cheaper "blocked" path.
 */
export function syntheticClient(n: number): { ip: string; account: string } {
  const a = n % 131_072;
  const ip = `198.${18 + (a >> 16)}.${(a >> 8) & 255}.${a & 255}`;
  return { ip, account: `user${n % 100_003}@example.com` };
}
