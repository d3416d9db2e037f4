// latchkey: the @latchkey/koa loginLimiter middleware on a LoginLimiter with both default policies
// (account+IP 5 per hour, IP 100 per hour), reserved atomically in one script before the route runs.
// Each request is a login attempt by a synthetic client (the same sequence rate-limiter-flexible's
// scenarios see) that the route reports as a failure: a failure keeps the reservation and makes no
// second Redis call, so the request costs exactly the check.
import { LoginLimiter, ServerSecret } from '@latchkey/core';
import { type LoginLimitState, latchkeyErrors, loginLimiter } from '@latchkey/koa';
import Koa from 'koa';
import { connectRedis, scenarioEnv, serve, syntheticClient } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const limiter = new LoginLimiter({ redis, prefix: env.prefix, secret: ServerSecret.generate() });
let n = 0;

interface State extends LoginLimitState {
  client: { ip: string; account: string };
}

const app = new Koa<State>();
app.use(latchkeyErrors());
app.use(async (ctx, next) => {
  ctx.state.client = syntheticClient(n++);
  await next();
});
app.use(
  loginLimiter<State>({
    limiter,
    identifier: (ctx) => ctx.state.client.account,
    ip: (ctx) => ctx.state.client.ip,
    isFailure: () => true,
  }),
);
app.use((ctx) => {
  ctx.body = 'ok';
});

serve(app.callback(), [redis]);
