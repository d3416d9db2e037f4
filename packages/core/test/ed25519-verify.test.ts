import { type Claims, ClaimValidationError, InvalidTokenError, PublicProtocol } from 'paseto';
import { ImportPublicKeyFactory, ImportSecretKeyFactory, SignFactory, VerifyFactory } from 'paseto/v4/public';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateDevelopmentKey } from '../src/index.js';
import { openV4Public, pae } from '../src/internal/ed25519-verify.js';
import { type RegisteredClaimRules, registeredClaimsFailure } from '../src/internal/paseto-claims.js';
import { iso, signV4Public } from './helpers/paseto.js';

const paeSuite = suite('pae');

paeSuite('matches the PASETO specification examples', () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  assert.is(hex(pae([])), '0000000000000000');
  assert.is(hex(pae([new Uint8Array(0)])), '01000000000000000000000000000000');
  assert.is(hex(pae([new TextEncoder().encode('test')])), `0100000000000000040000000000000074657374`);
});

paeSuite.run();

// The one-pass verifier (openV4Public, then registeredClaimsFailure) against paseto's own Verify (Web
// Crypto), on every token shape that passes AccessTokens' TOKEN pattern: the verdict — the claims, or
// which failure — must be the same for each.
const verifySuite = suite('openV4Public + registeredClaimsFailure');

const paseto = new PublicProtocol(ImportPublicKeyFactory, ImportSecretKeyFactory, SignFactory, VerifyFactory);
const text = (value: string) => new TextEncoder().encode(value);
const IMPLICIT = text('latchkey/access-token/v1');
const FOOTER = '{"kid":"k1"}';
/** What reaches the one-pass verifier in AccessTokens (the same pattern as there). */
const TOKEN = /^v4\.public\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
const NOW = Date.parse('2026-12-05T12:00:00Z');
const TOLERANCE = 5000;
const rulesOf = (overrides: Partial<RegisteredClaimRules> = {}): RegisteredClaimRules => ({
  now: NOW,
  clockToleranceMs: TOLERANCE,
  issuer: undefined,
  audience: undefined,
  ...overrides,
});

const dev = await generateDevelopmentKey();
const other = await generateDevelopmentKey();
const key = await paseto.ImportPublicKey(dev.public as `k4.public.${string}`);
const otherKey = await paseto.ImportPublicKey(other.public as `k4.public.${string}`);
const secret = await paseto.ImportSecretKey(dev.secret as `k4.secret.${string}`);

/** How AccessTokens mapped paseto's errors before it verified in one pass: the reference verdicts. */
function referenceFailure(error: unknown): string {
  if (error instanceof ClaimValidationError) {
    if (error.claim === 'exp' && error.message.includes('expired')) return 'expired';
    if (
      (error.claim === 'nbf' && error.message.includes('not active')) ||
      (error.claim === 'iat' && error.message.includes('future'))
    ) {
      return 'not_yet_valid';
    }
    return 'claims';
  }
  if (error instanceof InvalidTokenError) {
    return error.message.includes('signature') ? 'invalid_signature' : 'malformed';
  }
  return `threw ${String(error)}`;
}

async function reference(
  publicKey: typeof key,
  token: string,
  implicit: Uint8Array,
  rules: RegisteredClaimRules,
): Promise<string> {
  try {
    const { claims } = await paseto.Verify(publicKey, token, {
      implicitAssertion: implicit,
      now: new Date(rules.now),
      clockTolerance: rules.clockToleranceMs / 1000,
      ...(rules.issuer === undefined ? {} : { issuer: rules.issuer }),
      ...(rules.audience === undefined ? {} : { audience: rules.audience }),
    });
    return `ok ${JSON.stringify(claims)}`;
  } catch (error) {
    return referenceFailure(error);
  }
}

function candidate(
  publicKey: typeof key,
  token: string,
  implicit: Uint8Array,
  rules: RegisteredClaimRules,
): string | null {
  const match = TOKEN.exec(token);
  if (match === null) return null;
  const [, body, footerText] = match as unknown as [string, string, string];
  const claims = openV4Public(publicKey, body, footerText, Buffer.from(footerText, 'base64url'), implicit);
  if (typeof claims === 'string') return claims;
  return registeredClaimsFailure(claims, rules) ?? `ok ${JSON.stringify(claims)}`;
}

