// Peer: what an app does by hand with the `paseto` package: v4.public verify (Ed25519), then one
// EXISTS on a revoked-jti key. No cache: every request pays the signature check.
import Koa from 'koa';
import { PublicProtocol } from 'paseto';
import { GenerateKeyPairFactory, SignFactory, VerifyFactory } from 'paseto/v4/public';
import { connectRedis, scenarioEnv, serve } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const v4 = new PublicProtocol(GenerateKeyPairFactory, SignFactory, VerifyFactory);
const { publicKey, secretKey } = await v4.GenerateKeyPair();
const token = await v4.Sign(
  secretKey,
  { sub: 'u1', sid: 'session-1', jti: 'jti-0123456789abcdef' },
  { expiresIn: 900 },
);

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.path === '/__setup') {
    ctx.body = { headers: { authorization: `Bearer ${token}` } };
    return;
  }
  const header = ctx.get('authorization');
  if (!header.startsWith('Bearer ')) ctx.throw(401);
  const claims = await v4.Verify(publicKey, header.slice(7)).then(
    (result) => result.claims as Record<string, unknown>,
    () => null,
  );
  if (claims === null) {
    ctx.status = 401;
    return;
  }
  if ((await redis.exists(`${env.prefix}:rj:${String(claims['jti'])}`)) === 1) ctx.throw(401);
  ctx.body = claims['sub'];
});

serve(app.callback(), [redis]);
