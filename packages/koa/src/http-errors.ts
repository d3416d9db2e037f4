import { validateHeaderName, validateHeaderValue } from 'node:http';
import { format } from 'node:util';
import { isLatchkeyError, type LatchkeyErrorCode } from '@latchkey/core';
import type { Context, Middleware } from 'koa';

/** How one latchkey error code answers over HTTP. */
export interface HttpMapping {
  readonly status: number;
  /** The `error` field of the JSON body. */
  readonly error: string;
  /** The `message` field (generic on purpose: security errors reveal nothing). */
  readonly message: string;
}

/** The one table from latchkey error codes to HTTP answers. */
export const HTTP_ERRORS: Readonly<Record<LatchkeyErrorCode, HttpMapping>> = Object.freeze({
  ERR_INVALID_INPUT: { status: 400, error: 'invalid_request', message: 'the request is not valid' },
  ERR_STORE_UNAVAILABLE: {
    status: 503,
    error: 'unavailable',
    message: 'the service is temporarily unavailable',
  },
  ERR_STORE_FAILED: { status: 503, error: 'unavailable', message: 'the service is temporarily unavailable' },
  ERR_CROSS_SLOT: { status: 503, error: 'unavailable', message: 'the service is temporarily unavailable' },
  ERR_EVICTION_POLICY: {
    status: 503,
    error: 'unavailable',
    message: 'the service is temporarily unavailable',
  },
  ERR_SESSION_STALE_AUTH: { status: 401, error: 'unauthenticated', message: 'please log in again' },
  ERR_SESSION_DATA_TOO_LARGE: {
    status: 413,
    error: 'payload_too_large',
    message: 'session data is too large',
  },
  ERR_REFRESH_REUSED: {
    status: 401,
    error: 'refresh_token_reused',
    message: 'the refresh token was already used; the session has been revoked',
  },
  ERR_INVALID_OPTION: { status: 500, error: 'internal_error', message: 'internal error' },
  ERR_KEY_INVALID: { status: 500, error: 'internal_error', message: 'internal error' },
});

/** Seconds a client should wait after a 503 before retrying. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;

/** Options of {@link latchkeyErrors}. */
export interface LatchkeyErrorsOptions {
  /**
   * Called with every error answered with a 5xx (for logging). Never receives request bodies. The
   * error is also emitted as the app's `'error'` event either way.
   */
  readonly onServerError?: (error: unknown) => void;
}

/**
 * Maps latchkey errors to JSON `{ error, message }` answers with the status of {@link HTTP_ERRORS}:
 * a store outage is 503 with `Retry-After: 1`, never 500 (also for an error thrown by a second copy
 * of `@latchkey/core`). Other errors thrown with `ctx.throw(status)` keep their status, their headers
 * and a JSON body; as in Koa, the message shows only when the error has `expose: true`. Anything
 * unexpected is 500 `internal_error` without details. Every error answered with a 5xx is emitted
 * as `ctx.app.emit('error', error, ctx)`, as Koa's own handler does, so the app's error reporting
 * (`app.on('error', …)`, or Koa's default logging) still sees it; `ctx.status` is already the
 * answer's then. Mount it first.
 *
 * @example
 * app.use(latchkeyErrors());
 */
