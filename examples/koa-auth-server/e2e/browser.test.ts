// The example's page in a real headless Chromium (Debian's, at /usr/bin/chromium, driven by
// playwright-core): what only a browser can show about the session cookie — HttpOnly keeps it from
// script, SameSite=Lax and the CSRF guard keep other origins from using it, logout clears it.
//
// Without Chromium the tests are skipped with a loud line, unless LATCHKEY_REQUIRE_BROWSER=1 or
// CI=true, which turn that into a failure. Screenshots of the main states go to
// examples/koa-auth-server/test-output/e2e/.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createFakeRedis } from '@latchkey/testing';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../src/config.js';
import { assemble } from '../src/setup.js';
import { available, browserTests, CHROMIUM, LAUNCH_ARGS } from './chromium.js';

const OUTPUT = join(import.meta.dirname, '..', 'test-output', 'e2e');
const COOKIE = 'sid';
const PASSWORD = 'correct horse battery staple';

/** What the server saw of one `POST /auth/logout`, recorded in front of the app. */
interface SeenLogout {
  readonly cookieNames: readonly string[];
  readonly secFetchSite: string | undefined;
  status: number;
}

interface Harness {
  browser: Browser;
  /** The example app, e.g. `http://127.0.0.1:41234`. */
  origin: string;
  /** The small second server; reached as `http://127.0.0.1:<port>` (same site) and `http://localhost:<port>`. */
  formPort: number;
  logouts: SeenLogout[];
  /** The body of every `POST /auth/login` answer, as the server sent it. */
  loginBodies: string[];
  servers: Server[];
  stopApp: () => Promise<void>;
  contexts: BrowserContext[];
  /** Per page: uncaught exceptions and Content-Security-Policy violations. */
  problems: Map<Page, string[]>;
}

const h = {} as Harness;

/** A page that posts an empty form to the example's `/auth/logout`, as an attacker's page would. */
function logoutForm(action: string): string {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another page</title></head>' +
    `<body><form method="post" action="${action}"><button id="go" type="submit">Win a prize</button>` +
    '</form></body></html>'
  );
}

function sendHtml(res: ServerResponse, html: string): void {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Tees what the app writes to `res`, handing over the whole body when it is done. */
function captureBody(res: ServerResponse, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  const keep = (chunk: unknown): void => {
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    keep(chunk);
    return write(chunk, ...rest);
  }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') keep(chunk);
    return end(chunk, ...rest);
  }) as typeof res.end;
  res.on('finish', () => done(Buffer.concat(chunks).toString('utf8')));
}

function cookieNames(req: IncomingMessage): string[] {
  return (req.headers.cookie ?? '')
    .split(';')
    .map((part) => part.split('=')[0]!.trim())
    .filter((name) => name !== '');
}

/**
 * The example app as `pnpm start` builds it — development mode on loopback, the default limits, the
 * embedded fake Redis — but quiet.
 */
async function startApp(): Promise<{
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  close: () => Promise<void>;
}> {
  const config = loadConfig({ HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
  assert.ok(config.dev, 'the app runs in development mode (dev outbox, non-Secure cookie "sid")');
  const redis = createFakeRedis();
  const assembled = await assemble({ config, redis });
  const callback = assembled.app.callback();
  return {
    handle: (req, res) => void callback(req, res),
    close: async () => {
      await assembled.close();
      redis.disconnect();
    },
  };
}

async function startServers(): Promise<void> {
  const app = await startApp();
  h.logouts = [];
  h.loginBodies = [];
  // In front of the app, on its origin: records what arrives at /auth/logout, and serves the logout
  // form from the app's own origin (the case the guard must let through).
  const appServer = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/__e2e/logout-form') {
      sendHtml(res, logoutForm('/auth/logout'));
      return;
    }
    if (req.url === '/auth/logout') {
      const seen: SeenLogout = {
        cookieNames: cookieNames(req),
        secFetchSite: req.headers['sec-fetch-site'] as string | undefined,
        status: 0,
      };
      h.logouts.push(seen);
      res.on('finish', () => {
        seen.status = res.statusCode;
      });
    }
    if (req.url === '/auth/login') captureBody(res, (body) => h.loginBodies.push(body));
    app.handle(req, res);
  });
  const appPort = await listen(appServer);
  h.origin = `http://127.0.0.1:${appPort}`;
  const formServer = createServer((req, res) =>
    sendHtml(
      res,
      req.url === '/frame'
        ? `<!doctype html><title>Framing</title><iframe src="${h.origin}/" width="800" height="600"></iframe>`
        : logoutForm(`${h.origin}/auth/logout`),
    ),
  );
  h.formPort = await listen(formServer);
  h.servers = [appServer, formServer];
  h.stopApp = app.close;
}

