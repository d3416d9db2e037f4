// The page's second-factor parts: the second login step (after a password that answered
// `mfaRequired`), and the "Two-factor authentication" card — set up an authenticator app (the QR code
// is an SVG drawn by the server, loaded as an image of this origin), confirm it, see the recovery codes
// once, get new ones, turn it off. The mfaToken of a pending login lives in this module's memory only,
// for at most its 5 minutes; like the rest of the page, nothing is stored.

import {
  ApiError,
  api,
  currentUser,
  field,
  notify,
  onClick,
  onSubmit,
  refreshMe,
  showOutboxCode,
} from '/app.js';

const byId = (id) => document.getElementById(id);

/** The pending login: { email, mfaToken, methods }, or null. */
let pending = null;
/** How many setups this page started (a fresh QR image URL for each). */
let setups = 0;

/**
 * A second-step action: a spent, expired or burned mfaToken also ends the second step (the error is
 * then reported by app.js like any other).
 */
function secondStep(action) {
  return async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      if (error instanceof ApiError && error.code === 'invalid_mfa_token') endSecondStep();
      throw error;
    }
  };
}

// --- the second login step ----------------------------------------------------------------------------

function startSecondStep(detail) {
  pending = detail;
  const select = byId('mfa-method');
  for (const option of select.options) option.hidden = !detail.methods.includes(option.value);
  select.value = detail.methods[0] ?? 'totp';
  byId('mfa-email-actions').hidden = !detail.methods.includes('email');
  byId('mfa-outbox-text').hidden = true;
  byId('mfa-form').reset();
  select.value = detail.methods[0] ?? 'totp';
  byId('mfa-step').hidden = false;
  byId('mfa-form').elements.namedItem('code').focus();
}

function endSecondStep() {
  pending = null;
  byId('mfa-step').hidden = true;
  byId('mfa-form').reset();
  byId('mfa-outbox-text').hidden = true;
}

document.addEventListener('latchkey:mfa-required', (event) => startSecondStep(event.detail));

onSubmit(
  'mfa-form',
  secondStep(async (form) => {
    if (pending === null) {
      notify('error', 'Log in with your password first.');
      return;
    }
    const method = field(form, 'method');
    // The answer carries tokens for API clients; the page needs only the session cookie it sets.
    await api('POST', '/auth/login/mfa', {
      mfaToken: pending.mfaToken,
      method,
      code: field(form, 'code').trim(),
    });
    endSecondStep();
    await refreshMe();
    notify('ok', 'Logged in with two factors.');
  }),
);

onClick(
  'mfa-email',
  secondStep(async () => {
    if (pending === null) return;
    await api('POST', '/auth/login/mfa/email', { mfaToken: pending.mfaToken });
    byId('mfa-method').value = 'email';
    notify('ok', `A sign-in code is on its way to ${pending.email}.`);
  }),
);

onClick(
  'mfa-outbox',
  secondStep(async () => {
    if (pending === null) return;
    byId('mfa-method').value = 'email';
    await showOutboxCode(
      pending.email,
      '2fa',
      'mfa-outbox-text',
      byId('mfa-form').elements.namedItem('code'),
    );
  }),
);

onClick('mfa-cancel', async () => endSecondStep());

// --- TOTP setup, recovery codes, turning it off --------------------------------------------------------

function showRecoveryCodes(codes) {
  const items = codes.map((code) => {
    const item = document.createElement('li');
    item.textContent = code;
    return item;
  });
  byId('recovery-codes').replaceChildren(...items);
  byId('recovery').hidden = false;
}

function hideSetup() {
  byId('totp-pending').hidden = true;
  byId('totp-secret').textContent = '';
  byId('totp-qr').removeAttribute('src');
  byId('totp-confirm-form').reset();
}

/** Shows the card for the signed-in user (`GET /auth/me`'s `mfa.totp`). */
function showTotpState() {
  const user = currentUser();
  const on = Boolean(user?.mfa?.totp);
  byId('totp-status').textContent = on
    ? 'On: logging in asks for a code from your authenticator app (or a recovery code).'
    : 'Off: logging in needs your password only.';
  byId('totp-on').hidden = !on;
  byId('totp-off').hidden = on;
  if (on) hideSetup();
}

onClick('totp-setup', async () => {
  const response = await api('POST', '/auth/mfa/totp/setup');
  const { secret } = await response.json();
  byId('recovery').hidden = true;
  byId('totp-secret').textContent = secret;
  // A new image each time: a new setup replaces the previous one (the answer is no-store anyway).
  // The URL carries a counter, never a part of the key (URLs end up in logs).
  setups += 1;
  byId('totp-qr').src = `/auth/mfa/totp/setup/qr.svg?setup=${setups}`;
  byId('totp-pending').hidden = false;
  byId('totp-confirm-form').elements.namedItem('code').focus();
});

onSubmit('totp-confirm-form', async (form) => {
  const response = await api('POST', '/auth/mfa/totp/confirm', { code: field(form, 'code').trim() });
  const { recoveryCodes } = await response.json();
  hideSetup();
  await refreshMe();
  showRecoveryCodes(recoveryCodes);
  notify('ok', 'Two-factor authentication is on. Your other sessions were logged out.');
});

onSubmit('totp-disable-form', async (form) => {
  await api('DELETE', '/auth/mfa/totp', { code: field(form, 'code').trim() });
  form.reset();
  byId('recovery').hidden = true;
  await refreshMe();
  notify('ok', 'Two-factor authentication is off. Your other sessions were logged out.');
});

onClick('recovery-regenerate', async () => {
  const response = await api('POST', '/auth/mfa/recovery-codes');
  const { recoveryCodes } = await response.json();
  showRecoveryCodes(recoveryCodes);
  notify('ok', 'New recovery codes: the old ones no longer work.');
});

// app.js switches the page between signed in and out (body[data-state]) and refreshes `me`.
new MutationObserver(() => {
  if (document.body.dataset.state === 'signed-in') {
    endSecondStep();
    showTotpState();
  } else {
    hideSetup();
    byId('recovery').hidden = true;
    byId('recovery-codes').replaceChildren();
  }
}).observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
