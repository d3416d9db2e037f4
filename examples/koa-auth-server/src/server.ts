import { createFakeRedis } from '@latchkey/testing';
import { createApp } from './app.js';

const host = process.env['HOST'] ?? '127.0.0.1';
const port = Number(process.env['PORT'] ?? 3000);
const redis = createFakeRedis();
const server = createApp({ redis }).listen(port, host, () => {
  console.log(
    `koa-auth-server listening on http://${host}:${port} (embedded fake Redis: data is lost on exit)`,
  );
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => {
      redis.disconnect();
      process.exit(0);
    });
  });
}
