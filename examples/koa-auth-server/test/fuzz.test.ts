import { seededRandom as prng } from '@latchkey/testing';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signUp, startTestApp, type TestApp } from './helpers.js';

// A seeded fuzz of everything a client controls — bodies, types, tokens, cookies, headers, paths —
// on every route: the answer is never a 5xx, and the server keeps serving.

const SEED = Number(process.env['FUZZ_SEED'] ?? 20250601);
const ROUNDS = Number(process.env['FUZZ_ROUNDS'] ?? 700);

const ROUTES: ReadonlyArray<readonly [string, string]> = [
  ['GET', '/healthz'],
  ['POST', '/auth/register'],
  ['POST', '/auth/login'],
  ['GET', '/auth/me'],
  ['POST', '/auth/refresh'],
  ['POST', '/auth/logout'],
  ['POST', '/auth/logout-others'],
  ['POST', '/auth/logout-all'],
  ['GET', '/auth/sessions'],
  ['DELETE', '/auth/sessions/PLACEHOLDER'],
  ['POST', '/auth/password'],
  ['POST', '/auth/verify-email/request'],
  ['POST', '/auth/verify-email/confirm'],
  ['POST', '/auth/password-reset/request'],
  ['POST', '/auth/password-reset/confirm'],
  ['POST', '/auth/login/mfa'],
  ['POST', '/auth/login/mfa/email'],
  ['POST', '/auth/mfa/totp/setup'],
  ['GET', '/auth/mfa/totp/setup/qr.svg'],
  ['POST', '/auth/mfa/totp/confirm'],
  ['DELETE', '/auth/mfa/totp'],
  ['POST', '/auth/mfa/recovery-codes'],
  ['GET', '/dev/outbox'],
];

const FIELDS = [
  'email',
  'password',
  'refreshToken',
  'currentPassword',
  'newPassword',
  'code',
  'mfaToken',
  'method',
  '__proto__',
  'constructor',
];

interface Valid {
  email: string;
  password: string;
  accessToken: string;
  refreshToken: string;
  cookie: string;
  sessionId: string;
}

function generator(random: () => number, valid: Valid) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const int = (max: number): number => Math.floor(random() * max);
  const garbageString = (): string => {
    const kind = int(10);
    if (kind === 0) return '';
    if (kind === 1) return 'x'.repeat(int(20_000));
    if (kind === 2) return String.fromCharCode(...Array.from({ length: int(40) }, () => int(0x10000)));
    if (kind === 3) return '\ud800\udfff\ud800'.repeat(int(5) + 1);
    if (kind === 4) return pick([valid.email, valid.password, valid.refreshToken, valid.accessToken]);
    if (kind === 5)
      return `${pick([valid.refreshToken, valid.accessToken, valid.cookie])}${pick(['', 'x', '.', '=='])}`;
    if (kind === 6)
      return pick(['null', 'undefined', 'NaN', '0', '-1', 'true', '%00', '\u0000', '../../etc/passwd']);
    if (kind === 7) return `${'a'.repeat(int(300))}@${'b'.repeat(int(300))}.com`;
    if (kind === 8)
      return pick(['v1.', 'r1.', 'v4.public.', 'v4.local.', 'k4.secret.']) + 'A'.repeat(int(200));
    return random().toString(36).slice(2);
  };
  const garbageValue = (depth = 0): unknown => {
    const kind = int(depth > 3 ? 5 : 8);
    if (kind === 0) return garbageString();
    if (kind === 1) return pick([0, -1, 1e308, Number.MAX_SAFE_INTEGER, 3.14]);
    if (kind === 2) return pick([true, false, null]);
    if (kind === 3) return garbageString();
    if (kind === 4) return pick([valid.email, valid.password]);
    if (kind === 5) return Array.from({ length: int(5) }, () => garbageValue(depth + 1));
    return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(FIELDS), garbageValue(depth + 1)]));
  };
  const body = (): { body?: string; type?: string } => {
    const kind = int(12);
    if (kind === 0) return {};
    if (kind === 1) return { body: '{"email": "a@b.co", "password": ', type: 'application/json' }; // truncated
    if (kind === 2) return { body: `${'['.repeat(5000)}${']'.repeat(5000)}`, type: 'application/json' }; // deep
    if (kind === 3)
      return { body: `{"a":${'{"a":'.repeat(3000)}1${'}'.repeat(3001)}`, type: 'application/json' };
    if (kind === 4) return { body: JSON.stringify({ pad: 'x'.repeat(20_000) }), type: 'application/json' }; // huge
    if (kind === 5) {
      const form = `${pick(FIELDS)}[${pick(FIELDS)}][x]=${percentEncode(garbageString().slice(0, 200))}&a[]=1&a[]=2&a[__proto__]=x`;
      return { body: form, type: 'application/x-www-form-urlencoded' };
    }
    if (kind === 6)
      return {
        body: garbageString().slice(0, 1000),
        type: pick(['text/plain', 'application/xml', '', 'application/json; charset=latin-7']),
      };
    if (kind === 7) return { body: '\u0000\u0001binary', type: 'application/json' };
    const object = Object.fromEntries(FIELDS.filter(() => random() < 0.6).map((f) => [f, garbageValue()]));
    return {
      body: JSON.stringify(int(5) === 0 ? [object] : object),
      type: pick(['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON']),
    };
  };
  const headers = (): Record<string, string> => {
    const out: Record<string, string> = {};
    const cookieKind = int(6);
    if (cookieKind === 1) out['cookie'] = `sid=${valid.cookie}`;
    if (cookieKind === 2) out['cookie'] = `sid=${cookieSafe(garbageString()).slice(0, 2000)}`;
    if (cookieKind === 3) out['cookie'] = `sid=${valid.cookie}; sid=${valid.cookie}`;
    if (cookieKind === 4) out['cookie'] = `=;;; sid; sid==; ${'a=b; '.repeat(int(200))}`;
    const authKind = int(6);
    if (authKind === 1) out['authorization'] = `Bearer ${valid.accessToken}`;
    if (authKind === 2) out['authorization'] = `Bearer ${valid.accessToken.slice(0, -3)}AAA`;
    if (authKind === 3)
      out['authorization'] = pick([
        'Bearer',
        'Basic Zm9vOmJhcg==',
        'bearer  x y',
        `Bearer ${'A'.repeat(9000)}`,
      ]);
    if (authKind === 4)
      out['authorization'] =
        `Bearer v4.public.${Buffer.from(garbageString().slice(0, 300)).toString('base64url')}.${Buffer.from('{"kid":5}').toString('base64url')}`;
    if (int(4) === 0)
      out['origin'] = pick(['null', 'https://evil.example', '', 'garbage', 'http://[::1', 'http://a@b']);
    if (int(4) === 0) out['sec-fetch-site'] = pick(['cross-site', 'same-origin', 'none', 'garbage', '']);
    if (int(4) === 0)
      out['x-forwarded-for'] = pick(['', 'garbage', '::ffff:10.0.0.1', '1.2.3.4, , ,', 'a'.repeat(500)]);
    if (int(6) === 0) out['x-forwarded-proto'] = pick(['https', 'gopher', '']);
    if (int(8) === 0) out['content-encoding'] = pick(['gzip', 'br', 'deflate', 'identity', 'compress']);
    if (int(8) === 0) out['user-agent'] = 'u'.repeat(int(5000));
    return out;
  };
  const path = (template: string): string => {
    const p = template.replace(
      'PLACEHOLDER',
      pick([valid.sessionId, 'x', '%E0%A4%A', '%00', 'a'.repeat(500), '..%2F..']),
    );
    const query = int(4) === 0 ? `?to=${percentEncode(garbageString().slice(0, 300))}&to=x&__proto__=1` : '';
    return p + query;
  };
  return { pick, int, body, headers, path };
}

