// The page's passkey parts: "Sign in with a passkey" on the login card, and the list of the account's
// passkeys with "Add a passkey" and delete. WebAuthn options and responses travel as JSON with binary
// fields in base64url (what @simplewebauthn/server produces and expects); the helpers below convert.
// Like app.js (whose API helpers it uses), this keeps no token: a passkey login sets the HttpOnly session
// cookie and nothing else.

import { ApiError, api, describe, formatTime, notify, refreshMe } from '/app.js';

const byId = (id) => document.getElementById(id);

function toBytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function toBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The passkey-specific answers in words; everything else as app.js says it. */
function explain(error) {
  if (error instanceof DOMException) {
    if (error.name === 'NotAllowedError') return 'The passkey prompt was cancelled or timed out.';
    if (error.name === 'InvalidStateError')
      return 'This authenticator already holds a passkey for this account.';
    return `The browser refused: ${error.message}`;
  }
  if (error instanceof ApiError) {
    if (error.code === 'invalid_passkey') {
      return 'The passkey was not accepted (unknown, removed, or the attempt expired). Try again.';
    }
    if (error.code === 'reauthentication_required') {
      return 'For this, log in again with your password first (your last login is more than 10 minutes old).';
    }
    if (error.code === 'email_not_verified') return 'Verify your email address before adding a passkey.';
  }
  return describe(error);
}

async function json(method, path, body) {
  const response = await api(method, path, body);
  return response.status === 204 ? null : response.json();
}

async function busy(button, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    notify('error', explain(error), error);
  } finally {
    button.disabled = false;
  }
}

async function refreshPasskeys() {
  const { passkeys } = await json('GET', '/auth/passkeys');
  const rows = passkeys.map((passkey) => {
    const row = document.createElement('tr');
    row.dataset.passkeyId = passkey.id;
    const id = document.createElement('td');
    const code = document.createElement('code');
    code.textContent = passkey.id.length > 12 ? `${passkey.id.slice(0, 12)}…` : passkey.id;
    code.title = passkey.id;
    id.append(code);
    const created = document.createElement('td');
    created.textContent = formatTime(passkey.createdAt);
    const used = document.createElement('td');
    used.textContent = passkey.lastUsedAt === null ? 'never' : formatTime(passkey.lastUsedAt);
    const action = document.createElement('td');
    action.className = 'action';
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'danger small passkey-delete';
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete the passkey added ${created.textContent}`);
    remove.addEventListener('click', () =>
      busy(remove, async () => {
        await json('DELETE', `/auth/passkeys/${encodeURIComponent(passkey.id)}`);
        notify('ok', 'Passkey deleted. Your other sessions were logged out.');
        await refreshPasskeys();
      }),
    );
    action.append(remove);
    row.append(id, created, used, action);
    return row;
  });
  byId('passkeys-body').replaceChildren(...rows);
  byId('passkeys-empty').hidden = rows.length > 0;
}

/** A PublicKeyCredential as the JSON the server reads, with the response's own fields. */
function credentialJSON(credential, responseFields) {
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    ...(credential.authenticatorAttachment
      ? { authenticatorAttachment: credential.authenticatorAttachment }
      : {}),
    response: { clientDataJSON: toBase64url(credential.response.clientDataJSON), ...responseFields },
  };
}

function supported() {
  if (window.PublicKeyCredential) return true;
  notify('error', 'This browser does not support passkeys.');
  return false;
}

async function addPasskey() {
  if (!supported()) return;
  const options = await json('POST', '/auth/passkeys/register/options');
  const credential = await navigator.credentials.create({
    publicKey: {
      ...options,
      challenge: toBytes(options.challenge),
      user: { ...options.user, id: toBytes(options.user.id) },
      excludeCredentials: (options.excludeCredentials ?? []).map((c) => ({ ...c, id: toBytes(c.id) })),
    },
  });
  const { response } = credential;
  const transports = typeof response.getTransports === 'function' ? response.getTransports() : [];
  await json(
    'POST',
    '/auth/passkeys/register/verify',
    credentialJSON(credential, { attestationObject: toBase64url(response.attestationObject), transports }),
  );
  notify('ok', 'Passkey added. Your other sessions were logged out.');
  await refreshPasskeys();
}

async function signInWithPasskey() {
  if (!supported()) return;
  const options = await json('POST', '/auth/passkeys/login/options');
  const credential = await navigator.credentials.get({
    publicKey: { ...options, challenge: toBytes(options.challenge), allowCredentials: [] },
  });
  const { response } = credential;
  await json(
    'POST',
    '/auth/passkeys/login/verify',
    credentialJSON(credential, {
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      ...(response.userHandle ? { userHandle: toBase64url(response.userHandle) } : {}),
    }),
  );
  // app.js owns the signed-in view: it asks the server who this cookie belongs to.
  await refreshMe();
  notify('ok', 'Signed in with a passkey.');
}

const addButton = byId('passkey-add');
addButton.addEventListener('click', () => busy(addButton, addPasskey));
const loginButton = byId('passkey-login');
loginButton.addEventListener('click', () => busy(loginButton, signInWithPasskey));

// app.js switches the page between signed in and out (body[data-state]); the list follows.
new MutationObserver(() => {
  if (document.body.dataset.state === 'signed-in')
    refreshPasskeys().catch((error) => notify('error', explain(error), error));
  else byId('passkeys-body').replaceChildren();
}).observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