async function newPage(userAgent?: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await h.browser.newContext({
    viewport: { width: 1200, height: 860 },
    locale: 'en-US',
    timezoneId: 'UTC',
    ...(userAgent === undefined ? {} : { userAgent }),
  });
  context.setDefaultTimeout(10_000);
  h.contexts.push(context);
  const page = await context.newPage();
  const problems: string[] = [];
  h.problems.set(page, problems);
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  return { context, page };
}

async function openApp(userAgent?: string): Promise<{ context: BrowserContext; page: Page }> {
  const opened = await newPage(userAgent);
  await opened.page.goto(h.origin);
  await opened.page.locator('#me-signed-out, #me-details').locator('visible=true').first().waitFor();
  return opened;
}

function uniqueEmail(name: string): string {
  return `${name}-${randomBytes(4).toString('hex')}@example.test`;
}

async function waitNotice(page: Page, text: RegExp): Promise<string> {
  const notice = page.locator('#notice');
  await notice.filter({ hasText: text }).waitFor();
  return (await notice.textContent()) ?? '';
}

async function register(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.fill('#register-form input[name="email"]', email);
  await page.fill('#register-form input[name="password"]', password);
  await page.click('#register-form button[type="submit"]');
  await waitNotice(page, /Account created/);
}

async function login(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.fill('#login-form input[name="email"]', email);
  await page.fill('#login-form input[name="password"]', password);
  await page.click('#login-form button[type="submit"]');
  await page.locator('#me-email').filter({ hasText: email }).waitFor();
}

async function sessionCookie(context: BrowserContext): Promise<string | undefined> {
  const cookies = await context.cookies(h.origin);
  return cookies.find((cookie) => cookie.name === COOKIE)?.value;
}

/** `GET /auth/me` with a session cookie value, from outside the browser: is that session alive? */
async function meStatus(cookieValue: string): Promise<number> {
  const response = await fetch(`${h.origin}/auth/me`, { headers: { cookie: `${COOKIE}=${cookieValue}` } });
  await response.arrayBuffer();
  return response.status;
}

/** Registers an account through the API, outside the browser (a client without Origin passes the guard). */
async function createAccount(name: string): Promise<string> {
  const email = uniqueEmail(name);
  const response = await fetch(`${h.origin}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  await response.arrayBuffer();
  assert.is(response.status, 201, `registering ${email}`);
  return email;
}

/** Clicks and waits for the API's answer to the request it caused (a notice alone may not change). */
async function clickFor(page: Page, selector: string, method: string, path: string): Promise<number> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname === path),
    page.click(selector),
  ]);
  return response.status();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(OUTPUT, `${name}.png`), fullPage: true });
}

/** Posts the other page's form; resolves with the app's answer to the POST it caused. */
async function submitLogoutForm(page: Page): Promise<{ status: number; body: string }> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${h.origin}/auth/logout` && r.request().method() === 'POST'),
    page.click('#go'),
  ]);
  return { status: response.status(), body: await response.text().catch(() => '') };
}

const test = suite('browser page (headless Chromium)');
/** The longest one browser test may take: a hung step fails it instead of hanging the run. */
const browserTest = browserTests(test, 60_000);