/** Every UTF-8 byte percent-encoded (lone surrogates included, as U+FFFD). */
function percentEncode(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

/** Only what fetch lets through in a header value (visible ASCII, no `;`). */
function cookieSafe(text: string): string {
  return [...text].filter((c) => c >= '!' && c <= '~' && c !== ';').join('');
}

const fuzz = suite<{ app: TestApp; valid: Valid }>('fuzz: client input never yields a 5xx');

fuzz.before(async (ctx) => {
  ctx.app = await startTestApp({
    env: { LOGIN_MAX_FAILURES: '100000', LOGIN_MAX_FAILURES_PER_IP: '100000' },
  });
  const client = ctx.app.client();
  const user = await signUp(client);
  ctx.valid = {
    ...user,
    cookie: client.jar.get('sid') as string,
    sessionId: (await client.get('/auth/me')).body.sessionId,
  };
});

fuzz.after(async (ctx) => {
  await ctx.app?.close();
});

fuzz(`${ROUNDS} seeded requests (seed ${SEED}) across every route and method`, async ({ app, valid }) => {
  const random = prng(SEED);
  const gen = generator(random, valid);
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];
  const seen = new Map<number, number>();
  for (let i = 0; i < ROUNDS; i++) {
    const [routeMethod, template] = gen.pick(ROUTES);
    const method = gen.int(5) === 0 ? gen.pick(methods) : routeMethod;
    const { body, type } = method === 'GET' || method === 'HEAD' ? {} : gen.body();
    const headers = gen.headers();
    if (type !== undefined) headers['content-type'] = type;
    const path = gen.path(template);
    let status: number;
    try {
      const response = await fetch(app.url + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
      await response.arrayBuffer();
      status = response.status;
    } catch (error) {
      // fetch itself refuses some inputs (e.g. a forbidden header value): not the server's answer.
      if (error instanceof TypeError && !String(error.cause ?? '').includes('ECONNRESET')) continue;
      throw new Error(`request ${i} (${method} ${path.slice(0, 60)}) failed: ${String(error)}`);
    }
    seen.set(status, (seen.get(status) ?? 0) + 1);
    assert.ok(status < 500, `request ${i}: ${method} ${path.slice(0, 80)} → ${status}`);
  }
  assert.ok((seen.get(400) ?? 0) > 0 && (seen.get(401) ?? 0) > 0, 'the fuzz reached validation and auth');
  if (process.env['FUZZ_DEBUG']) console.log([...seen].sort());
  const health = await fetch(`${app.url}/healthz`);
  assert.is(health.status, 200, 'still serving');
  assert.not.ok(
    app.logs.some((line) => line.includes('"level":50')),
    'no server error was logged',
  );
});

fuzz.run();
