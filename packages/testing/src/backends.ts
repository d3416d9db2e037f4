// The uvu binding of the three-backend harness; the harness itself (runner-agnostic, for node:test and
// vitest too) is ./backend-context.ts, exported from the package's main entry.
import { suite, type Test } from 'uvu';
import {
  ALL_BACKENDS,
  type Backend,
  type BackendContext,
  type BackendKind,
  openBackend,
  realBackendsAvailable,
  testBackends,
} from './backend-context.js';

export {
  ALL_BACKENDS,
  type Backend,
  type BackendContext,
  type BackendKind,
  closeClient,
  openBackend,
  openBackendClient,
  realBackendsAvailable,
  scanKeys,
  sharedRedisCluster,
  sharedRedisServer,
  testBackends,
} from './backend-context.js';

/** Options of {@link backendSuite}. */
export interface BackendSuiteOptions {
  /** Which backends to run on. @default all three, or `LATCHKEY_TEST_BACKENDS` (comma-separated) */
  readonly backends?: readonly BackendKind[];
}

const REQUIRE = process.env['LATCHKEY_REQUIRE_REDIS'] === '1';

/**
 * Defines one uvu suite per backend — the fake, a real `redis-server`, a real 3-master Cluster — with
 * the same tests, and runs them. Each test gets a fresh {@link BackendContext}: its own key prefix and
 * clock. Servers are started once per run (or taken from the test runner's environment) and killed by
 * pid at exit. Without `redis-server` on PATH the real runs are skipped with one loud line, unless
 * `LATCHKEY_REQUIRE_REDIS=1`, which turns that into a failing test.
 *
 * @example
 * backendSuite('SessionStore.get', (test) => {
 *   test('returns null for an unknown token', async ({ redis, clock, prefix }) => { … });
 * });
 */
export function backendSuite(
  title: string,
  define: (test: Test<BackendContext>) => void,
  options: BackendSuiteOptions = {},
): void {
  for (const kind of testBackends(options.backends ?? ALL_BACKENDS)) {
    // Kept under LATCHKEY_REQUIRE_REDIS=1 without redis-server: one failing test that says why.
    if (kind !== 'fake' && !realBackendsAvailable()) failRequired(`${title} [${kind}]`);
    else defineFor(kind, title, define);
  }
}

/**
 * A plain uvu suite for tests that need a real `redis-server` of their own (outage tests, server
 * configuration). Where `redis-server` is missing it is not defined at all (one loud line says so), or,
 * with `LATCHKEY_REQUIRE_REDIS=1`, replaced by one failing test: a skipped check never counts as passed.
 */
export function realRedisSuite(title: string, define: (test: Test) => void): void {
  if (!realBackendsAvailable()) {
    if (REQUIRE) failRequired(title);
    return;
  }
  const test = suite(title);
  define(test);
  test.run();
}

/** Stands in for a suite that could not run: one failing test, so a skip never counts as a pass. */
function failRequired(title: string): void {
  const failing = suite(title);
  failing('real Redis is required (LATCHKEY_REQUIRE_REDIS=1)', () => {
    throw new Error('redis-server is not on PATH, and LATCHKEY_REQUIRE_REDIS=1 forbids skipping');
  });
  failing.run();
}

/** One uvu suite on one backend, through the runner-agnostic factory ({@link openBackend}). */
function defineFor(kind: BackendKind, title: string, define: (test: Test<BackendContext>) => void): void {
  let backend: Backend | undefined;
  let current: BackendContext | undefined;
  const ctx = { kind } as BackendContext;
  const test = suite<BackendContext>(`${title} [${kind}]`, ctx);

  test.before(async () => {
    backend = await openBackend(kind);
  });
  test.before.each((context) => {
    current = (backend as Backend).beginTest();
    Object.assign(context, current);
  });
  test.after.each(() => {
    if (current !== undefined) backend?.endTest(current);
    current = undefined;
  });
  test.after(async () => {
    await backend?.close();
  });

  define(test);
  test.run();
}
