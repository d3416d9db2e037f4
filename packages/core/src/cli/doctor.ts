import type { Redis } from 'ioredis';
import { DEFAULT_SKEW_MARGIN_MS } from '../revocation-list.js';
import {
  close,
  connectNode,
  connectSentinel,
  describeTarget,
  hostPort,
  reason,
  type Target,
} from './connect.js';
import { type CliIo, CommandFailed, EXIT_FAILED, EXIT_OK, json, printable } from './io.js';

/** One finding. `fail` makes the exit status 1; `warn` explains a risk the operator may accept. */
export interface Finding {
  readonly check: string;
  readonly status: 'ok' | 'warn' | 'fail';
  /** The node it is about (`host:port`), or absent for the deployment as a whole. */
  readonly node?: string;
  readonly message: string;
}

/** The oldest Redis release line latchkey supports (the test suite runs on 7.x). */
const MIN_VERSION = [6, 2] as const;
/** Clock skew above this is worth a look; above the skew margin of the stores it is a failure. */
const SKEW_WARN_MS = 1000;
const SKEW_FAIL_MS = DEFAULT_SKEW_MARGIN_MS;
const CLUSTER_SLOTS = 16384;

/**
 * `doctor`: checks a Redis (or every master of a Cluster) for what latchkey needs and explains what
 * each setting means for revocations. `waitReplicas` is the `durability.replicas` the deployment uses
 * or means to use (`--wait-replicas`, `REDIS_WAIT_REPLICAS`).
 */
export async function doctor(
  io: CliIo,
  target: Target,
  waitReplicas: number,
  asJson: boolean,
): Promise<number> {
  const findings: Finding[] = [];
  const clients: Redis[] = [];
  try {
    const masters = await discover(target, findings, clients);
    for (const master of masters) {
      await nodeChecks(master.client, master.name, waitReplicas, findings, target.kind !== 'cluster');
    }
  } finally {
    await Promise.all(clients.map((c) => close(c)));
  }
  const failed = findings.filter((f) => f.status === 'fail').length;
  const warned = findings.filter((f) => f.status === 'warn').length;
  if (asJson) {
    io.out(json({ target: describeTarget(target), ok: failed === 0, findings }));
  } else {
    io.out(`latchkey doctor: ${describeTarget(target)}\n`);
    const width = Math.max(...findings.map((f) => f.check.length));
    const nodeWidth = Math.max(0, ...findings.map((f) => (f.node ?? '').length));
    for (const f of findings) {
      const status = f.status === 'fail' ? 'FAIL' : f.status;
      io.out(
        `${status.padEnd(5)} ${f.check.padEnd(width)}  ${(f.node ?? '').padEnd(nodeWidth)}  ${printable(f.message)}\n`,
      );
    }
    io.out(
      failed === 0
        ? `no failing check${warned > 0 ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}\n`
        : `${failed} failing check${failed === 1 ? '' : 's'}, ${warned} warning${warned === 1 ? '' : 's'}\n`,
    );
  }
  return failed === 0 ? EXIT_OK : EXIT_FAILED;
}

interface Master {
  readonly name: string;
  readonly client: Redis;
}

/**
 * The nodes to check: the one server of `--redis`, or every master that `CLUSTER NODES` names (read
 * from the first start-up node that answers), with the Cluster's slot coverage checked on the way.
 * Plain connections, not a Cluster client: a Cluster with uncovered slots must still be diagnosed.
 */
async function discover(target: Target, findings: Finding[], clients: Redis[]): Promise<Master[]> {
  if (target.kind === 'url') {
    const client = await connectNode(target.url, describeTarget(target));
    clients.push(client);
    const { host, port } = client.options;
    return [{ name: hostPort({ host: host ?? 'localhost', port: port ?? 6379 }), client }];
  }
  if (target.kind === 'sentinel') {
    // The master the Sentinels name now (its replicas are checked through its INFO).
    const client = await connectSentinel(target);
    clients.push(client);
    const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
    const address =
      stream?.remoteAddress !== undefined && stream.remotePort !== undefined
        ? hostPort({ host: stream.remoteAddress, port: stream.remotePort })
        : `master "${target.name}"`;
    return [{ name: address, client }];
  }
  let seed: Redis | undefined;
  let seedAddress = target.nodes[0] ?? { host: '127.0.0.1', port: 6379 };
  let lastError: unknown;
  for (const node of target.nodes) {
    try {
      seed = await connectNode(node, hostPort(node));
      seedAddress = node;
      break;
    } catch (error) {
      lastError = error;
    }
  }
  if (seed === undefined) {
    throw new CommandFailed(`cannot reach ${describeTarget(target)}: ${reason(lastError)}`);
  }
  clients.push(seed);
  let text: string;
  try {
    text = String(await seed.call('CLUSTER', 'NODES'));
  } catch (error) {
    throw new CommandFailed(`${hostPort(seedAddress)} is not a Cluster node: ${reason(error)}`);
  }
  const nodes = parseClusterNodes(text, seedAddress);
  slotCoverage(nodes, findings);
  const masters: Master[] = [];
  for (const node of nodes.filter((n) => n.master)) {
    const name = hostPort(node);
    const isSeed = node.host === seedAddress.host && node.port === seedAddress.port;
    try {
      const client = isSeed ? seed : await connectNode(node, name);
      if (!isSeed) clients.push(client);
      masters.push({ name, client });
    } catch (error) {
      findings.push({ check: 'reachable', status: 'fail', node: name, message: reason(error) });
    }
  }
  return masters;
}

