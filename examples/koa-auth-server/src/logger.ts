import type { SecurityEvent } from '@latchkey/core';
import type { Middleware } from 'koa';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * Structured logs that never hold a secret: request lines carry method, path (without the query
 * string, which may hold an address), status and duration only; headers are never logged, and the
 * redaction list below is a second line of defence should a header or body ever reach a log call.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: null,
    redact: {
      paths: [
        'req.headers.cookie',
        'req.headers.authorization',
        'res.headers["set-cookie"]',
        'headers.cookie',
        'headers.authorization',
        'err.body',
        'body',
        'password',
        'newPassword',
        'currentPassword',
        'code',
        'token',
        'accessToken',
        'refreshToken',
      ],
      censor: '[redacted]',
    },
    serializers: { err: serializeError },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/**
 * An error as it may be logged: type, code, status, message and stack — never the other properties,
 * among which co-body's `body` (the raw request body) and ioredis's `command` (arguments) would be.
 */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { type: typeof error };
  const out: Record<string, unknown> = { type: error.name, message: error.message };
  const { code, status } = error as { code?: unknown; status?: unknown };
  if (typeof code === 'string') out['code'] = code;
  if (typeof status === 'number') out['status'] = status;
  if (error.stack !== undefined) out['stack'] = error.stack;
  if (error.cause !== undefined) out['cause'] = serializeError(error.cause);
  return out;
}

/**
 * One line per request, written when the response is finished (so the status is final, errors
 * included): `{ method, path, status, durationMs }`.
 */
export function requestLog(logger: Logger): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    ctx.res.once('close', () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const line = {
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        durationMs: Math.round(durationMs * 10) / 10,
      };
      // A 503 is Redis being unavailable: RedisAvailability logs that once per outage, not per request.
      if (ctx.status >= 500 && ctx.status !== 503) logger.warn(line, 'request');
      else logger.info(line, 'request');
    });
    await next();
  };
}

/** Logs a security event as it is (events hold ids and digests only, never secrets). */
export function logSecurityEvent(logger: Logger): (event: SecurityEvent) => void {
  return (event) => logger.info({ event }, 'security event');
}