interface Case {
  readonly token: string;
  readonly key?: typeof key;
  readonly implicit?: Uint8Array;
  readonly rules?: RegisteredClaimRules;
}

/** Compares every case; returns how many reached the verifier, by verdict. */
async function compare(cases: readonly Case[]): Promise<Map<string, number>> {
  const verdicts = new Map<string, number>();
  for (const c of cases) {
    const args = [c.key ?? key, c.token, c.implicit ?? IMPLICIT, c.rules ?? rulesOf()] as const;
    const got = candidate(...args);
    if (got === null) continue;
    const expected = await reference(...args);
    assert.is(got, expected, `${c.token} ${JSON.stringify(c.rules ?? {})}`);
    const kind = expected.startsWith('ok ') ? 'ok' : expected;
    verdicts.set(kind, (verdicts.get(kind) ?? 0) + 1);
  }
  return verdicts;
}

const sign = (payload: string | Uint8Array, footer: string | Uint8Array = FOOTER, implicit = IMPLICIT) =>
  signV4Public(dev.secret, payload, footer, implicit);
const claimsAt = (extra: Record<string, unknown>) =>
  JSON.stringify({ sub: 'u1', sid: 's1', jti: 'j1', iat: iso(NOW - 1000), exp: iso(NOW + 60_000), ...extra });
const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

verifySuite(
  'agrees on a valid token and every bit flipped in its payload, signature and footer',
  async () => {
    const token = await paseto.Sign(secret, JSON.parse(claimsAt({})) as Claims, {
      footer: text(FOOTER),
      implicitAssertion: IMPLICIT,
      addIssuedAt: false,
    });
    const [, , body, footer] = token.split('.') as [string, string, string, string];
    const payload = Buffer.from(body, 'base64url');
    const footerBytes = Buffer.from(footer, 'base64url');
    const cases: Case[] = [{ token }];
    for (let i = 0; i < payload.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(payload);
        tampered[i] = (tampered[i] as number) ^ (1 << bit);
        cases.push({ token: `v4.public.${tampered.toString('base64url')}.${footer}` });
      }
    }
    for (let i = 0; i < footerBytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(footerBytes);
        tampered[i] = (tampered[i] as number) ^ (1 << bit);
        cases.push({ token: `v4.public.${body}.${tampered.toString('base64url')}` });
      }
    }
    const verdicts = await compare(cases);
    assert.is(verdicts.get('ok'), 1);
    assert.is(verdicts.get('invalid_signature'), cases.length - 1, 'every flip reached the signature check');
  },
);

verifySuite('agrees on every character of the token text replaced, removed or appended', async () => {
  const token = sign(claimsAt({}));
  const cases: Case[] = [];
  const start = 'v4.public.'.length;
  for (let i = start; i < token.length; i++) {
    if (token[i] === '.') continue;
    for (const replacement of [
      B64U[(B64U.indexOf(token[i] as string) + 1) % 64],
      B64U[(B64U.indexOf(token[i] as string) + 32) % 64],
    ]) {
      cases.push({ token: `${token.slice(0, i)}${replacement}${token.slice(i + 1)}` });
    }
    cases.push({ token: `${token.slice(0, i)}${token.slice(i + 1)}` });
  }
  const dot = token.lastIndexOf('.');
  for (const extra of ['A', 'AA', 'AAA', 'AAAA', 'B', 'Bw']) {
    cases.push({ token: `${token.slice(0, dot)}${extra}${token.slice(dot)}` });
    cases.push({ token: `${token}${extra}` });
  }
  const verdicts = await compare(cases);
  assert.ok(
    (verdicts.get('malformed') ?? 0) >= 10,
    'non-canonical and odd-length base64url reached the verifier',
  );
  assert.ok((verdicts.get('invalid_signature') ?? 0) >= 400);
});

