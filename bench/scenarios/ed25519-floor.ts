// The crypto floor of a bearer check without a cache: what any server must do for a v4.public token
// it has not seen before — decode it, check its Ed25519 signature (node:crypto, the public key object
// prepared once, the PASETO pre-authentication encoding built by hand), read the claims — plus the one
// raw GET of the baseline (a revocation check needs a round trip). No library, no script: latchkey's
// bearer without its cache is measured against this row.
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import Koa from 'koa';
import { connectRedis, scenarioEnv, serve } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const key = `${env.prefix}:floor`;
await redis.set(key, 'u1');

const HEADER = Buffer.from('v4.public.');

/** PASETO's PAE: the count, then each piece with its length, as little-endian 64-bit integers. */
function pae(...pieces: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  const le64 = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  parts.push(le64(pieces.length));
  for (const p of pieces) parts.push(le64(p.length), p);
  return Buffer.concat(parts);
}

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const verifyKey = createPublicKey(publicKey.export({ format: 'pem', type: 'spki' }));
const claims = Buffer.from(
  JSON.stringify({
    sub: 'u1',
    sid: 'session-1',
    jti: 'jti-0123456789abcdef',
    iat: new Date().toISOString(),
    exp: new Date(Date.now() + 900_000).toISOString(),
  }),
);
const footer = Buffer.from('{"kid":"k4.pid.floor"}');
const signature = sign(null, pae(HEADER, claims, footer, Buffer.alloc(0)), privateKey);
const token = `v4.public.${Buffer.concat([claims, signature]).toString('base64url')}.${footer.toString('base64url')}`;

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.path === '/__setup') {
    ctx.body = { headers: { authorization: `Bearer ${token}` } };
    return;
  }
  const header = ctx.get('authorization');
  const parts = header.startsWith('Bearer v4.public.') ? header.slice(17).split('.') : [];
  const body = Buffer.from(parts[0] ?? '', 'base64url');
  const foot = Buffer.from(parts[1] ?? '', 'base64url');
  if (body.length <= 64) ctx.throw(401);
  const message = body.subarray(0, body.length - 64);
  const ok = verify(null, pae(HEADER, message, foot, Buffer.alloc(0)), verifyKey, body.subarray(-64));
  if (!ok) ctx.throw(401);
  const sub = (JSON.parse(message.toString('utf8')) as { sub?: string }).sub;
  if ((await redis.get(key)) !== sub) ctx.throw(401);
  ctx.body = sub;
});

serve(app.callback(), [redis]);
