// The page's passkey parts: "Sign in with a passkey" on the login card, and the list of the account's
// passkeys with "Add a passkey" and delete. WebAuthn options and responses travel as JSON with binary
// fields in base64url (what @simplewebauthn/server produces and expects); the helpers below convert.
// Like app.js, this keeps no token: a passkey login sets the HttpOnly session cookie and nothing else.

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

class PasskeyError extends Error {
  constructor(status, code, serverMessage) {
    super(`${status} ${code}`);
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

async function call(method, path, body) {
  const init = {
    method,
    headers: { Accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new PasskeyError(0, 'network_error', '');
  }
  if (response.ok) return response.status === 204 ? null : response.json();
  let code = 'http_error';
  let serverMessage = '';
  try {
    const data = await response.json();
    if (typeof data.error === 'string') code = data.error;
    if (typeof data.message === 'string') serverMessage = data.message;
  } catch {
    // not JSON
  }
  throw new PasskeyError(response.status, code, serverMessage);
}

function notify(kind, text, error) {
  const notice = byId('notice');
  notice.replaceChildren(text);
  if (error instanceof PasskeyError && error.status !== 0) {
    const detail = document.createElement('span');
    detail.className = 'detail';
    detail.textContent = `HTTP ${error.status} · ${error.code}`;
    notice.append(detail);
  }
  notice.dataset.kind = kind;
  notice.hidden = false;
}

function describe(error) {
  if (error instanceof DOMException) {
    if (error.name === 'NotAllowedError') return 'The passkey prompt was cancelled or timed out.';
    if (error.name === 'InvalidStateError')
      return 'This authenticator already holds a passkey for this account.';
    return `The browser refused: ${error.message}`;
  }
  if (!(error instanceof PasskeyError)) return 'Something went wrong in this page. Reload it and try again.';
  switch (error.code) {
    case 'invalid_passkey':
      return 'The passkey was not accepted (unknown, removed, or the attempt expired). Try again.';
    case 'reauthentication_required':
      return 'For this, log in again with your password first (your last login is more than 10 minutes old).';
    case 'email_not_verified':
      return 'Verify your email address before adding a passkey.';
    case 'too_many_attempts':
      return 'Too many attempts. Try again later.';
    case 'unauthenticated':
      return 'You are not signed in, or your session has ended. Log in again.';
    case 'network_error':
      return 'Could not reach the server. Is it still running?';
    default:
      return `The request failed${error.serverMessage ? `: ${error.serverMessage}` : ''}.`;
  }
}

async function busy(button, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    notify('error', describe(error), error);
  } finally {
    button.disabled = false;
  }
}

function formatTime(iso) {
  if (iso === null) return 'never';
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? String(iso) : at.toLocaleString();
}

async function refreshPasskeys() {
  const { passkeys } = await call('GET', '/auth/passkeys');
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
    used.textContent = formatTime(passkey.lastUsedAt);
    const action = document.createElement('td');
    action.className = 'action';
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'danger small passkey-delete';
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete the passkey added ${created.textContent}`);
    remove.addEventListener('click', () =>
      busy(remove, async () => {
        await call('DELETE', `/auth/passkeys/${encodeURIComponent(passkey.id)}`);
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

async function addPasskey() {
  if (!window.PublicKeyCredential) {
    notify('error', 'This browser does not support passkeys.');
    return;
  }
  const options = await call('POST', '/auth/passkeys/register/options');
  const credential = await navigator.credentials.create({
    publicKey: {
      ...options,
      challenge: toBytes(options.challenge),
      user: { ...options.user, id: toBytes(options.user.id) },
      excludeCredentials: (options.excludeCredentials ?? []).map((c) => ({ ...c, id: toBytes(c.id) })),
    },
  });
  const response = credential.response;
  await call('POST', '/auth/passkeys/register/verify', {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    ...(credential.authenticatorAttachment
      ? { authenticatorAttachment: credential.authenticatorAttachment }
      : {}),
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      attestationObject: toBase64url(response.attestationObject),
      transports: typeof response.getTransports === 'function' ? response.getTransports() : [],
    },
  });
  notify('ok', 'Passkey added. Your other sessions were logged out.');
  await refreshPasskeys();
}

async function signInWithPasskey() {
  if (!window.PublicKeyCredential) {
    notify('error', 'This browser does not support passkeys.');
    return;
  }
  const options = await call('POST', '/auth/passkeys/login/options');
  const credential = await navigator.credentials.get({
    publicKey: {
      ...options,
      challenge: toBytes(options.challenge),
      allowCredentials: (options.allowCredentials ?? []).map((c) => ({ ...c, id: toBytes(c.id) })),
    },
  });
  const response = credential.response;
  await call('POST', '/auth/passkeys/login/verify', {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    ...(credential.authenticatorAttachment
      ? { authenticatorAttachment: credential.authenticatorAttachment }
      : {}),
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      ...(response.userHandle ? { userHandle: toBase64url(response.userHandle) } : {}),
    },
  });
  // app.js owns the signed-in view: its refresh button asks the server who this cookie belongs to.
  byId('me-refresh').click();
  notify('ok', 'Signed in with a passkey.');
}

const addButton = byId('passkey-add');
addButton.addEventListener('click', () => busy(addButton, addPasskey));
const loginButton = byId('passkey-login');
loginButton.addEventListener('click', () => busy(loginButton, signInWithPasskey));

// app.js switches the page between signed in and out (body[data-state]); the list follows.
new MutationObserver(() => {
  if (document.body.dataset.state === 'signed-in')
    refreshPasskeys().catch((error) => notify('error', describe(error), error));
  else byId('passkeys-body').replaceChildren();
}).observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