verifySuite('agrees on non-canonical last characters, odd lengths and short payloads', async () => {
  const cases: Case[] = [];
  // Payload lengths 63..67 bytes: no message, an empty message, and base64url of every length mod 4.
  for (const length of [1, 2, 3, 63, 64, 65, 66, 67]) {
    cases.push({
      token: `v4.public.${Buffer.alloc(length, 0x41).toString('base64url')}.${Buffer.from(FOOTER).toString('base64url')}`,
    });
  }
  // Every spelling of the last character of payload and footer (only one is canonical).
  for (const payloadText of ['{}', '{"a":1}', claimsAt({})]) {
    const token = sign(payloadText);
    const [, , body, footer] = token.split('.') as [string, string, string, string];
    for (const c of B64U) {
      cases.push({ token: `v4.public.${body.slice(0, -1)}${c}.${footer}` });
      cases.push({ token: `v4.public.${body}.${footer.slice(0, -1)}${c}` });
    }
  }
  const verdicts = await compare(cases);
  assert.is(verdicts.get('malformed'), 53, 'short payloads and non-canonical spellings');
  assert.is(verdicts.get('ok'), 2, 'the canonical spelling of the claims token');
});

verifySuite('agrees on other keys, implicit assertions and footers', async () => {
  const payload = claimsAt({});
  const verdicts = await compare([
    { token: sign(payload), key: otherKey },
    { token: sign(payload), implicit: new Uint8Array(0) },
    { token: sign(payload), implicit: text('latchkey/access-token/v2') },
    { token: sign(payload, FOOTER, new Uint8Array(0)) },
    { token: sign(payload, FOOTER, new Uint8Array(0)), implicit: new Uint8Array(0) },
    { token: sign(payload, '{"kid":"k1","x":1}') },
    { token: sign(payload, ' ') },
    { token: sign(payload, new Uint8Array([0xff, 0x00, 0xfe])) },
    { token: sign(payload, 'x'.repeat(500)) },
  ]);
  assert.is(verdicts.get('invalid_signature'), 4);
  assert.is(verdicts.get('ok'), 5);
});

verifySuite('agrees on payloads that are not a JSON object, signed with the key', async () => {
  const payloads: Array<string | Uint8Array> = [
    '',
    'null',
    'true',
    '42',
    '"text"',
    '[]',
    `[${claimsAt({})}]`,
    'not json',
    `${claimsAt({})} trailing`,
    `${claimsAt({})}\n`,
    `  ${claimsAt({})}`,
    `\uFEFF${claimsAt({})}`,
    new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), // {"a":"<0xff>"}
    new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]), // a lone surrogate
    '{"a":"\\ud800"}',
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    claimsAt({ __proto__: { exp: 'x' } }).replace('"sub"', '"__proto__":{"exp":1},"sub"'),
  ];
  const verdicts = await compare(payloads.map((p) => ({ token: sign(p) })));
  assert.is(verdicts.get('malformed'), 12);
  assert.is(verdicts.get('ok'), 4, 'surrounding whitespace, a BOM and __proto__ parse as paseto parses them');
});

verifySuite('agrees on exp, nbf and iat at the edges of the clock tolerance', async () => {
  const cases: Case[] = [];
  for (const tolerance of [0, 1001, TOLERANCE, 3_600_000]) {
    const rules = rulesOf({ clockToleranceMs: tolerance });
    for (const delta of [-1000, 0, 1000]) {
      const edge = tolerance + delta;
      cases.push({ token: sign(claimsAt({ exp: iso(NOW - edge) })), rules });
      cases.push({ token: sign(claimsAt({ nbf: iso(NOW + edge) })), rules });
      cases.push({ token: sign(claimsAt({ iat: iso(NOW + edge) })), rules });
    }
    // Milliseconds, not just whole seconds, around each edge.
    for (const ms of [-1, 0, 1]) {
      cases.push({ token: sign(claimsAt({ exp: new Date(NOW - tolerance + ms).toISOString() })), rules });
      cases.push({ token: sign(claimsAt({ nbf: new Date(NOW + tolerance + ms).toISOString() })), rules });
      cases.push({ token: sign(claimsAt({ iat: new Date(NOW + tolerance + ms).toISOString() })), rules });
    }
  }
  const verdicts = await compare(cases);
  assert.equal(Object.fromEntries(verdicts), { ok: 47, expired: 9, not_yet_valid: 16 });
});

verifySuite('fails closed when the clock returns NaN (paseto threw there)', () => {
  const claims = JSON.parse(claimsAt({})) as Record<string, unknown>;
  assert.is(registeredClaimsFailure(claims, rulesOf()), null);
  assert.is(registeredClaimsFailure(claims, rulesOf({ now: Number.NaN })), 'expired');
});

