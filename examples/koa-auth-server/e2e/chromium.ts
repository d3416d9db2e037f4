// What the browser tests share: Debian's Chromium, its launch flags, and tests that skip loudly (or
// fail, when a browser is required) without it and fail instead of hanging when a step hangs.
import { existsSync } from 'node:fs';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';

export const CHROMIUM = '/usr/bin/chromium';
const REQUIRED = process.env['LATCHKEY_REQUIRE_BROWSER'] === '1' || process.env['CI'] === 'true';

export const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  // This network is closed: without these, Chromium keeps trying to reach Google's services.
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Whether Chromium is installed. */
export const available = existsSync(CHROMIUM);

/**
 * The `browserTest(title, body)` of one suite: skipped without Chromium (with a loud line, or a failing
 * test when CI=true or LATCHKEY_REQUIRE_BROWSER=1), and failed after `timeoutMs` instead of hanging.
 */
export function browserTests(
  test: Test,
  timeoutMs: number,
): (title: string, body: () => Promise<void>) => void {
  if (!available) {
    if (REQUIRED) {
      test('Chromium is installed at /usr/bin/chromium (required: CI=true or LATCHKEY_REQUIRE_BROWSER=1)', () => {
        assert.unreachable(`${CHROMIUM} is missing: apt-get install chromium`);
      });
    } else {
      console.warn(
        `\n!!! latchkey: ${CHROMIUM} is missing: the browser tests are SKIPPED.\n` +
          '!!! Install it (apt-get install chromium), or set LATCHKEY_REQUIRE_BROWSER=1 to fail instead.\n',
      );
    }
  }
  return (title, body) => {
    if (!available) {
      test.skip(title, body);
      return;
    }
    test(title, async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([body(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    });
  };
}
