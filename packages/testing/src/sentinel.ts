import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeSignals } from './cluster-control.js';
import {
  freePort,
  logTail,
  makeTempDir,
  rawCommand,
  removeTempDir,
  resumeChild,
  serverLogTail,
  spawnServer,
  spawnTracked,
  stopChild,
  waitFor,
} from './redis-server.js';

/** Options of {@link startRedisSentinel}. */
export interface RedisSentinelOptions {
  /** The monitored master's name. @default 'latchkey' */
  readonly name?: string;
  /**
   * `down-after-milliseconds`: how long a master may be silent before it counts as down. Keep it well
   * above one second: a Sentinel pings each instance once a second, and a master it just learned of (after
   * every failover) starts on a fresh link — at 1000 ms a healthy, just-promoted master on a busy machine
   * was marked down and failed over again, to the empty node the test had just restarted. @default 5000
   */
  readonly downAfterMs?: number;
}

/** One master, one replica and three Sentinels this package started on 127.0.0.1. */
export interface RedisSentinelHandle {
  /** The master group's name (ioredis's `name` option). */
  readonly name: string;
  /** The three Sentinels (ioredis's `sentinels` option). */
  readonly sentinels: ReadonlyArray<{ host: '127.0.0.1'; port: number }>;
  /** The two data nodes' ports (which one is master changes with each failover). */
  readonly ports: readonly number[];
  /** The master's port as the Sentinels report it now. */
  master(): Promise<number>;
  /** The data node that is not the master. */
  replica(): Promise<number>;
  /** SIGKILLs the data node on `port` at once (synchronous). */
  kill(port: number): void;
  /**
   * Waits until the Sentinels promoted the other node after the master on `port` was killed: every
   * Sentinel names it and it reports `role:master`. By default a Sentinel is told `SENTINEL FAILOVER`
   * (about 1 s); with `natural: true` the Sentinels' own detection does it (`downAfterMs` + election).
   * @returns the new master's port and how long the promotion took, in ms
   */
  awaitPromotion(port: number, options?: { natural?: boolean }): Promise<{ port: number; ms: number }>;
  /** Starts a killed data node again (empty) as a replica of the current master; resolves once synced. */
  restart(port: number): Promise<void>;
  /** SIGSTOPs the data node on `port`. */
  pause(port: number): void;
  /** SIGCONTs it. */
  resume(port: number): void;
  /** Stops every process and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a Sentinel deployment for failover tests: a master, a replica of it and three Sentinels
 * (`redis-server <conf> --sentinel`, quorum 2), all on free ports of 127.0.0.1, and resolves once the
 * replica's link is up and the Sentinels report `CKQUORUM` OK with three usable Sentinels (~3 s).
 * Killed by pid at exit; the temporary directory is removed on stop and at exit.
 *
 * @example
 * const sentinel = await startRedisSentinel();
 * const redis = new Redis({ sentinels: [...sentinel.sentinels], name: sentinel.name });
 * const master = await sentinel.master();
 * sentinel.kill(master);
 * await sentinel.awaitPromotion(master);
 */
export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  const name = options.name ?? 'latchkey';
  const downAfterMs = options.downAfterMs ?? 5000;
  const dir = makeTempDir('sentinel');
  const ports: number[] = [];
  const sentinelPorts: number[] = [];
  while (ports.length + sentinelPorts.length < 5) {
    const port = await freePort();
    if (ports.includes(port) || sentinelPorts.includes(port)) continue;
    (ports.length < 2 ? ports : sentinelPorts).push(port);
  }
  const [first, second] = ports as [number, number];
  const children = new Map<number, ChildProcess>();
  // A restart that fails reports the node's log and what each Sentinel logged (failovers, votes).
  const nodes = nodeSignals(children, (port) =>
    [serverLogTail(dir, port), ...sentinelPorts.map((p) => logTail(join(dir, `sentinel-${p}.log`)))].join(
      '\n',
    ),
  );
  const startData = (port: number, masterPort: number | null): void => {
    const extra = masterPort === null ? [] : ['--replicaof', '127.0.0.1', String(masterPort)];
    children.set(port, spawnServer(port, dir, extra));
  };
  const stop = async (): Promise<void> => {
    for (const child of children.values()) resumeChild(child);
    await Promise.all([...children.values()].map((child) => stopChild(child)));
    removeTempDir(dir);
  };
  const ask = (command: string): Promise<string> =>
    firstAnswer(sentinelPorts.map((port) => () => rawCommand(port, command)));
  const masterPort = async (sentinelPort?: number): Promise<number> => {
    const reply =
      sentinelPort === undefined
        ? await ask(`SENTINEL get-master-addr-by-name ${name}`)
        : await rawCommand(sentinelPort, `SENTINEL get-master-addr-by-name ${name}`);
    const port = Number(reply.trim().split('\r\n').at(-1));
    if (!Number.isInteger(port)) throw new Error(`unexpected Sentinel reply ${JSON.stringify(reply)}`);
    return port;
  };
  try {
    startData(first, null);
    startData(second, first);
    await waitFor(
      async () => (await rawCommand(second, 'INFO replication')).includes('master_link_status:up'),
      `replica on ${second}`,
      60_000, // a full sync forks; on a loaded machine that can take long
    );
    for (const port of sentinelPorts) {
      const file = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          `dir ${dir}`,
          `logfile ${join(dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${name} 127.0.0.1 ${first} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      children.set(port, spawnTracked([file, '--sentinel']));
    }
    for (const port of sentinelPorts) {
      await waitFor(
        async () =>
          (await rawCommand(port, `SENTINEL CKQUORUM ${name}`)).includes('3 usable') &&
          !(await rawCommand(port, `SENTINEL REPLICAS ${name}`)).startsWith('*0'),
        `Sentinel on ${port}`,
        20_000,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const other = (port: number): number => (port === first ? second : first);
  return {
    name,
    sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1' as const, port })),
    ports: [first, second],
    master: () => masterPort(),
    async replica() {
      return other(await masterPort());
    },
    kill: nodes.kill,
    async awaitPromotion(port, promotion = {}) {
      const started = performance.now();
      const next = other(port);
      if (promotion.natural !== true) {
        await waitFor(async () => {
          const reply = await ask(`SENTINEL FAILOVER ${name}`);
          return reply.startsWith('+OK') || reply.startsWith('-INPROG') || (await masterPort()) === next;
        }, `SENTINEL FAILOVER ${name}`);
      }
      await waitFor(
        async () => {
          for (const sentinelPort of sentinelPorts) {
            if ((await masterPort(sentinelPort)) !== next) return false;
          }
          return (await rawCommand(next, 'INFO replication')).includes('role:master');
        },
        `promotion of ${next}`,
        30_000,
      );
      return { port: next, ms: Math.round(performance.now() - started) };
    },
    restart: (port) =>
      nodes.restart(port, async () => {
        // A node told to replicate itself would wait for a link that never comes up.
        let master = port;
        await waitFor(
          async () => {
            master = await masterPort();
            return master !== port;
          },
          `Sentinel naming a master other than the killed node on ${port}`,
          30_000,
        );
        startData(port, master);
      }),
    pause: nodes.pause,
    resume: nodes.resume,
    stop,
  };
}

async function firstAnswer(attempts: Array<() => Promise<string>>): Promise<string> {
  let last: unknown = new Error('no Sentinel');
  for (const attempt of attempts) {
    try {
      return await attempt();
    } catch (error) {
      last = error;
    }
  }
  throw last;
}
