// The example's page. Every action is one fetch() to the JSON API of this origin (so the browser sends
// `Sec-Fetch-Site: same-origin` and the CSRF guard lets it through). The session is the HttpOnly cookie
// alone: the page never reads, stores or forwards a token, not even the ones the login response
// carries. Everything shown comes from the server and is written with textContent, never as HTML.

const byId = (id) => document.getElementById(id);

/** The last `GET /auth/me` answer, or null when signed out. */
let me = null;

/** The last `GET /auth/me` answer (for the other scripts of the page), or null when signed out. */
export function currentUser() {
  return me;
}

const SESSION_ENDED = 'Your session has ended (logged out, revoked elsewhere, or expired). Log in again.';

export class ApiError extends Error {
  constructor(status, code, serverMessage, retryAfter) {
    super(`${status} ${code}`);
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage;
    this.retryAfter = retryAfter;
  }
}

/** One call to the API; resolves with the Response when it is 2xx, throws an ApiError otherwise. */
export async function api(method, path, body) {
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
    throw new ApiError(0, 'network_error', '', null);
  }
  if (response.ok) return response;
  let code = 'http_error';
  let serverMessage = '';
  try {
    const data = await response.json();
    if (typeof data.error === 'string') code = data.error;
    if (typeof data.message === 'string') serverMessage = data.message;
  } catch {
    // not JSON: the status alone describes it
  }
  throw new ApiError(response.status, code, serverMessage, response.headers.get('Retry-After'));
}

/** Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or null. */
function retryAfterSeconds(value) {
  if (value === null || value === '') return null;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function describeWait(seconds) {
  if (seconds < 60) return plural(Math.max(seconds, 1), 'second');
  if (seconds < 90 * 60) return plural(Math.ceil(seconds / 60), 'minute');
  return `about ${plural(Math.ceil(seconds / 3600), 'hour')}`;
}

/** An API error in words a person can act on. */
export function describe(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong in this page. Reload it and try again.';
  switch (error.status) {
    case 0:
      return 'Could not reach the server. Is it still running?';
    case 400:
      if (error.code === 'invalid_code') {
        if (error.retryAfter) return 'Too many wrong codes for this account. Try again later.';
        return 'That code is not valid: it is wrong, expired, already used, or out of attempts.';
      }
      return `The server could not accept this: ${error.serverMessage || 'check the form and try again'}.`;
    case 401:
      if (error.code === 'invalid_credentials') return 'Wrong email or password.';
      if (error.code === 'invalid_mfa_token') {
        return 'This login step has expired or was used up. Log in with your password again.';
      }
      if (error.code === 'reauthentication_required') {
        return 'For this, log in again first (your last login is more than 10 minutes old).';
      }
      return 'You are not signed in, or your session has ended. Log in again.';
    case 403:
      if (error.code === 'csrf_rejected') return 'The server refused this request as cross-site.';
      return 'The server refused this request.';
    case 404:
      return 'Not found: it no longer exists, or never did.';
    case 409:
      if (error.code === 'email_taken') return 'An account with this email already exists. Log in instead.';
      if (error.code === 'mfa_already_enabled') return 'Two-factor authentication is already on.';
      if (error.code === 'no_pending_setup') return 'Start the setup again: it expired or was replaced.';
      return 'This conflicts with something that already exists.';
    case 413:
      return 'That is more data than the server accepts.';
    case 429: {
      const seconds = retryAfterSeconds(error.retryAfter);
      return seconds === null
        ? 'Too many attempts. Try again later.'
        : `Too many attempts. Try again in ${describeWait(seconds)}.`;
    }
    case 503:
      return 'The server’s store is unavailable right now. Try again in a moment.';
    default:
      return `The request failed${error.serverMessage ? `: ${error.serverMessage}` : ''}.`;
  }
}

/** Shows one line of feedback; errors carry the HTTP status and error code in small print. */
export function notify(kind, text, error) {
  const notice = byId('notice');
  notice.replaceChildren(text);
  if (error instanceof ApiError && error.status !== 0) {
    const detail = document.createElement('span');
    detail.className = 'detail';
    detail.textContent = `HTTP ${error.status} · ${error.code}`;
    notice.append(detail);
  }
  notice.dataset.kind = kind;
  notice.hidden = false;
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401 && error.code === 'unauthenticated' && me) {
    showSignedOut();
    notify('error', SESSION_ENDED, error);
    return;
  }
  notify('error', describe(error), error);
}

/** Runs one action with its button disabled, reporting any error. */
async function busy(button, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    fail(error);
  } finally {
    button.disabled = false;
  }
}

export function onSubmit(formId, action) {
  const form = byId(formId);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(form.querySelector('button[type="submit"]'), () => action(form));
  });
}

