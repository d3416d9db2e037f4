import type { Cluster, Redis } from 'ioredis';
import Koa from 'koa';

export interface AppOptions {
  readonly redis: Redis | Cluster;
}

/** Builds the example app (listening is server.ts's job). */
export function createApp(options: AppOptions): Koa {
  const app = new Koa();
  app.use(async (ctx) => {
    if (ctx.path === '/healthz' && ctx.method === 'GET') {
      try {
        await options.redis.ping();
        ctx.body = { status: 'ok' };
      } catch {
        ctx.status = 503;
        ctx.body = { status: 'unavailable' };
      }
      return;
    }
    ctx.status = 404;
    ctx.body = { error: 'not_found', message: 'no such route' };
  });
  return app;
}