interface ClusterNode {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly master: boolean;
  readonly failing: boolean;
  /** The master's id, for a replica. */
  readonly masterId: string;
  readonly slots: ReadonlyArray<readonly [number, number]>;
}

/** `CLUSTER NODES`: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`. */
function parseClusterNodes(text: string, seed: { host: string; port: number }): ClusterNode[] {
  const nodes: ClusterNode[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id = '', address = '', flagText = '', masterId = '-'] = parts;
    const flags = flagText.split(',');
    const match = /^(.*):(\d+)@/.exec(address);
    const myself = flags.includes('myself');
    const host = match?.[1] !== undefined && match[1] !== '' ? match[1] : myself ? seed.host : '';
    const port = match?.[2] !== undefined && Number(match[2]) > 0 ? Number(match[2]) : myself ? seed.port : 0;
    const slots: Array<readonly [number, number]> = [];
    for (const slot of parts.slice(8)) {
      if (slot.startsWith('[')) continue; // a slot being migrated or imported
      const [from, to] = slot.split('-').map(Number);
      if (from !== undefined && Number.isInteger(from)) slots.push([from, to ?? from]);
    }
    nodes.push({
      id,
      host,
      port,
      master: flags.includes('master'),
      failing: flags.includes('fail') || flags.includes('fail?') || flags.includes('noaddr'),
      masterId,
      slots,
    });
  }
  return nodes;
}

/** Every one of the 16384 slots must belong to a master that is not failing. */
function slotCoverage(nodes: readonly ClusterNode[], findings: Finding[]): void {
  const covered = new Uint8Array(CLUSTER_SLOTS);
  const healthy = nodes.filter((n) => n.master && !n.failing);
  for (const node of healthy) {
    for (const [from, to] of node.slots)
      covered.fill(1, Math.max(0, from), Math.min(CLUSTER_SLOTS - 1, to) + 1);
  }
  const missing: string[] = [];
  for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
    if (covered[slot] === 1) continue;
    let end = slot;
    while (end + 1 < CLUSTER_SLOTS && covered[end + 1] === 0) end++;
    missing.push(slot === end ? String(slot) : `${slot}-${end}`);
    slot = end;
  }
  const failing = nodes.filter((n) => n.master && n.failing).map(hostPort);
  if (missing.length === 0) {
    findings.push({
      check: 'cluster slots',
      status: 'ok',
      message: `all ${CLUSTER_SLOTS} slots are served by ${healthy.length} master${healthy.length === 1 ? '' : 's'}`,
    });
  } else {
    findings.push({
      check: 'cluster slots',
      status: 'fail',
      message:
        `slots ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''} have no healthy master` +
        `${failing.length > 0 ? ` (failing: ${failing.join(', ')})` : ''}: users whose keys hash there get 503`,
    });
  }
}

/** INFO text → field map. */
function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n').join('\n').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

async function configGet(client: Redis, name: string): Promise<string | undefined> {
  try {
    const reply: unknown = await client.config('GET', name);
    return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
  } catch {
    return undefined; // managed services often disable CONFIG
  }
}

