// Peer: rate-limiter-flexible's RateLimiterRedis (one script call per consume). Mode `one`: a single
// limiter per IP; mode `two`: the login recipe's two limiters, account+IP (5 per hour) and IP (100 per
// hour), consumed concurrently (two round trips in parallel, not atomic together). Each request is the
// check of a login attempt by a synthetic client (see syntheticClient), the same sequence latchkey's
// limiter scenario sees.
import Koa from 'koa';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { connectRedis, scenarioEnv, serve, syntheticClient } from './_server.js';

const env = scenarioEnv();
const redis = connectRedis(env);
const byIp = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: `${env.prefix}:ip`,
  points: 100,
  duration: 3600,
});
const byAccountAndIp = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: `${env.prefix}:ai`,
  points: 5,
  duration: 3600,
});
const two = env.mode === 'two';
let n = 0;

const app = new Koa();
app.use(async (ctx) => {
  const { ip, account } = syntheticClient(n++);
  try {
    if (two) await Promise.all([byAccountAndIp.consume(`${account}_${ip}`), byIp.consume(ip)]);
    else await byIp.consume(ip);
  } catch (error) {
    if (error instanceof RateLimiterRes) ctx.throw(429);
    throw error;
  }
  ctx.body = 'ok';
});

serve(app.callback(), [redis]);