test.before(async () => {
  if (!available) return;
  mkdirSync(OUTPUT, { recursive: true });
  h.contexts = [];
  h.problems = new Map();
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
  await startServers();
});

test.after.each(async () => {
  if (!available) return;
  const problems = [...h.problems.values()].flat();
  h.problems.clear();
  await Promise.all(h.contexts.splice(0).map((context) => context.close()));
  assert.equal(problems, [], 'no uncaught exception or CSP violation in the page');
});

test.after(async () => {
  if (!available) return;
  await h.browser?.close();
  await Promise.all((h.servers ?? []).map(close));
  await h.stopApp?.();
});

browserTest('GET / serves the page with its security headers, and it runs under that CSP', async () => {
  const { page } = await newPage();
  const response = await page.goto(h.origin);
  assert.ok(response);
  assert.is(response.status(), 200);
  const headers = response.headers();
  assert.is(
    headers['content-security-policy'],
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  );
  assert.is(headers['x-content-type-options'], 'nosniff');
  assert.is(headers['referrer-policy'], 'no-referrer');
  assert.match(headers['content-type'] ?? '', /^text\/html/);
  // The script ran (it is external, so the CSP allows it): it asked /auth/me and shows the answer.
  await page.locator('#me-signed-out').waitFor();
  assert.ok(await page.locator('#login-form').isVisible());
  assert.not.ok(await page.locator('#logout').isVisible());
  await shot(page, '01-signed-out');
});

browserTest("another origin cannot frame the page (frame-ancestors 'none')", async () => {
  const { context } = await newPage();
  const framing = await context.newPage();
  const refused = framing.waitForEvent('console', (m) => /frame-ancestors/.test(m.text()));
  await framing.goto(`http://127.0.0.1:${h.formPort}/frame`);
  await refused;
  const frame = framing.frames().find((f) => f !== framing.mainFrame());
  assert.ok(frame);
  assert.is(await frame.locator('#login-form').count(), 0, 'the page did not render inside the frame');
});

let alice = '';

browserTest(
  'after login the session cookie is HttpOnly: document.cookie lacks it and the page keeps no token',
  async () => {
    const { context, page } = await openApp();
    alice = uniqueEmail('alice');
    await register(page, alice);
    h.loginBodies.length = 0;
    await login(page, alice);
    // What the login answered (the page itself never reads that body).
    assert.is(h.loginBodies.length, 1);
    const tokens = JSON.parse(h.loginBodies[0]!) as { accessToken: string; refreshToken: string };
    assert.match(tokens.accessToken, /^v4\.public\./);

    const cookie = (await context.cookies(h.origin)).find((c) => c.name === COOKIE);
    assert.ok(cookie, 'the login set the session cookie');
    assert.is(cookie.httpOnly, true);
    assert.is(cookie.sameSite, 'Lax');
    assert.is(cookie.path, '/');
    // A string, evaluated in the page (the test's own tsconfig has no DOM types).
    const seen = await page.evaluate<{ cookie: string; html: string; stored: number }>(
      '({ cookie: document.cookie, html: document.documentElement.outerHTML, stored: localStorage.length + sessionStorage.length })',
    );
    assert.not.match(seen.cookie, new RegExp(`(^|;\\s*)${COOKIE}=`));
    assert.not.ok(seen.cookie.includes(cookie.value));
    for (const secret of [cookie.value, tokens.accessToken, tokens.refreshToken]) {
      assert.not.ok(seen.html.includes(secret), 'no credential in the page');
    }
    assert.is(seen.stored, 0, 'nothing in localStorage or sessionStorage');
    assert.is(await page.textContent('#me-via'), 'session cookie');
    await page.locator('#sessions-body tr').first().waitFor();
    assert.is(await page.locator('#sessions-body tr').count(), 1);
    await shot(page, '02-signed-in');
  },
);