verifySuite('agrees on the date grammar: offsets, fractions, impossible days and times', async () => {
  const future = ['2026-12-05T12:01:00Z', '2026-12-05T13:01:00+01:00', '2026-12-05T11:01:00-01:00'];
  const odd = [
    '2026-12-05T12:00:04.999Z',
    '2026-12-05T12:00:05.0009Z',
    '2026-12-05T12:00:05.123456789Z',
    '2026-12-05T12:00:05.Z',
    '2026-12-05T12:00:05.5+00:00',
    '2026-12-05t12:01:00Z',
    '2026-12-05T12:01:00z',
    '2026-12-05 12:01:00Z',
    '2026-12-05T12:01:00',
    '2026-12-05T12:01Z',
    '2026-12-05T12:01:00+0100',
    '2026-12-05T12:01:00+24:00',
    '2026-12-05T12:01:00+23:60',
    '2026-12-05T24:00:00Z',
    '2026-12-05T23:60:00Z',
    '2026-12-05T23:59:60Z',
    '2026-02-29T00:00:00Z',
    '2028-02-29T00:00:00Z',
    '2100-02-29T00:00:00Z',
    '2000-02-29T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '0050-01-01T00:00:00Z',
    '9999-12-31T23:59:59Z',
    '+02026-12-05T12:01:00Z',
    '２026-12-05T12:01:00Z',
    '',
  ];
  const cases: Case[] = [];
  for (const value of [...future, ...odd]) {
    cases.push({ token: sign(claimsAt({ exp: value })) });
    cases.push({ token: sign(claimsAt({ nbf: value })) });
    cases.push({ token: sign(claimsAt({ iat: value })) });
  }
  for (const value of [1764936000, null, true, ['2026-12-05T12:01:00Z'], { at: 1 }]) {
    cases.push({ token: sign(claimsAt({ exp: value })) });
    cases.push({ token: sign(claimsAt({ nbf: value })) });
    cases.push({ token: sign(claimsAt({ iat: value })) });
  }
  const missingExp = JSON.parse(claimsAt({})) as Record<string, unknown>;
  delete missingExp.exp;
  cases.push({ token: sign(JSON.stringify(missingExp)) });
  // Several rules broken at once: paseto's order decides the reason.
  cases.push({ token: sign(claimsAt({ exp: iso(NOW - 60_000), nbf: 'soon' })) });
  cases.push({ token: sign(claimsAt({ exp: iso(NOW - 60_000), nbf: iso(NOW + 60_000) })) });
  cases.push({ token: sign(claimsAt({ exp: iso(NOW - 60_000), jti: 7 })) });
  cases.push({ token: sign(claimsAt({ nbf: iso(NOW + 60_000), iat: iso(NOW + 60_000), sub: ['x'] })) });
  const verdicts = await compare(cases);
  assert.equal(Object.fromEntries(verdicts), { ok: 17, not_yet_valid: 14, claims: 79, expired: 3 });
});

verifySuite('agrees on issuer, audience and the string claims', async () => {
  const cases: Case[] = [];
  const configured = [
    rulesOf(),
    rulesOf({ issuer: 'https://idp' }),
    rulesOf({ audience: 'api' }),
    rulesOf({ issuer: 'https://idp', audience: 'api' }),
  ];
  const variants: Array<Record<string, unknown>> = [
    {},
    { iss: 'https://idp', aud: 'api' },
    { iss: 'https://idp' },
    { aud: 'api' },
    { iss: 'https://other', aud: 'api' },
    { iss: 'https://idp', aud: 'API' },
    { iss: ['https://idp'], aud: 'api' },
    { iss: 'https://idp', aud: ['api'] },
    { iss: null, aud: 'api' },
    { sub: 1 },
    { jti: null },
    { sid: 1 },
    { aud: 'api', exp: iso(NOW - 60_000) },
    { aud: 'other', exp: iso(NOW - 60_000) },
  ];
  for (const rules of configured) {
    for (const extra of variants) cases.push({ token: sign(claimsAt(extra)), rules });
  }
  const verdicts = await compare(cases);
  assert.equal(Object.fromEntries(verdicts), { ok: 14, claims: 34, expired: 8 });
});

verifySuite.run();
