// latchkey: the @latchkey/koa session middleware on a SessionStore with its defaults (idle 1 h renewed
// on every load, absolute 24 h, lastSeenAt written at most once a minute). Each request loads the
// session from its cookie in one script call; the cookie is plain http here (`secure: false`).
import { SessionStore } from '@latchkey/core';
import { latchkeyErrors, type SessionState, session } from '@latchkey/koa';
import Koa from 'koa';
import { connectRedis, scenarioEnv, serve } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const store = new SessionStore<{ theme: string }>({ redis, prefix: env.prefix });

const app = new Koa<SessionState<{ theme: string }>>();
app.use(latchkeyErrors());
app.use(session({ store, cookie: { secure: false } }));
app.use(async (ctx) => {
  if (ctx.path === '/__setup') {
    await ctx.state.sessions.logIn('u1', { theme: 'dark' });
    ctx.body = { headers: {} };
    return;
  }
  const current = ctx.state.session;
  if (current === null) {
    ctx.status = 401;
    return;
  }
  ctx.body = current.userId;
});

serve(app.callback(), [redis]);
