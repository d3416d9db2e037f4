// Two-factor authentication through the example's page in a real headless Chromium: turn TOTP on in
// the page (the QR code is an image the server drew, the key is shown as text), see the recovery codes
// once, log out, log in with the password and a TOTP code computed here (otpauth), then with a
// recovery code; the session records both factors (amr). A login step used up elsewhere ends the
// second step in the page.
//
// Without Chromium the tests are skipped with a loud line, unless LATCHKEY_REQUIRE_BROWSER=1 or
// CI=true, which turn that into a failure.
import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import type { Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { browserTests, pageHarness } from './chromium.js';

const PASSWORD = 'correct horse battery staple';

const test = suite('two-factor authentication in the page (headless Chromium)');
const browserTest = browserTests(test, 90_000);
const h = pageHarness(test);

/** A fresh browser context on the page. */
function open(): Promise<Page> {
  return h.open();
}

async function waitNotice(page: Page, text: RegExp): Promise<void> {
  await page.locator('#notice').filter({ hasText: text }).waitFor();
}

/** The TOTP code of `secret` at `at`, as an authenticator app computes it. */
function totpCode(secret: string, at: number): string {
  return OTPAuth.TOTP.generate({
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    timestamp: at,
  });
}

async function me(page: Page): Promise<{ email: string; amr: string[]; mfa: { totp: boolean } }> {
  return (await page.evaluate(async () => (await fetch('/auth/me')).json())) as {
    email: string;
    amr: string[];
    mfa: { totp: boolean };
  };
}

async function logInWithPassword(page: Page, email: string): Promise<void> {
  await page.fill('#login-form input[name="email"]', email);
  await page.fill('#login-form input[name="password"]', PASSWORD);
  await page.click('#login-form button[type="submit"]');
}

browserTest(
  'turn TOTP on in the page, then log in with password + TOTP, and with a recovery code; a used-up step ends',
  async () => {
    const page = await open();
    const email = `mfa-${randomBytes(4).toString('hex')}@example.test`;
    await page.fill('#register-form input[name="email"]', email);
    await page.fill('#register-form input[name="password"]', PASSWORD);
    await page.click('#register-form button[type="submit"]');
    await waitNotice(page, /Account created/);
    await logInWithPassword(page, email);
    await page.locator('#me-email').filter({ hasText: email }).waitFor();
    await page
      .locator('#me-amr')
      .filter({ hasText: /password/ })
      .waitFor();

    // Set up: the QR code is an SVG image of this origin, drawn by the server; the key is text.
    await page.click('#totp-setup');
    await page.locator('#totp-pending').waitFor();
    const secret = ((await page.textContent('#totp-secret')) ?? '').trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    const qr = page.locator('#totp-qr');
    // A string, evaluated in the page (the test's own tsconfig has no DOM types): the image loaded.
    await page.waitForFunction(
      "(() => { const img = document.getElementById('totp-qr'); return img.complete && img.naturalWidth > 0; })()",
    );
    assert.match((await qr.getAttribute('src')) ?? '', /^\/auth\/mfa\/totp\/setup\/qr\.svg/);
    const svg = await page.evaluate(
      async (src) => {
        const response = await fetch(src);
        return { type: response.headers.get('content-type'), text: await response.text() };
      },
      (await qr.getAttribute('src')) ?? '',
    );
    assert.match(svg.type ?? '', /^image\/svg\+xml/);
    assert.match(svg.text, /^<svg /);

    await page.fill('#totp-confirm-form input[name="code"]', totpCode(secret, Date.now()));
    await page.click('#totp-confirm-form button[type="submit"]');
    await waitNotice(page, /Two-factor authentication is on/);
    await page.locator('#recovery-codes li').first().waitFor();
    const recoveryCodes = await page.locator('#recovery-codes li').allTextContents();
    assert.is(recoveryCodes.length, 10);
    assert.ok((await me(page)).mfa.totp);
    await page
      .locator('#me-mfa')
      .filter({ hasText: /authenticator app/ })
      .waitFor();

    // Log out; the recovery codes are not shown again.
    await page.click('#logout');
    await waitNotice(page, /Logged out/);
    assert.not.ok(await page.locator('#recovery').isVisible());

    // Password, then the next step's TOTP code (the confirmation spent the current one; ±1 step counts).
    await logInWithPassword(page, email);
    await waitNotice(page, /second step/);
    await page.locator('#mfa-step').waitFor();
    assert.not.ok(await page.locator('#me-details').isVisible(), 'not signed in after the password alone');
    await page.selectOption('#mfa-method', 'totp');
    await page.fill('#mfa-form input[name="code"]', totpCode(secret, Date.now() + 30_000));
    await page.click('#mfa-form button[type="submit"]');
    await waitNotice(page, /Logged in with two factors/);
    await page.locator('#me-email').filter({ hasText: email }).waitFor();
    assert.equal((await me(page)).amr, ['pwd', 'otp', 'mfa']);
    await page
      .locator('#me-amr')
      .filter({ hasText: /two factors/ })
      .waitFor();
    assert.is(
      await page.evaluate('localStorage.length + sessionStorage.length'),
      0,
      'the page stores nothing',
    );

    // Again with a recovery code.
    await page.click('#logout');
    await waitNotice(page, /Logged out/);
    await logInWithPassword(page, email);
    await page.locator('#mfa-step').waitFor();
    await page.selectOption('#mfa-method', 'recovery-code');
    await page.fill('#mfa-form input[name="code"]', recoveryCodes[0] ?? '');
    await page.click('#mfa-form button[type="submit"]');
    await waitNotice(page, /Logged in with two factors/);
    assert.equal((await me(page)).amr, ['pwd', 'otp', 'mfa']);

    // A used recovery code is refused the second time.
    await page.click('#logout');
    await waitNotice(page, /Logged out/);
    await logInWithPassword(page, email);
    await page.locator('#mfa-step').waitFor();
    await page.selectOption('#mfa-method', 'recovery-code');
    await page.fill('#mfa-form input[name="code"]', recoveryCodes[0] ?? '');
    await page.click('#mfa-form button[type="submit"]');
    await waitNotice(page, /code is not valid/);
    assert.ok(await page.locator('#me-signed-out').isVisible());
    assert.ok(await page.locator('#mfa-step').isVisible(), 'a wrong code keeps the second step');

    // A login step used up elsewhere (finished in another tab, or by a double submission): the page's
    // next try answers 401 invalid_mfa_token, which ends the second step; the page stays signed out.
    await page.click('#mfa-cancel');
    const answered = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/auth/login',
    );
    await logInWithPassword(page, email);
    const { mfaToken } = (await (await answered).json()) as { mfaToken: string };
    await page.locator('#mfa-step').waitFor();
    const elsewhere = await fetch(`${h.origin}/auth/login/mfa`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mfaToken, method: 'recovery-code', code: recoveryCodes[1] }),
    });
    assert.is(elsewhere.status, 200, 'the step was completed outside the page');
    await page.selectOption('#mfa-method', 'recovery-code');
    await page.fill('#mfa-form input[name="code"]', recoveryCodes[2] ?? '');
    await page.click('#mfa-form button[type="submit"]');
    await waitNotice(page, /login step has expired or was used up/);
    await page.locator('#mfa-step').waitFor({ state: 'hidden' });
    assert.ok(await page.locator('#me-signed-out').isVisible());
    // The page is back at the first step: the password starts a new second step.
    await logInWithPassword(page, email);
    await page.locator('#mfa-step').waitFor();
  },
);

test.run();
