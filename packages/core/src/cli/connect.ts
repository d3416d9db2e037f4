import { Cluster, Redis } from 'ioredis';
import type { RedisClient } from '../redis.js';
import { CommandFailed, UsageError } from './io.js';

/** Where the command connects: the same choices (and variable names) as the example server. */
export type Target =
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'cluster'; readonly nodes: ReadonlyArray<{ host: string; port: number }> }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: ReadonlyArray<{ host: string; port: number }>;
      readonly name: string;
    };

/** How long connecting may take before the command gives up, in ms. */
const CONNECT_TIMEOUT_MS = 3000;
/** How long one command may take, in ms (SCAN batches and MEMORY USAGE pipelines included). */
const COMMAND_TIMEOUT_MS = 10_000;

/**
 * `--redis <url>`, `--cluster <host:port,…>` or `--sentinels <host:port,…>` (with `--sentinel-name`),
 * else `REDIS_URL`, `REDIS_CLUSTER` or `REDIS_SENTINELS` (with `REDIS_SENTINEL_NAME`): the example
 * server's variables. Exactly one.
 * @throws {UsageError} when none or several are given, or one is malformed.
 */
export function resolveTarget(
  values: {
    readonly redis?: string | undefined;
    readonly cluster?: string | undefined;
    readonly sentinels?: string | undefined;
    readonly 'sentinel-name'?: string | undefined;
  },
  env: NodeJS.ProcessEnv,
): Target {
  const fromFlags =
    values.redis !== undefined || values.cluster !== undefined || values.sentinels !== undefined;
  const url = fromFlags ? values.redis : nonEmpty(env['REDIS_URL']);
  const cluster = fromFlags ? values.cluster : nonEmpty(env['REDIS_CLUSTER']);
  const sentinels = fromFlags ? values.sentinels : nonEmpty(env['REDIS_SENTINELS']);
  if ([url, cluster, sentinels].filter((v) => v !== undefined).length > 1) {
    throw new UsageError(
      fromFlags
        ? 'give one of --redis, --cluster or --sentinels'
        : 'set one of REDIS_URL, REDIS_CLUSTER or REDIS_SENTINELS, not several',
    );
  }
  if (url !== undefined) {
    if (!/^rediss?:\/\/\S+$/.test(url)) throw new UsageError('--redis must be a redis:// or rediss:// URL');
    return { kind: 'url', url };
  }
  if (cluster !== undefined) return { kind: 'cluster', nodes: hostPorts(cluster, '--cluster') };
  if (sentinels !== undefined) {
    const name = values['sentinel-name'] ?? nonEmpty(env['REDIS_SENTINEL_NAME']);
    if (name === undefined || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
      throw new UsageError(
        '--sentinels needs --sentinel-name (or REDIS_SENTINEL_NAME): letters, digits, _ . -',
      );
    }
    return { kind: 'sentinel', sentinels: hostPorts(sentinels, '--sentinels'), name };
  }
  throw new UsageError(
    'give --redis <url>, --cluster <host:port,…> or --sentinels <host:port,…> (or set REDIS_URL, REDIS_CLUSTER or REDIS_SENTINELS)',
  );
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** `host:port,host:port` (IPv6 in brackets). */
export function hostPorts(text: string, option: string): Array<{ host: string; port: number }> {
  return text.split(',').map((entry) => {
    const match = /^\s*(\[[^\]]+\]|[^:\s,]+):(\d{1,5})\s*$/.exec(entry);
    const host = match?.[1];
    const port = Number(match?.[2]);
    if (host === undefined || !(port > 0 && port <= 65535)) {
      throw new UsageError(`${option} must be host:port,… (got "${entry.trim()}")`);
    }
    return { host: host.replace(/^\[(.*)\]$/, '$1'), port };
  });
}

/** The target without credentials, for messages. */
export function describeTarget(target: Target): string {
  if (target.kind === 'cluster') return `the Redis Cluster at ${target.nodes.map(hostPort).join(',')}`;
  if (target.kind === 'sentinel') {
    return `the Redis master "${target.name}" of the Sentinels at ${target.sentinels.map(hostPort).join(',')}`;
  }
  try {
    const url = new URL(target.url);
    return `the Redis server at ${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return 'the Redis server of --redis';
  }
}

export function hostPort(node: { readonly host: string; readonly port: number }): string {
  return node.host.includes(':') ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`;
}

/** Options of a one-shot connection: no offline queue, no reconnection, bounded waits. */
const ONE_SHOT = Object.freeze({
  lazyConnect: true,
  enableOfflineQueue: false,
  connectTimeout: CONNECT_TIMEOUT_MS,
  commandTimeout: COMMAND_TIMEOUT_MS,
  maxRetriesPerRequest: 0,
  retryStrategy: () => null,
});

/** One server by URL or address; connected, or {@link CommandFailed}. */
export async function connectNode(
  where: string | { readonly host: string; readonly port: number },
  what: string,
): Promise<Redis> {
  const client =
    typeof where === 'string'
      ? new Redis(where, ONE_SHOT)
      : new Redis({ ...ONE_SHOT, host: where.host, port: where.port });
  return connected(client, what, CONNECT_TIMEOUT_MS + 500);
}

/**
 * Connects `client` within `timeoutMs`, or disconnects it and throws {@link CommandFailed} naming
 * `what` and the last error the client emitted (more telling than the timeout itself).
 */
async function connected<C extends Redis | Cluster>(client: C, what: string, timeoutMs: number): Promise<C> {
  let last: unknown;
  const remember = (error: unknown): void => {
    last = error;
  };
  client.on('error', remember);
  if (client instanceof Cluster) client.on('node error', remember);
  try {
    await withTimeout(client.connect(), timeoutMs);
    return client;
  } catch (error) {
    client.disconnect();
    throw new CommandFailed(`cannot reach ${what}: ${reason(last ?? error)}`);
  }
}

/** The master of a Sentinel group, found through the Sentinels. */
export async function connectSentinel(target: Target & { kind: 'sentinel' }): Promise<Redis> {
  const client = new Redis({
    ...ONE_SHOT,
    sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: target.name,
    sentinelRetryStrategy: () => null,
    sentinelCommandTimeout: CONNECT_TIMEOUT_MS,
  });
  return connected(client, describeTarget(target), 2 * CONNECT_TIMEOUT_MS);
}

/** The client the stores use: one server, a Sentinel group's master, or a Cluster. */
export async function connect(target: Target): Promise<RedisClient> {
  if (target.kind === 'url') return connectNode(target.url, describeTarget(target));
  if (target.kind === 'sentinel') return connectSentinel(target);
  const cluster = new Cluster(
    target.nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: () => null,
      slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
      redisOptions: {
        connectTimeout: CONNECT_TIMEOUT_MS,
        commandTimeout: COMMAND_TIMEOUT_MS,
        maxRetriesPerRequest: 0,
      },
    },
  );
  return connected(cluster, describeTarget(target), 2 * CONNECT_TIMEOUT_MS);
}

/** Closes a client without waiting on a dead connection. */
export async function close(client: RedisClient | Redis): Promise<void> {
  try {
    await withTimeout(client.quit(), 1000);
  } catch {
    // already gone
  }
  client.disconnect();
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The error's message without a stack, and without the URL (which may hold a password). */
export function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/rediss?:\/\/\S+/g, '<url>').split('\n')[0] ?? 'unknown error';
}
