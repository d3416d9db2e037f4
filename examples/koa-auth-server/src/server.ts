import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { checkRedis } from '@latchkey/core';
import { type Config, ConfigError, isLoopbackHost, loadConfig } from './config.js';
import { describeTarget, whenReady } from './redis.js';
import { assemble } from './setup.js';

/** How long shutdown waits for in-flight requests before closing their connections, in ms. */
const SHUTDOWN_GRACE_MS = 10_000;

function fail(line: string): never {
  process.stderr.write(`koa-auth-server: ${line}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (config.tls !== undefined) {
    try {
      tls = { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) };
    } catch {
      fail('cannot read TLS_CERT_FILE or TLS_KEY_FILE');
    }
  }

  const { app, redis, logger, generated, metrics, close } = await assemble({ config });
  metrics.collectProcessMetrics();
  const callback = app.callback();
  const server: Server = tls === undefined ? createHttpServer(callback) : createHttpsServer(tls, callback);
  // A malformed request line or header never reaches Koa; answer it without a stack trace.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => fail(`cannot listen on ${config.host}:${config.port}: ${String(error)}`));

  // METRICS_PORT: /metrics on a listener of its own (the app's port then never serves it).
  let metricsServer: Server | undefined;
  if (config.metrics.port !== undefined) {
    const listener = metrics.listener(config.metrics.token);
    const metricsPort = config.metrics.port;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(metricsPort, config.host, () => {
        listener.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) =>
      fail(`cannot listen for metrics on ${config.host}:${metricsPort}: ${String(error)}`),
    );
    metricsServer = listener;
  }

  // Signal handlers before the start-up line: whoever waits for that line may signal at once, and a
  // signal that arrives before its handler exists kills the process with no graceful stop.
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`koa-auth-server: ${signal}: finishing in-flight requests\n`);
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    force.unref();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    server.close(() => {
      clearTimeout(force);
      void close().finally(() => {
        logger.flush();
        process.stdout.write('koa-auth-server: stopped\n');
        process.exit(0);
      });
    });
    server.closeIdleConnections();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const lines = [
    `koa-auth-server listening on ${tls === undefined ? 'http' : 'https'}://${host}:${port}`,
    `  mode: ${config.dev ? 'development (dev outbox at /dev/outbox, cookie "sid" without Secure)' : 'production'}`,
    `  Redis: ${describeTarget(config.redis)}`,
  ];
  const metricsAddress = metricsServer?.address();
  if (typeof metricsAddress === 'object' && metricsAddress !== null) {
    lines.push(
      `  metrics: http://${host}:${metricsAddress.port}/metrics${config.metrics.token === undefined ? '' : ' (METRICS_TOKEN bearer)'}`,
    );
  } else if (config.metrics.onAppPort) {
    lines.push(
      `  metrics: /metrics on this port${config.metrics.token === undefined ? ' (development mode)' : ' (METRICS_TOKEN bearer)'}`,
    );
  }
  if (generated.length > 0) {
    lines.push(
      `  generated for this run: ${generated.join(' and ')} (tokens and codes stop working on restart)`,
    );
  }
  if (config.dev && !isLoopbackHost(config.host)) {
    lines.push('  WARNING: development mode on a non-loopback address: the outbox shows codes to anyone');
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  if (config.redis.kind !== 'fake') {
    void (async () => {
      if (!(await whenReady(redis, 5000))) {
        logger.warn('Redis is not reachable yet; answering 503 until it is');
        await whenReady(redis, 2 ** 31 - 1);
      }
      await checkRedis(redis, { warn: (line) => logger.warn(line) }).catch((error: unknown) =>
        logger.warn({ err: error }, 'could not check maxmemory-policy'),
      );
    })();
  }

  process.on('unhandledRejection', (error) => logger.error({ err: error }, 'unhandled rejection'));
}

main().catch((error: unknown) =>
  fail(`could not start: ${error instanceof Error ? error.message : String(error)}`),
);