export function onClick(buttonId, action) {
  const button = byId(buttonId);
  button.addEventListener('click', () => busy(button, action));
}

export function field(form, name) {
  const value = new FormData(form).get(name);
  return typeof value === 'string' ? value : '';
}

export function formatTime(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? String(iso) : at.toLocaleString();
}

function showSignedOut() {
  me = null;
  document.body.dataset.state = 'signed-out';
  for (const el of document.querySelectorAll('.signed-in')) el.hidden = true;
  for (const el of document.querySelectorAll('.signed-out')) el.hidden = false;
  byId('me-details').hidden = true;
  byId('me-signed-out').hidden = false;
  byId('sessions-body').replaceChildren();
}

function showSignedIn(data) {
  me = data;
  document.body.dataset.state = 'signed-in';
  for (const el of document.querySelectorAll('.signed-in')) el.hidden = false;
  for (const el of document.querySelectorAll('.signed-out')) el.hidden = true;
  byId('me-signed-out').hidden = true;
  byId('me-details').hidden = false;
  byId('me-email').textContent = data.email;
  byId('me-verified').textContent = data.emailVerified ? 'yes' : 'not yet';
  byId('me-user').textContent = data.userId;
  byId('me-session').textContent = data.sessionId;
  byId('me-via').textContent = data.via === 'session' ? 'session cookie' : String(data.via);
  byId('me-amr').textContent = describeAmr(data.amr ?? []);
  const factors = [
    data.mfa?.totp ? 'authenticator app' : '',
    data.mfa?.passkeys ? plural(data.mfa.passkeys, 'passkey') : '',
  ];
  byId('me-mfa').textContent = factors.filter((f) => f !== '').join(', ') || 'none';
  byId('verify-done').hidden = !data.emailVerified;
  byId('verify-steps').hidden = Boolean(data.emailVerified);
}

const AMR_WORDS = {
  pwd: 'password',
  otp: 'one-time code',
  hwk: 'passkey (device-bound)',
  swk: 'passkey (synced)',
  mfa: 'two factors',
};

/** RFC 8176 method references in words, with the raw values: "password + one-time code (pwd otp mfa)". */
function describeAmr(amr) {
  if (amr.length === 0) return '—';
  const words = amr.filter((v) => v !== 'mfa').map((v) => AMR_WORDS[v] ?? v);
  return `${words.join(' + ')}${amr.includes('mfa') ? ', two factors' : ''} (${amr.join(' ')})`;
}

/** Asks the server who this cookie belongs to, then shows the matching view. */
export async function refreshMe() {
  try {
    const response = await api('GET', '/auth/me');
    showSignedIn(await response.json());
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const wasSignedIn = me !== null;
      showSignedOut();
      if (wasSignedIn) notify('error', SESSION_ENDED, error);
      return;
    }
    throw error;
  }
  await refreshSessions();
}

async function refreshSessions() {
  const response = await api('GET', '/auth/sessions');
  const { sessions } = await response.json();
  const rows = sessions.map((session) => {
    const row = document.createElement('tr');
    row.dataset.sessionId = session.id;

    const id = document.createElement('td');
    const code = document.createElement('code');
    code.textContent = session.id.length > 12 ? `${session.id.slice(0, 12)}…` : session.id;
    code.title = session.id;
    id.append(code);
    if (session.current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'this browser';
      id.append(badge);
    }

    const created = document.createElement('td');
    created.textContent = formatTime(session.createdAt);
    const seen = document.createElement('td');
    seen.textContent = formatTime(session.lastSeenAt);

    const client = document.createElement('td');
    client.className = 'client';
    const parts = [session.ip, session.userAgent].filter((p) => typeof p === 'string' && p !== '');
    client.textContent = parts.length > 0 ? parts.join(' · ') : '—';
    client.title = client.textContent;

    const action = document.createElement('td');
    action.className = 'action';
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.className = 'danger small revoke';
    revoke.textContent = 'Revoke';
    revoke.setAttribute('aria-label', `Revoke the session created ${created.textContent}`);
    revoke.addEventListener('click', () => busy(revoke, () => revokeSession(session)));
    action.append(revoke);

    row.append(id, created, seen, client, action);
    return row;
  });
  byId('sessions-body').replaceChildren(...rows);
}

