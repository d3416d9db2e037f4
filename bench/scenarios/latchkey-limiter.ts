// latchkey: the login limiter's check with both default policies (account+IP 5/h, IP 100/h), reserved
// atomically in one script. Each request is the check of a login attempt by a synthetic client, the
// same sequence rate-limiter-flexible's scenarios see; the outcome is never settled (an unsettled
// reservation counts as a failure, the most expensive state to keep).
import { LoginLimiter, ServerSecret } from '@latchkey/core';
import Koa from 'koa';
import { connectRedis, scenarioEnv, serve, syntheticClient } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const limiter = new LoginLimiter({ redis, prefix: env.prefix, secret: ServerSecret.generate() });
let n = 0;

const app = new Koa();
app.use(async (ctx) => {
  const { ip, account } = syntheticClient(n++);
  const attempt = await limiter.check(account, ip);
  if (!attempt.allowed) {
    ctx.status = 429;
    return;
  }
  ctx.body = 'ok';
});

serve(app.callback(), [redis]);
