import type { ChildProcess } from 'node:child_process';
import { rawCommand, waitFor } from './redis-server.js';

/** Kill, freeze and promote nodes of a cluster started by `startRedisCluster`, for failover tests. */
export interface ClusterControl {
  /** The port of the master that serves `key`'s slot now (hash tags honoured). */
  masterOf(key: string): Promise<number>;
  /** The ports of the replicas of the master on `port`. */
  replicasOf(port: number): Promise<number[]>;
  /**
   * SIGKILLs the node on `port` at once (synchronously: call it right after the acknowledgement you
   * want to test). Use {@link ClusterControl.awaitPromotion} next, and {@link ClusterControl.restart}
   * to bring the node back.
   */
  kill(port: number): void;
  /**
   * Waits until a replica of the killed master on `port` serves its slots and every live node agrees.
   * By default the replica is told `CLUSTER FAILOVER TAKEOVER` (about 0.5 s); with `natural: true` the
   * cluster's own failure detection does it (node timeout + election, a few seconds).
   * @returns the promoted node's port and how long the promotion took, in ms
   */
  awaitPromotion(port: number, options?: { natural?: boolean }): Promise<{ port: number; ms: number }>;
  /** Starts a killed node again (empty); it rejoins as a replica. Resolves once its link is up. */
  restart(port: number): Promise<void>;
  /** SIGSTOPs the node on `port` (a frozen server: connections stay open, nothing answers). */
  pause(port: number): void;
  /** SIGCONTs a paused node. */
  resume(port: number): void;
}

/** The hash slot of a key (CRC16/XMODEM of the key or its hash tag, mod 16384). */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

interface NodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: string[];
  readonly masterId: string;
  readonly ranges: Array<[number, number]>;
}

async function clusterNodes(port: number): Promise<NodeLine[]> {
  const text = await rawCommand(port, 'CLUSTER NODES');
  const lines = text.split('\r\n').slice(1).join('\n').split('\n');
  const out: NodeLine[] = [];
  for (const line of lines) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const port = Number(/:(\d+)@/.exec(parts[1] ?? '')?.[1]);
    const ranges: Array<[number, number]> = [];
    for (const range of parts.slice(8)) {
      if (range.startsWith('[')) continue; // slot in migration
      const [from, to] = range.split('-').map(Number);
      if (from !== undefined && Number.isInteger(from)) ranges.push([from, to ?? from]);
    }
    out.push({
      id: parts[0] ?? '',
      port,
      flags: (parts[2] ?? '').split(','),
      masterId: parts[3] ?? '-',
      ranges,
    });
  }
  return out;
}

const isMaster = (node: NodeLine): boolean => node.flags.includes('master') && !node.flags.includes('fail');

/** Resolves once every replica among `ports` reports `master_link_status:up`. */
export async function waitForReplicaLinks(ports: readonly number[], timeoutMs = 60_000): Promise<void> {
  for (const port of ports) {
    await waitFor(
      async () => {
        const info = await rawCommand(port, 'INFO replication');
        return info.includes('role:master') || info.includes('master_link_status:up');
      },
      `replica link on ${port}`,
      timeoutMs,
    );
  }
}

/**
 * @internal SIGKILL / SIGSTOP / SIGCONT of data nodes by port, remembering which are dead or paused, and
 * the restart of a killed one as a replica (shared by the cluster and the Sentinel deployment).
 */
