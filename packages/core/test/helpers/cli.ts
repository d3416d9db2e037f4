import { spawn } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../../../..');
const MAIN = join(root, 'packages/core/src/cli/main.ts');

/** What a run of the `latchkey` command left behind. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Variables the CLI reads: none leaks in from the environment the tests run in. */
const CLI_VARIABLES = [
  'REDIS_URL',
  'REDIS_CLUSTER',
  'REDIS_WAIT_REPLICAS',
  'REDIS_WAIT_TIMEOUT_MS',
  'PASETO_SECRET_KEY',
  'SESSION_IDLE_TTL_SECONDS',
  'SESSION_ABSOLUTE_TTL_SECONDS',
];

/**
 * Runs `latchkey <args>` as its own process, the way `pnpm latchkey` does (node with the source
 * condition and tsx), with `env` on top of a cleaned environment and `input` on stdin. `preload`
 * modules are imported first (a shifted clock).
 */
export function runCli(
  args: readonly string[],
  options: { env?: Record<string, string>; input?: string; preload?: string } = {},
): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' };
  for (const name of CLI_VARIABLES) delete env[name];
  Object.assign(env, options.env);
  const preload = options.preload === undefined ? [] : ['--import', options.preload];
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=latchkey-source', '--import', 'tsx', ...preload, MAIN, ...args],
      { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** The module that `preload` takes to run the CLI with its clock `SHIFT_CLOCK_MS` ahead. */
export const SHIFT_CLOCK = join(import.meta.dirname, 'shift-clock.mjs');