browserTest(
  'the page never reads the body of the login response: its tokens are discarded unread',
  async () => {
    const { page } = await newPage();
    // Installed before the page's own script: records the path of every response whose body is read.
    await page.addInitScript(`(() => {
    const read = (window.__bodiesRead = []);
    const proto = Response.prototype;
    for (const name of ['json', 'text', 'arrayBuffer', 'blob', 'formData', 'bytes']) {
      const original = proto[name];
      if (typeof original !== 'function') continue;
      proto[name] = function (...args) {
        read.push(new URL(this.url).pathname);
        return original.apply(this, args);
      };
    }
    const body = Object.getOwnPropertyDescriptor(proto, 'body');
    Object.defineProperty(proto, 'body', {
      get() {
        read.push(new URL(this.url).pathname);
        return body.get.call(this);
      },
    });
  })()`);
    await page.goto(h.origin);
    await page.locator('#me-signed-out').waitFor();
    const email = await createAccount('grace');
    await login(page, email);
    const read = await page.evaluate<string[]>('window.__bodiesRead');
    assert.ok(read.includes('/auth/me'), `the hook sees the page's reads: ${read.join(', ')}`);
    assert.not.ok(read.includes('/auth/login'), `read: ${read.join(', ')}`);
  },
);

browserTest('the session survives a reload', async () => {
  const { context, page } = await openApp();
  await login(page, alice);
  const sessionId = await page.textContent('#me-session');
  const cookie = await sessionCookie(context);
  await page.reload();
  await page.locator('#me-email').filter({ hasText: alice }).waitFor();
  assert.is(await page.textContent('#me-session'), sessionId);
  assert.is(await sessionCookie(context), cookie);
});

browserTest('logging out revokes the session on the server and clears the cookie', async () => {
  const { context, page } = await openApp();
  await login(page, alice);
  const cookie = await sessionCookie(context);
  assert.ok(cookie);
  assert.is(await meStatus(cookie), 200);
  await page.click('#logout');
  await waitNotice(page, /^Logged out\./);
  assert.ok(await page.locator('#me-signed-out').isVisible());
  assert.is(await sessionCookie(context), undefined, 'the browser dropped the cookie');
  assert.is(await meStatus(cookie), 401, 'the old cookie value no longer works');
  await page.reload();
  await page.locator('#me-signed-out').waitFor();
  await shot(page, '03-logged-out');
});

browserTest(
  'revoking a session from a second browser context logs the first out on its next request',
  async () => {
    const email = await createAccount('bob');
    // The sessions list shows other clients' User-Agent: markup in it must stay text.
    const hostileAgent = 'Mozilla/5.0 <img id="injected" src="/nothing"> e2e';
    const first = await openApp(hostileAgent);
    await login(first.page, email);
    const firstSession = await first.page.textContent('#me-session');
    const second = await openApp();
    await login(second.page, email);
    const row = second.page.locator(`#sessions-body tr[data-session-id="${firstSession}"]`);
    await row.waitFor();
    assert.is(await second.page.locator('#sessions-body tr').count(), 2);
    assert.ok((await row.locator('td.client').textContent())?.includes(hostileAgent));
    assert.is(await second.page.locator('#injected').count(), 0, 'the User-Agent was written as text');
    await shot(second.page, '04-two-sessions');

    await row.locator('button.revoke').click();
    await waitNotice(second.page, /Session revoked/);
    await row.waitFor({ state: 'detached' });
    assert.is(await second.page.locator('#sessions-body tr').count(), 1);

    // The first browser learns it on its next request.
    assert.ok(await first.page.locator('#me-details').isVisible());
    assert.is(await clickFor(first.page, '#me-refresh', 'GET', '/auth/me'), 401);
    await first.page.locator('#me-signed-out').waitFor();
    await waitNotice(first.page, /session has ended/);
    await shot(first.page, '05-revoked-elsewhere');

    assert.is(await clickFor(second.page, '#me-refresh', 'GET', '/auth/me'), 200);
    assert.is(await second.page.textContent('#me-email'), email);
  },
);

