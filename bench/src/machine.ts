import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly redis: string;
  readonly loadBefore: readonly number[];
  /** name@version of the libraries measured. */
  readonly packages: readonly string[];
}

const PACKAGES = [
  'koa',
  'ioredis',
  'koa-session',
  'koa-redis',
  'express',
  'express-session',
  'connect-redis',
  'paseto',
  'rate-limiter-flexible',
  'autocannon',
];

function versions(root: string): string[] {
  return PACKAGES.map((name) => {
    try {
      const text = readFileSync(join(root, 'bench', 'node_modules', name, 'package.json'), 'utf8');
      return `${name}@${(JSON.parse(text) as { version?: string }).version ?? '?'}`;
    } catch {
      return `${name}@?`;
    }
  });
}

export async function describeMachine(redis: Redis, root: string): Promise<Machine> {
  const info = `${await redis.info('server')}\n${await redis.info('memory')}`;
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const allocator = /mem_allocator:(\S+)/.exec(info)?.[1] ?? '';
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `Linux ${release()}`,
    node: process.version,
    redis: `${version}${allocator === '' ? '' : ` (${allocator})`}`,
    loadBefore: loadavg().map((l) => Math.round(l * 100) / 100),
    packages: versions(root),
  };
}