async function revokeSession(session) {
  try {
    await api('DELETE', `/auth/sessions/${encodeURIComponent(session.id)}`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    notify('error', 'That session had already ended.', error);
    await refreshSessions();
    return;
  }
  if (session.current) {
    showSignedOut();
    notify('ok', 'You revoked this browser’s session: you are logged out.');
    return;
  }
  notify('ok', 'Session revoked: that browser is logged out on its next request.');
  await refreshSessions();
}

/** The newest message of one purpose in the dev outbox, shown in `outputId` and filled into `input`. */
export async function showOutboxCode(email, purpose, outputId, input) {
  const output = byId(outputId);
  if (email === '') {
    notify('error', 'Enter the email address first.');
    return;
  }
  let data;
  try {
    const response = await api('GET', `/dev/outbox?to=${encodeURIComponent(email)}`);
    data = await response.json();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    output.hidden = true;
    notify('error', 'The dev outbox is off (production mode): the code went out by email.');
    return;
  }
  const messages = data.messages.filter((m) => m.purpose === purpose);
  const last = messages[messages.length - 1];
  if (last === undefined) {
    output.hidden = true;
    notify('error', `No ${purpose} code for ${email} in the dev outbox yet. Ask for one first.`);
    return;
  }
  const strong = document.createElement('strong');
  strong.className = 'code';
  strong.textContent = last.code;
  output.replaceChildren(`Dev outbox, ${purpose} for ${last.to}, sent ${formatTime(last.sentAt)}: `, strong);
  output.hidden = false;
  input.value = last.code;
}

onSubmit('register-form', async (form) => {
  const email = field(form, 'email');
  await api('POST', '/auth/register', { email, password: field(form, 'password') });
  form.reset();
  const login = byId('login-form');
  login.elements.namedItem('email').value = email;
  login.elements.namedItem('password').focus();
  notify('ok', `Account created for ${email}. Log in to start a session.`);
});

onSubmit('login-form', async (form) => {
  // The response body holds an access and a refresh token for API clients. This page does not read
  // it: the HttpOnly session cookie set by the same response is all it needs. Only when that cookie
  // made no session does it read the body — then the account has a second factor and the body is
  // `{ mfaRequired, mfaToken, methods }`, with no token in it — and mfa.js shows the second step.
  const email = field(form, 'email');
  const response = await api('POST', '/auth/login', { email, password: field(form, 'password') });
  form.elements.namedItem('password').value = '';
  await refreshMe();
  if (me === null) {
    const answer = await response.json();
    if (answer.mfaRequired === true) {
      document.dispatchEvent(
        new CustomEvent('latchkey:mfa-required', {
          detail: { email, mfaToken: answer.mfaToken, methods: answer.methods },
        }),
      );
      notify('ok', 'Password accepted. Now the second step.');
      return;
    }
  }
  notify('ok', me ? `Logged in as ${me.email}.` : 'Logged in.');
});

onClick('me-refresh', refreshMe);
onClick('sessions-refresh', refreshSessions);

onClick('logout', async () => {
  await api('POST', '/auth/logout');
  showSignedOut();
  notify('ok', 'Logged out. The server revoked the session and cleared the cookie.');
});

onClick('logout-others', async () => {
  await api('POST', '/auth/logout-others');
  await refreshSessions();
  notify('ok', 'Every other session of this account is logged out; this one stays.');
});

onClick('logout-all', async () => {
  await api('POST', '/auth/logout-all');
  showSignedOut();
  notify('ok', 'Logged out everywhere: every session and token of this account is revoked.');
});

onClick('verify-request', async () => {
  await api('POST', '/auth/verify-email/request');
  notify('ok', `A verification code is on its way to ${me?.email ?? 'your email'}.`);
});

onClick('verify-outbox', () =>
  showOutboxCode(
    me?.email ?? '',
    'verify-email',
    'verify-outbox-text',
    byId('verify-form').elements.namedItem('code'),
  ),
);

onSubmit('verify-form', async (form) => {
  await api('POST', '/auth/verify-email/confirm', { code: field(form, 'code') });
  form.reset();
  byId('verify-outbox-text').hidden = true;
  await refreshMe();
  notify('ok', 'Your email is verified.');
});

onSubmit('reset-request-form', async (form) => {
  const email = field(form, 'email');
  await api('POST', '/auth/password-reset/request', { email });
  // The server answers the same whether or not the account exists, and so does the page.
  notify('ok', `If an account exists for ${email}, a reset code is on its way.`);
});

onClick('reset-outbox', () =>
  showOutboxCode(
    field(byId('reset-request-form'), 'email'),
    'password-reset',
    'reset-outbox-text',
    byId('reset-confirm-form').elements.namedItem('code'),
  ),
);

onSubmit('reset-confirm-form', async (form) => {
  const email = field(byId('reset-request-form'), 'email');
  if (email === '') {
    notify('error', 'Enter the email address above first.');
    return;
  }
  await api('POST', '/auth/password-reset/confirm', {
    email,
    code: field(form, 'code'),
    newPassword: field(form, 'newPassword'),
  });
  form.reset();
  byId('reset-outbox-text').hidden = true;
  byId('login-form').elements.namedItem('email').value = email;
  await refreshMe();
  notify(
    'ok',
    'Password changed. Every session of that account is logged out: log in with the new password.',
  );
});

refreshMe().catch(fail);