browserTest('"log out other sessions" keeps this one; "log out everywhere" ends every browser', async () => {
  const email = await createAccount('carol');
  const a = await openApp();
  await login(a.page, email);
  const b = await openApp();
  await login(b.page, email);

  assert.is(await clickFor(b.page, '#logout-others', 'POST', '/auth/logout-others'), 204);
  await waitNotice(b.page, /Every other session/);
  assert.is(await b.page.locator('#sessions-body tr').count(), 1);
  assert.is(await clickFor(a.page, '#me-refresh', 'GET', '/auth/me'), 401);
  await a.page.locator('#me-signed-out').waitFor();

  await login(a.page, email);
  assert.is(await clickFor(a.page, '#logout-all', 'POST', '/auth/logout-all'), 204);
  await waitNotice(a.page, /Logged out everywhere/);
  assert.is(await sessionCookie(a.context), undefined);
  const bCookie = await sessionCookie(b.context);
  assert.ok(bCookie);
  assert.is(await meStatus(bCookie), 401);
  assert.is(await clickFor(b.page, '#me-refresh', 'GET', '/auth/me'), 401);
  await b.page.locator('#me-signed-out').waitFor();
});

browserTest(
  'a logout form on another origin of the same site: the cookie goes along, the guard answers 403',
  async () => {
    const { context, page } = await openApp();
    await login(page, alice);
    const cookie = await sessionCookie(context);
    assert.ok(cookie);
    const attacker = await context.newPage();
    await attacker.goto(`http://127.0.0.1:${h.formPort}/`);
    h.logouts.length = 0;

    const answer = await submitLogoutForm(attacker);
    assert.is(answer.status, 403);
    assert.match(answer.body, /csrf_rejected/);
    // 127.0.0.1:<other port> is the same site, so SameSite=Lax does not stop the cookie: the guard must.
    assert.equal(h.logouts, [{ cookieNames: [COOKIE], secFetchSite: 'same-site', status: 403 }]);
    assert.is(await sessionCookie(context), cookie);
    assert.is(await meStatus(cookie), 200, 'the session is alive');
    assert.is(await clickFor(page, '#me-refresh', 'GET', '/auth/me'), 200);
  },
);

browserTest(
  'a logout form on another site: the browser withholds the cookie, and the session stays',
  async () => {
    const { context, page } = await openApp();
    await login(page, alice);
    const cookie = await sessionCookie(context);
    assert.ok(cookie);
    const attacker = await context.newPage();
    await attacker.goto(`http://localhost:${h.formPort}/`);
    h.logouts.length = 0;

    const answer = await submitLogoutForm(attacker);
    assert.is(answer.status, 403);
    // localhost and 127.0.0.1 are different sites: a Lax cookie does not ride along on a cross-site POST.
    assert.equal(h.logouts, [{ cookieNames: [], secFetchSite: 'cross-site', status: 403 }]);
    assert.is(await sessionCookie(context), cookie);
    assert.is(await meStatus(cookie), 200, 'the session is alive');
  },
);

browserTest('the same logout form served by the server itself (same origin) logs out', async () => {
  const { context, page } = await openApp();
  await login(page, alice);
  const cookie = await sessionCookie(context);
  assert.ok(cookie);
  const own = await context.newPage();
  await own.goto(`${h.origin}/__e2e/logout-form`);
  h.logouts.length = 0;

  const answer = await submitLogoutForm(own);
  assert.is(answer.status, 204);
  assert.equal(h.logouts, [{ cookieNames: [COOKIE], secFetchSite: 'same-origin', status: 204 }]);
  assert.is(await sessionCookie(context), undefined, 'the clearing Set-Cookie removed it');
  assert.is(await meStatus(cookie), 401);
});

