import * as assert from 'uvu/assert';

/** Asserts that `promise` rejects with an error that passes `check` (`what` names it in the failure). */
export async function rejects(
  promise: Promise<unknown>,
  check: (e: unknown) => boolean,
  what: string,
): Promise<void> {
  await promise.then(
    () => assert.unreachable(`expected ${what}`),
    (e: unknown) => assert.ok(check(e), `expected ${what}, got ${String(e)}`),
  );
}

/**
 * Retries `check` every 50 ms until it holds, and fails the test after `timeoutMs`. Real time: it
 * waits for a process and a reconnect (a Redis restarted by an outage test), which no test clock
 * moves. A rejection counts as "not yet" (the connection may still be coming back).
 */
export async function eventually(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (performance.now() > deadline) assert.unreachable(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
