// Baseline: a Koa app doing exactly one raw ioredis GET per request, the physical floor of any
// Redis-backed check. Every ratio in the report is against this app, measured in the same round.
import Koa from 'koa';
import { connectRedis, scenarioEnv, serve } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const key = `${env.prefix}:baseline`;
await redis.set(key, 'u1');

const app = new Koa();
app.use(async (ctx) => {
  const value = await redis.get(key);
  if (value === null) ctx.throw(401);
  ctx.body = value;
});

serve(app.callback(), [redis]);
