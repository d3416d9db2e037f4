import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { testBackends } from '../src/index.js';

const root = join(import.meta.dirname, '../../..');
const FILE = 'packages/testing/test/three-backends.node-test.ts';

/** Runs the node:test file as a user would (`node --test`), with this run's Redis and Cluster. */
function nodeTest(env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=latchkey-source', '--import', 'tsx', '--test', '--test-reporter=tap', FILE],
      { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

function count(out: string, name: string): number {
  return Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(out)?.[1] ?? Number.NaN);
}

const runner = suite('the test kit under node:test');
const backends = testBackends().length;

runner('runs the same three tests on every backend, and all pass', async () => {
  const { code, out } = await nodeTest({ LATCHKEY_NODE_TEST_MUST_FAIL: '0' });
  assert.is(code, 0, out.slice(-2000));
  assert.is(count(out, 'pass'), 3 * backends, out.slice(-2000));
  assert.is(count(out, 'fail'), 0);
  for (const kind of testBackends()) assert.ok(out.includes(`[${kind}]`), kind);
});

runner('a failing test fails the run: node --test exits non-zero and counts it', async () => {
  const { code, out } = await nodeTest({ LATCHKEY_NODE_TEST_MUST_FAIL: '1' });
  assert.is.not(code, 0);
  assert.is(count(out, 'fail'), backends, out.slice(-2000));
  assert.is(count(out, 'pass'), 3 * backends);
});

runner.run();
