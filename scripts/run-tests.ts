// The whole test suite: starts one redis-server and one 3-master cluster for the run (when
// redis-server is on PATH), runs each package's uvu tests in its own process against them, stops the
// servers by pid, and prints `N passed, N failed` as the last line.
//
//   pnpm test                       everything
//   pnpm test packages/core        one folder (any folder holding *.test.ts files under test/ or e2e/)
//
// LATCHKEY_REQUIRE_REDIS=1 turns a missing redis-server into a failure instead of a loud skip.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  hasRedisServer,
  type RedisClusterHandle,
  type RedisServerHandle,
  startRedisCluster,
  startRedisServer,
} from '@latchkey/testing';

const root = join(import.meta.dirname, '..');
const REQUIRE = process.env['LATCHKEY_REQUIRE_REDIS'] === '1';
const PER_FOLDER_TIMEOUT_MS = 8 * 60_000;

function testFolders(): string[] {
  const args = process.argv.slice(2);
  const bases = args.length > 0 ? args.map((a) => join(root, a)) : ['packages', 'examples'].flatMap(listDirs);
  const folders: string[] = [];
  const holdsTests = (dir: string): boolean =>
    existsSync(dir) && statSync(dir).isDirectory() && readdirSync(dir).some((f) => f.endsWith('.test.ts'));
  for (const base of bases) {
    // A test folder named directly (`pnpm test examples/koa-auth-server/e2e`) runs as it is.
    if (args.length > 0 && holdsTests(base)) {
      folders.push(base);
      continue;
    }
    for (const sub of ['test', 'e2e']) {
      const dir = join(base, sub);
      if (holdsTests(dir)) folders.push(dir);
    }
  }
  return folders;
}

function listDirs(name: string): string[] {
  const dir = join(root, name);
  return readdirSync(dir)
    .map((d) => join(dir, d))
    .filter((d) => statSync(d).isDirectory());
}

interface Outcome {
  passed: number;
  failed: number;
  skipped: number;
}

function runFolder(dir: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const rel = relative(root, dir);
  console.log(`\n=== ${rel}`);
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--conditions=latchkey-source',
        '--import',
        'tsx',
        join(root, 'node_modules/uvu/bin.js'),
        rel,
        '\\.test\\.ts$',
        '--no-color',
      ],
      { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    const timer = setTimeout(() => {
      console.error(
        `\n${rel}: still running after ${PER_FOLDER_TIMEOUT_MS / 1000} s (an open handle?); killed`,
      );
      child.kill('SIGKILL');
    }, PER_FOLDER_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
      const text = out.replace(/\u001b\[[0-9;]*m/g, '');
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        console.error(
          `${rel}: the test process ended (code ${code}) without a summary; counted as 1 failure`,
        );
        resolve({ passed: 0, failed: 1, skipped: 0 });
        return;
      }
      const failed = Math.max(total - passed, code === 0 ? 0 : 1);
      resolve({ passed, failed, skipped });
    });
  });
}

async function main(): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' };
  let server: RedisServerHandle | null = null;
  let cluster: RedisClusterHandle | null = null;
  let setupFailures = 0;
  try {
    if (hasRedisServer()) {
      const started = Date.now();
      [server, cluster] = await Promise.all([startRedisServer(), startRedisCluster()]);
      env['LATCHKEY_TEST_REDIS_PORT'] = String(server.port);
      env['LATCHKEY_TEST_CLUSTER_PORTS'] = cluster.nodes.map((n) => n.port).join(',');
      console.log(
        `latchkey tests: redis-server on 127.0.0.1:${server.port} (pid ${server.pid}), ` +
          `cluster on ${env['LATCHKEY_TEST_CLUSTER_PORTS']} (${Date.now() - started} ms to form)`,
      );
    } else if (REQUIRE) {
      console.error('latchkey tests: LATCHKEY_REQUIRE_REDIS=1 but redis-server is not on PATH: failing.');
      setupFailures = 1;
    } else {
      console.warn(
        '\n!!! latchkey tests: redis-server is not on PATH: real Redis and Cluster runs are SKIPPED.\n',
      );
    }
    const totals: Outcome = { passed: 0, failed: setupFailures, skipped: 0 };
    const folders = testFolders();
    if (folders.length === 0) {
      // A run that finds nothing must not read as a pass.
      console.error(
        `latchkey tests: no *.test.ts under ${process.argv.slice(2).join(' ') || 'the workspace'}`,
      );
      totals.failed += 1;
    }
    for (const dir of folders) {
      const outcome = await runFolder(dir, env);
      totals.passed += outcome.passed;
      totals.failed += outcome.failed;
      totals.skipped += outcome.skipped;
    }
    const skippedText = totals.skipped > 0 ? `, ${totals.skipped} skipped` : '';
    console.log(`\n${totals.passed} passed, ${totals.failed} failed${skippedText}`);
    return totals.failed === 0 ? 0 : 1;
  } finally {
    await Promise.all([server?.stop(), cluster?.stop()]);
  }
}

process.exitCode = await main();
