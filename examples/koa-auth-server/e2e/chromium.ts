// What the browser tests share: Debian's Chromium, its launch flags, tests that skip loudly (or fail,
// when a browser is required) without it and fail instead of hanging when a step hangs, and the page
// server + browser of a suite.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFakeRedis } from '@latchkey/testing';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../src/config.js';
import { assemble } from '../src/setup.js';

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

/** A suite's page server and browser: see {@link pageHarness}. */
export interface PageHarness {
  /** The page's origin (`http://localhost:<port>`), set before the first test. */
  readonly origin: string;
  /**
   * A fresh browser context with one page on the origin, signed out or in as its cookies say. Uncaught
   * exceptions and CSP violations of the page fail the test; `prepare` runs before the navigation
   * (e.g. to add a virtual authenticator).
   */
  open(prepare?: (context: BrowserContext, page: Page) => Promise<void>): Promise<Page>;
}

/**
 * Registers on `test` the hooks of a page suite: the example app on the embedded fake Redis in
 * development mode, listening on loopback, and one Chromium; every context closed after each test,
 * everything stopped after the suite. Nothing is started without Chromium.
 */
export function pageHarness(test: Test): PageHarness {
  const contexts: BrowserContext[] = [];
  const problems: string[] = [];
  let browser: Browser | undefined;
  let close: (() => Promise<void>) | undefined;
  let origin = '';
  test.before(async () => {
    if (!available) return;
    const config = loadConfig({ HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
    const redis = createFakeRedis();
    const assembled = await assemble({ config, redis });
    const callback = assembled.app.callback();
    const server = createServer((req, res) => void callback(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://localhost:${(server.address() as AddressInfo).port}`;
    close = async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await assembled.close();
      redis.disconnect();
    };
    browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
  });
  test.after.each(async () => {
    if (!available) return;
    const seen = problems.splice(0);
    await Promise.all(contexts.splice(0).map((context) => context.close()));
    assert.equal(seen, [], 'no uncaught exception or CSP violation in the page');
  });
  test.after(async () => {
    await browser?.close();
    await close?.();
  });
  return {
    get origin() {
      return origin;
    },
    async open(prepare) {
      if (browser === undefined) throw new Error('the page harness has not started (no Chromium?)');
      const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, locale: 'en-US' });
      context.setDefaultTimeout(15_000);
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
      page.on('console', (message) => {
        if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
      });
      await prepare?.(context, page);
      await page.goto(origin);
      await page.locator('#me-signed-out, #me-details').locator('visible=true').first().waitFor();
      return page;
    },
  };
}