export function latchkeyErrors(options: LatchkeyErrorsOptions = {}): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const mapping = latchkeyMapping(error);
      if (mapping !== undefined) {
        ctx.status = mapping.status;
        ctx.body = { error: mapping.error, message: mapping.message };
        if (mapping.status === 503) ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
        if (mapping.status >= 500) reportServerError(ctx, error, options);
        return;
      }
      const status = httpStatusOf(error);
      if (status !== undefined && status < 500) {
        const expose = error as { code?: unknown; message?: unknown; expose?: unknown; headers?: unknown };
        ctx.status = status;
        // Like Koa's own error handler: headers an HttpError carries (Allow, WWW-Authenticate) are sent.
        if (expose.headers !== null && typeof expose.headers === 'object') {
          for (const [name, value] of Object.entries(expose.headers) as Array<[string, unknown]>) {
            setHeaderSafely(ctx, name, value);
          }
        }
        ctx.body = {
          error:
            typeof expose.code === 'string' && /^[a-z_]+$/.test(expose.code)
              ? expose.code
              : defaultCode(status),
          // As Koa: only an error that says so (an HttpError's `expose`) shows its message. Others
          // may quote internals, or the raw body (a JSON parser's SyntaxError carrying status 400).
          message:
            expose.expose === true && typeof expose.message === 'string' ? expose.message : 'request refused',
        };
        return;
      }
      ctx.status = status ?? 500;
      ctx.body = { error: 'internal_error', message: 'internal error' };
      reportServerError(ctx, error, options);
    }
  };
}

/**
 * Hands a 5xx error to `onServerError` and to the app's `'error'` event. Koa's default listener
 * refuses anything but an `Error` (it throws), so a thrown non-error is wrapped as Koa itself does.
 */
function reportServerError(ctx: Context, error: unknown, options: LatchkeyErrorsOptions): void {
  options.onServerError?.(error);
  const reported =
    error instanceof Error || Object.prototype.toString.call(error) === '[object Error]'
      ? error
      : new Error(format('non-error thrown: %j', error));
  try {
    ctx.app.emit('error', reported, ctx);
  } catch {
    // A throwing listener must not turn the mapped answer into Koa's plain-text 500.
  }
}

/** True for a latchkey error, also one from a second copy of `@latchkey/core`. @internal */
export function isLatchkeyErrorLike(error: unknown): boolean {
  return isLatchkeyError(error) || inheritsLatchkeyError(error);
}

/**
 * The answer for a latchkey error, or undefined for any other error. Recognized by its class chain,
 * not `instanceof` alone: an error from a second copy of `@latchkey/core` (dist next to src, two
 * versions in node_modules) must still be a 503, not a 500. A code this table does not know (a newer
 * core) is a 500 `internal_error`, reported, never a crash of the handler itself.
 */
function latchkeyMapping(error: unknown): HttpMapping | undefined {
  if (!isLatchkeyErrorLike(error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && Object.hasOwn(HTTP_ERRORS, code)) {
    return HTTP_ERRORS[code as LatchkeyErrorCode];
  }
  return INTERNAL;
}

const INTERNAL: HttpMapping = Object.freeze({
  status: 500,
  error: 'internal_error',
  message: 'internal error',
});

function inheritsLatchkeyError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  for (let proto = Object.getPrototypeOf(error); proto !== null; proto = Object.getPrototypeOf(proto)) {
    if (Object.hasOwn(proto, 'constructor') && proto.constructor?.name === 'LatchkeyError') return true;
  }
  return false;
}

/** The 4xx/5xx status an error carries (`status`, else `statusCode`), or undefined. @internal */
export function httpStatusOf(error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  const value = typeof status === 'number' ? status : typeof statusCode === 'number' ? statusCode : undefined;
  // Koa's status setter throws on anything but a whole number: that would escape this handler.
  return value !== undefined && Number.isInteger(value) && value >= 400 && value <= 599 ? value : undefined;
}

/** Sets one header an error carries; a name or value Node refuses is dropped, never thrown. */
function setHeaderSafely(ctx: Context, name: string, value: unknown): void {
  const text = typeof value === 'string' ? value : Array.isArray(value) ? value.map(String) : undefined;
  if (text === undefined) return;
  try {
    validateHeaderName(name);
    for (const one of Array.isArray(text) ? text : [text]) validateHeaderValue(name, one);
  } catch {
    return;
  }
  ctx.set(name, text);
}

function defaultCode(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'too_many_attempts';
    default:
      return 'request_refused';
  }
}
