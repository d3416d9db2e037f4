// Passkeys through the example's page in a real headless Chromium with the DevTools protocol's virtual
// authenticator (CTAP2, resident keys, user verification): register a passkey through the page, log
// out, sign in with it; a captured authentication response replayed is refused (its challenge is
// spent); a deleted passkey no longer signs in.
//
// The page runs on http://localhost:<port>: WebAuthn needs a secure context and an RP id that is a
// domain (an IP address is not), and localhost is both.
//
// Without Chromium the tests are skipped with a loud line, unless LATCHKEY_REQUIRE_BROWSER=1 or
// CI=true, which turn that into a failure.
import { randomBytes } from 'node:crypto';
import type { CDPSession, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { browserTests, pageHarness } from './chromium.js';

const PASSWORD = 'correct horse battery staple';

const test = suite('passkeys in the page (headless Chromium, virtual authenticator)');
const browserTest = browserTests(test, 90_000);
const h = pageHarness(test);

/** A fresh browser context on the page, with a virtual CTAP2 authenticator that holds resident keys. */
async function openWithAuthenticator(): Promise<{ page: Page; cdp: CDPSession; authenticatorId: string }> {
  let cdp: CDPSession | undefined;
  let authenticatorId = '';
  const page = await h.open(async (context, opened) => {
    const session = await context.newCDPSession(opened);
    await session.send('WebAuthn.enable');
    ({ authenticatorId } = await session.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    }));
    cdp = session;
  });
  if (cdp === undefined) throw new Error('no DevTools session');
  return { page, cdp, authenticatorId };
}

async function waitNotice(page: Page, text: RegExp): Promise<void> {
  await page.locator('#notice').filter({ hasText: text }).waitFor();
}

/** Registers, logs in and verifies the email through the page. */
async function signUpInPage(page: Page): Promise<string> {
  const email = `pk-${randomBytes(4).toString('hex')}@example.test`;
  await page.fill('#register-form input[name="email"]', email);
  await page.fill('#register-form input[name="password"]', PASSWORD);
  await page.click('#register-form button[type="submit"]');
  await waitNotice(page, /Account created/);
  await page.fill('#login-form input[name="password"]', PASSWORD);
  await page.click('#login-form button[type="submit"]');
  await page.locator('#me-email').filter({ hasText: email }).waitFor();
  await page.click('#verify-request');
  await waitNotice(page, /verification code is on its way/);
  await page.click('#verify-outbox');
  await page.locator('#verify-outbox-text').waitFor();
  await page.click('#verify-form button[type="submit"]');
  await page.locator('#verify-done').waitFor();
  return email;
}

/** Clicks "Sign in with a passkey"; resolves with the verify request's body, cookie and answer. */
async function signInWithPasskey(page: Page): Promise<{ status: number; body: string; cookie: string }> {
  const [response] = await Promise.all([
    page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/auth/passkeys/login/verify',
    ),
    page.click('#passkey-login'),
  ]);
  const request = response.request();
  return {
    status: response.status(),
    body: request.postData() ?? '',
    cookie: (await request.allHeaders())['cookie'] ?? '',
  };
}

browserTest('register a passkey in the page, log out, sign in with it; a replay is refused', async () => {
  const { page, cdp, authenticatorId } = await openWithAuthenticator();
  const email = await signUpInPage(page);
  const byPassword = (await page.evaluate(async () => (await fetch('/auth/me')).json())) as { amr: string[] };
  assert.equal(byPassword.amr, ['pwd'], 'the password login records pwd');

  await page.click('#passkey-add');
  await waitNotice(page, /Passkey added/);
  await page.locator('#passkeys-body tr').first().waitFor();
  assert.is(await page.locator('#passkeys-body tr').count(), 1);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.is(credentials.length, 1);
  assert.ok(credentials[0]?.isResidentCredential, 'a discoverable credential');

  await page.click('#logout');
  await waitNotice(page, /Logged out/);

  const login = await signInWithPasskey(page);
  assert.is(login.status, 200);
  await page.locator('#me-email').filter({ hasText: email }).waitFor();
  assert.match(login.cookie, /pk_attempt=/);
  // The page keeps no token: the login answer's tokens were not read into the page's storage.
  assert.is(await page.evaluate('localStorage.length + sessionStorage.length'), 0);
  const me = (await page.evaluate(async () => (await fetch('/auth/me')).json())) as {
    email: string;
    amr: string[];
    mfa: { totp: boolean; passkeys: number };
  };
  assert.is(me.email, email);
  // The virtual authenticator's key is not backup-eligible (device-bound) and verified the user.
  assert.equal(me.amr, ['hwk', 'mfa'], 'the passkey session records how it was made');
  assert.equal(me.mfa, { totp: false, passkeys: 1 });

  // Replay the captured response with its own attempt cookie, from outside the browser.
  const replay = await fetch(`${h.origin}/auth/passkeys/login/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: login.cookie },
    body: login.body,
  });
  assert.is(replay.status, 401);
  assert.is(((await replay.json()) as { error: string }).error, 'invalid_passkey');
  // And from the page itself (its attempt cookie was cleared with the challenge).
  const again = await page.evaluate(
    async (body) =>
      (
        await fetch('/auth/passkeys/login/verify', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body,
        })
      ).status,
    login.body,
  );
  assert.is(again, 401);
});

browserTest('a deleted passkey no longer signs in', async () => {
  const { page } = await openWithAuthenticator();
  await signUpInPage(page);
  await page.click('#passkey-add');
  await waitNotice(page, /Passkey added/);
  await page.locator('#passkeys-body tr .passkey-delete').first().click();
  await waitNotice(page, /Passkey deleted/);
  await page.locator('#passkeys-empty').waitFor();
  assert.is(await page.locator('#passkeys-body tr').count(), 0);

  await page.click('#logout');
  await waitNotice(page, /Logged out/);
  // The authenticator still holds the key; the server no longer knows it.
  const login = await signInWithPasskey(page);
  assert.is(login.status, 401);
  await waitNotice(page, /not accepted/);
  assert.ok(await page.locator('#me-signed-out').isVisible());
});

test.run();