export function nodeSignals(children: Map<number, ChildProcess>, logTail?: (port: number) => string) {
  const dead = new Set<number>();
  const paused = new Set<number>();
  const signal = (port: number, name: NodeJS.Signals): void => {
    const pid = children.get(port)?.pid;
    if (pid === undefined) throw new Error(`no node on port ${port}`);
    process.kill(pid, name);
  };
  return {
    dead,
    paused,
    kill(port: number): void {
      signal(port, 'SIGKILL');
      dead.add(port);
    },
    pause(port: number): void {
      signal(port, 'SIGSTOP');
      paused.add(port);
    },
    resume(port: number): void {
      signal(port, 'SIGCONT');
      paused.delete(port);
    },
    /** Starts a killed node with `spawn` (after its old process is gone); resolves once it is a synced replica. */
    async restart(port: number, spawn: () => Promise<void> | void): Promise<void> {
      const child = children.get(port);
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        if (!dead.has(port)) return;
        await new Promise((resolve) => child.once('exit', resolve));
      }
      await spawn();
      dead.delete(port);
      let info = '';
      try {
        await waitFor(
          async () => {
            info = await rawCommand(port, 'INFO replication');
            return info.includes('role:slave') && info.includes('master_link_status:up');
          },
          `node on ${port} back as a replica`,
          60_000, // a full sync forks on the master; on a loaded machine that can take long
        );
      } catch (error) {
        // What the node said and logged is what explains a sync that never finished.
        const said = info.split('\r\n').filter((line) => /^(role|master_|slave_)/.test(line));
        throw new Error(`${(error as Error).message}\n${said.join('\n')}\n${logTail?.(port) ?? ''}`);
      }
    },
  };
}

/** @internal The {@link ClusterControl} of a cluster's processes. */
export function clusterControl(
  ports: readonly number[],
  children: Map<number, ChildProcess>,
  spawnNode: (port: number) => ChildProcess,
  logTail?: (port: number) => string,
): ClusterControl {
  const nodes = nodeSignals(children, logTail);
  const { dead, paused } = nodes;
  const live = (): number[] => ports.filter((port) => !dead.has(port) && !paused.has(port));
  const view = async (): Promise<NodeLine[]> => {
    for (const port of live()) {
      try {
        return await clusterNodes(port);
      } catch {
        // try the next node
      }
    }
    throw new Error('no cluster node answers');
  };
  return {
    async masterOf(key) {
      const slot = keySlot(key);
      const node = (await view()).find(
        (n) => isMaster(n) && n.ranges.some(([from, to]) => slot >= from && slot <= to),
      );
      if (node === undefined) throw new Error(`no master serves slot ${slot}`);
      return node.port;
    },
    async replicasOf(port) {
      const nodes = await view();
      const master = nodes.find((n) => n.port === port);
      if (master === undefined) return [];
      return nodes.filter((n) => n.masterId === master.id).map((n) => n.port);
    },
    kill: nodes.kill,
    async awaitPromotion(port, options = {}) {
      const started = performance.now();
      const nodes = await view();
      const master = nodes.find((n) => n.port === port);
      const replica = nodes.find(
        (n) => master !== undefined && n.masterId === master.id && !dead.has(n.port),
      );
      if (master === undefined || replica === undefined) throw new Error(`no live replica of ${port}`);
      if (options.natural !== true) {
        await waitFor(
          async () => (await rawCommand(replica.port, 'CLUSTER FAILOVER TAKEOVER')).startsWith('+OK'),
          `CLUSTER FAILOVER TAKEOVER on ${replica.port}`,
        );
      }
      const slots = master.ranges;
      await waitFor(
        async () => {
          for (const at of live()) {
            const seen = await clusterNodes(at);
            const owner = seen.find((n) => n.port === replica.port);
            if (owner === undefined || !isMaster(owner)) return false;
            const covers = slots.every(([from, to]) => owner.ranges.some(([a, b]) => a <= from && b >= to));
            if (!covers) return false;
            if (!(await rawCommand(at, 'CLUSTER INFO')).includes('cluster_state:ok')) return false;
          }
          return true;
        },
        `promotion of ${replica.port}`,
        30_000,
      );
      return { port: replica.port, ms: Math.round(performance.now() - started) };
    },
    restart: (port) =>
      nodes.restart(port, () => {
        spawnNode(port);
      }),
    pause: nodes.pause,
    resume: nodes.resume,
  };
}
