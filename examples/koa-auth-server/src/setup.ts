import { type Clock, generateDevelopmentKey, KeyRing, type RedisClient, ServerSecret } from '@latchkey/core';
import type Koa from 'koa';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { DevOutbox, DroppingMailer, type Mailer } from './mailer.js';
import { Metrics } from './metrics.js';
import { RedisAvailability } from './outage.js';
import type { PasswordChecker, PasswordHashingOptions } from './passwords.js';
import { closeRedis, createRedisClient } from './redis.js';

/** Options of {@link assemble}: the configuration, and what tests replace. */
export interface AssembleOptions {
  readonly config: Config;
  /** An existing connection (kept open by {@link Assembled.close}); else one is opened from `config.redis`. */
  readonly redis?: RedisClient;
  readonly logger?: Logger;
  readonly mailer?: Mailer;
  readonly clock?: Clock;
  readonly prefix?: string;
  readonly passwordHashing?: PasswordHashingOptions;
  readonly passwordHasher?: PasswordChecker;
}

/** An app with everything it was built from. */
export interface Assembled {
  readonly app: Koa;
  readonly redis: RedisClient;
  readonly logger: Logger;
  /** Redis outages as the app saw them (`up`, `transitions`, `failedRequests`, `'change'` events). */
  readonly availability: RedisAvailability;
  /** The dev outbox (development mode only). */
  readonly outbox: DevOutbox | undefined;
  /** The app's Prometheus metrics (served per `config.metrics`; `server.ts` opens `METRICS_PORT`). */
  readonly metrics: Metrics;
  /** What was generated because the environment did not provide it (for the start-up line). */
  readonly generated: readonly string[];
  /** Closes the Redis connection when {@link assemble} opened it. */
  close(): Promise<void>;
}

/**
 * Builds the app from a configuration: keys (generated in development when not given), the Redis
 * connection, the mailer (the dev outbox in development), and `createApp`.
 */
export async function assemble(options: AssembleOptions): Promise<Assembled> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.logLevel);
  const generated: string[] = [];

  let signing = config.pasetoSecretKey;
  if (signing === undefined) {
    signing = (await generateDevelopmentKey()).secret;
    generated.push('a PASETO signing key');
  }
  const keyRing = await KeyRing.fromPaserk({ signing });
  let secret: ServerSecret;
  if (config.latchkeySecret === undefined) {
    secret = ServerSecret.generate();
    generated.push('LATCHKEY_SECRET');
  } else {
    secret = ServerSecret.fromBase64url(config.latchkeySecret);
  }

  const ownRedis = options.redis === undefined;
  // ioredis reports every failed reconnection; one line per ten seconds is enough.
  let lastError = 0;
  const redis =
    options.redis ??
    createRedisClient(config.redis, {
      onError: (error) => {
        const now = Date.now();
        if (now - lastError > 10_000) logger.warn({ err: error }, 'Redis connection error; retrying');
        lastError = now;
      },
    });

  const outbox = config.dev
    ? new DevOutbox(options.clock === undefined ? {} : { clock: options.clock })
    : undefined;
  const mailer = options.mailer ?? outbox ?? new DroppingMailer((line) => logger.warn(line));
  const availability = new RedisAvailability(redis, logger);
  const metrics = new Metrics();
  const app = createApp({
    metrics,
    config,
    redis,
    availability,
    keyRing,
    secret,
    logger,
    mailer,
    outbox,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.passwordHashing === undefined ? {} : { passwordHashing: options.passwordHashing }),
    ...(options.passwordHasher === undefined ? {} : { passwordHasher: options.passwordHasher }),
  });
  return {
    app: app as unknown as Koa,
    redis,
    logger,
    availability,
    outbox,
    metrics,
    generated,
    close: async () => {
      availability.close();
      if (ownRedis) await closeRedis(redis);
    },
  };
}
