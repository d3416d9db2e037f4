// Peer: koa-session with koa-redis as its external store (the usual Koa recipe). Mode `plain` loads
// the session (one GET) and never renews it server-side; mode `rolling` (koa-session's sliding
// renewal) rewrites the session with SETEX and re-sends the cookie on every request.
import Koa from 'koa';
import redisStore from 'koa-redis';
import session from 'koa-session';
import { connectRedis, scenarioEnv, serve } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const rolling = env.mode === 'rolling';

const app = new Koa();
app.keys = ['bench-signing-key-0123456789abcdef'];
app.use(
  session(
    {
      key: 'koa.sess',
      maxAge: 3_600_000,
      rolling,
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      secure: false,
      store: redisStore({ client: redis }) as never,
      prefix: `${env.prefix}:`,
    },
    app,
  ),
);
app.use((ctx) => {
  if (ctx.path === '/__setup') {
    ctx.session!['userId'] = 'u1';
    ctx.body = { headers: {} };
    return;
  }
  const userId = ctx.session?.['userId'];
  if (typeof userId !== 'string') ctx.throw(401);
  ctx.body = userId;
});

serve(app.callback(), [redis]);