async function nodeChecks(
  client: Redis,
  node: string,
  waitReplicas: number,
  findings: Finding[],
  single: boolean,
): Promise<void> {
  const add = (check: string, status: Finding['status'], message: string): void => {
    findings.push({ check, status, node, message });
  };
  let info: Map<string, string>;
  try {
    const started = performance.now();
    info = parseInfo(await client.info());
    add('reachable', 'ok', `INFO answered in ${(performance.now() - started).toFixed(1)} ms`);
  } catch (error) {
    add('reachable', 'fail', reason(error));
    return;
  }

  const version = info.get('redis_version') ?? 'unknown';
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const tooOld = major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1]);
  add(
    'version',
    tooOld ? 'fail' : 'ok',
    tooOld
      ? `Redis ${version}: latchkey needs ${MIN_VERSION.join('.')} or later`
      : `Redis ${version}${major < 7 || (major === 7 && minor < 2) ? ' (durability.fsync needs 7.2: WAITAOF)' : ''}`,
  );

  if (single && info.get('cluster_enabled') === '1') {
    add('cluster', 'warn', 'this node belongs to a Cluster: run doctor with --cluster to check every master');
  }

  const policy = await configGet(client, 'maxmemory-policy');
  if (policy === undefined) {
    add('maxmemory-policy', 'warn', 'could not read it (CONFIG is disabled?): make sure it is noeviction');
  } else if (policy === 'noeviction') {
    add('maxmemory-policy', 'ok', 'noeviction: a full Redis refuses writes (503s) rather than dropping keys');
  } else {
    add(
      'maxmemory-policy',
      'fail',
      `${policy}: under memory pressure Redis may evict revoked-token records, marks and counters and so re-open what latchkey closed; set noeviction`,
    );
  }

  const aof = info.get('aof_enabled') === '1';
  const fsync = aof ? await configGet(client, 'appendfsync') : undefined;
  const save = await configGet(client, 'save');
  if (aof && fsync === 'always') {
    add('persistence', 'ok', 'AOF with appendfsync always: an acknowledged revocation survives a crash');
  } else if (aof && (fsync === 'everysec' || fsync === undefined)) {
    add(
      'persistence',
      'ok',
      'AOF (appendfsync everysec): a crash loses at most about 1 s of writes; a revocation from that second can come back',
    );
  } else if (aof) {
    add(
      'persistence',
      'warn',
      `AOF with appendfsync ${fsync}: the OS decides when writes reach the disk, so a crash can bring back revoked sessions; use everysec`,
    );
  } else if (save !== undefined && save.trim() !== '') {
    add(
      'persistence',
      'warn',
      'RDB snapshots only: a restart or restore brings back sessions and refresh tokens revoked after the snapshot; use AOF, or revoke again after a restore',
    );
  } else if (save === undefined) {
    add('persistence', 'warn', 'no AOF, and the RDB schedule could not be read (CONFIG is disabled?)');
  } else {
    add(
      'persistence',
      'warn',
      'none: a restart logs everyone out (safe) but also forgets revoked access tokens (accepted again until they expire) and login counters',
    );
  }

  const role = info.get('role');
  if (role !== 'master') {
    add(
      'replication',
      'fail',
      `this node is a ${role ?? 'non-master'} (read-only): point latchkey at the master`,
    );
  } else {
    let online = 0;
    let maxLag = 0;
    for (const [field, value] of info) {
      if (!/^slave\d+$/.test(field)) continue;
      if (/state=online/.test(value)) online++;
      maxLag = Math.max(maxLag, Number(/lag=(\d+)/.exec(value)?.[1] ?? 0));
    }
    const attached = Number(info.get('connected_slaves') ?? 0);
    const lag = online > 0 ? ` (largest lag ${maxLag} s)` : '';
    if (waitReplicas > 0 && online < waitReplicas) {
      add(
        'replication',
        'fail',
        `durability.replicas ${waitReplicas} cannot work: ${online} replica${online === 1 ? '' : 's'} online; every revocation would answer 503`,
      );
    } else if (waitReplicas > 0) {
      add(
        'replication',
        'ok',
        `${online} replica${online === 1 ? '' : 's'} online${lag}: durability.replicas ${waitReplicas} can be met${online === waitReplicas ? ', but revocations answer 503 while one is down' : ''}`,
      );
    } else if (attached === 0) {
      add(
        'replication',
        'ok',
        'no replicas: no failover can lose a revocation (nor take over if this node dies)',
      );
    } else {
      add(
        'replication',
        'warn',
        `${online} replica${online === 1 ? '' : 's'} online${lag}, replication is asynchronous: a revocation acknowledged just before a failover can be lost; set durability: { replicas: 1 } (REDIS_WAIT_REPLICAS=1; at most ${online})`,
      );
    }
  }

  try {
    const before = Date.now();
    const reply: unknown = await client.time();
    const after = Date.now();
    const [sec, usec] = Array.isArray(reply) ? reply.map(Number) : [];
    if (sec === undefined || usec === undefined || !Number.isFinite(sec) || !Number.isFinite(usec)) {
      throw new Error('unexpected TIME reply');
    }
    const skew = Math.round(sec * 1000 + usec / 1000 - (before + after) / 2);
    const within = Math.ceil((after - before) / 2);
    const text = `Redis is ${Math.abs(skew)} ms ${skew >= 0 ? 'ahead of' : 'behind'} this machine (± ${within} ms)`;
    if (Math.abs(skew) > SKEW_FAIL_MS) {
      add(
        'clock',
        'fail',
        `${text}: more than the ${SKEW_FAIL_MS / 1000} s skew margin of revocation records and marks; synchronise the clocks (NTP)`,
      );
    } else if (Math.abs(skew) > SKEW_WARN_MS) {
      add(
        'clock',
        'warn',
        `${text}: validity is decided by the app servers' clocks; keep them within a second of each other`,
      );
    } else {
      add('clock', 'ok', text);
    }
  } catch (error) {
    add('clock', 'warn', `TIME failed: ${reason(error)}`);
  }
}
