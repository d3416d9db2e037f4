// latchkey: the @latchkey/koa bearer middleware on AccessTokens (v4.public, key id in the footer) for a
// live session. Mode `cache`: the verified-token cache on (its default, 10,000 entries), so a repeat
// token skips the signature check; mode `nocache`: every request pays it. Either way one read-only
// script per request answers: jti revoked? session alive? authenticated before the user's mark?
import { AccessTokens, generateDevelopmentKey, KeyRing, SessionStore } from '@latchkey/core';
import { bearer, latchkeyErrors } from '@latchkey/koa';
import Koa from 'koa';
import { connectRedis, scenarioEnv, serve } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const dev = await generateDevelopmentKey();
const keyRing = await KeyRing.fromPaserk({ signing: dev.secret, kid: dev.kid });
const sessions = new SessionStore({ redis, prefix: env.prefix });
const accessTokens = new AccessTokens({
  redis,
  prefix: env.prefix,
  keyRing,
  ...(env.mode === 'nocache' ? { cache: false as const } : {}),
});
const { session } = await sessions.create('u1', {});
const { token } = await accessTokens.issue({ userId: 'u1', sessionId: session.id });

const app = new Koa();
app.use(latchkeyErrors());
app.use(async (ctx, next) => {
  if (ctx.path === '/__setup') {
    ctx.body = { headers: { authorization: `Bearer ${token}` } };
    return;
  }
  await next();
});
app.use(bearer({ accessTokens }));
app.use((ctx) => {
  ctx.body = ctx.state.auth.userId;
});

serve(app.callback(), [redis]);