browserTest('verifying the email with the code shown from the dev outbox', async () => {
  const email = await createAccount('dave');
  const { page } = await openApp();
  await login(page, email);
  assert.is(await page.textContent('#me-verified'), 'not yet');
  assert.is(await clickFor(page, '#verify-request', 'POST', '/auth/verify-email/request'), 202);
  await waitNotice(page, /verification code is on its way/);
  await page.click('#verify-outbox');
  await page.locator('#verify-outbox-text').filter({ hasText: /\d{6}/ }).waitFor();
  const code = await page.locator('#verify-outbox-text strong').textContent();
  assert.match(code ?? '', /^\d{6}$/);
  assert.is(await page.inputValue('#verify-form input[name="code"]'), code);
  await shot(page, '06-verify-code');
  await page.click('#verify-form button[type="submit"]');
  await waitNotice(page, /Your email is verified/);
  assert.is(await page.textContent('#me-verified'), 'yes');
  assert.ok(await page.locator('#verify-done').isVisible());
  assert.not.ok(await page.locator('#verify-steps').isVisible());
});

browserTest(
  'a password reset with the code from the dev outbox logs every session of the account out',
  async () => {
    const email = await createAccount('erin');
    const signedIn = await openApp();
    await login(signedIn.page, email);
    const oldCookie = await sessionCookie(signedIn.context);
    assert.ok(oldCookie);

    const { page } = await openApp();
    await page.fill('#reset-request-form input[name="email"]', email);
    await page.click('#reset-request-form button[type="submit"]');
    await waitNotice(page, /If an account exists/);
    await page.click('#reset-outbox');
    await page.locator('#reset-outbox-text').filter({ hasText: /\d{6}/ }).waitFor();
    await page.fill('#reset-confirm-form input[name="newPassword"]', 'a brand new passphrase');
    await shot(page, '07-reset-code');
    assert.is(
      await clickFor(
        page,
        '#reset-confirm-form button[type="submit"]',
        'POST',
        '/auth/password-reset/confirm',
      ),
      204,
    );
    await waitNotice(page, /Password changed/);

    assert.is(await meStatus(oldCookie), 401);
    assert.is(await clickFor(signedIn.page, '#me-refresh', 'GET', '/auth/me'), 401);
    await login(page, email, 'a brand new passphrase');
  },
);

browserTest('API errors are shown in words: 400, 409, 401 and 429 with its wait', async () => {
  const email = await createAccount('frank');
  const { page } = await openApp();

  await page.fill('#register-form input[name="email"]', uniqueEmail('short'));
  await page.fill('#register-form input[name="password"]', 'short');
  assert.is(await clickFor(page, '#register-form button[type="submit"]', 'POST', '/auth/register'), 400);
  assert.match(await waitNotice(page, /could not accept this/), /HTTP 400 · invalid_request/);

  await page.fill('#register-form input[name="email"]', email);
  await page.fill('#register-form input[name="password"]', PASSWORD);
  assert.is(await clickFor(page, '#register-form button[type="submit"]', 'POST', '/auth/register'), 409);
  await waitNotice(page, /already exists/);

  await page.fill('#reset-request-form input[name="email"]', email);
  await page.fill('#reset-confirm-form input[name="code"]', '000000');
  await page.fill('#reset-confirm-form input[name="newPassword"]', 'another passphrase');
  await page.click('#reset-confirm-form button[type="submit"]');
  assert.match(await waitNotice(page, /code is not valid/), /HTTP 400 · invalid_code/);

  await page.fill('#login-form input[name="email"]', email);
  await page.fill('#login-form input[name="password"]', 'not the password');
  let status = 0;
  for (let attempt = 1; attempt <= 10 && status !== 429; attempt++) {
    status = await clickFor(page, '#login-form button[type="submit"]', 'POST', '/auth/login');
    if (attempt === 1) {
      assert.is(status, 401);
      assert.match(await waitNotice(page, /Wrong email or password/), /HTTP 401 · invalid_credentials/);
    }
  }
  assert.is(status, 429);
  const text = await waitNotice(page, /Too many attempts/);
  assert.match(text, /Try again in (\d+ (second|minute)s?|about \d+ hours?)\./);
  await shot(page, '08-too-many-attempts');
});

test.run();
