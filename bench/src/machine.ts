import { cpus, loadavg, release, totalmem } from 'node:os';
import type { Redis } from 'ioredis';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly redis: string;
  readonly loadBefore: readonly number[];
}

export async function describeMachine(redis: Redis): Promise<Machine> {
  const info = await redis.info('server');
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
  };
}
