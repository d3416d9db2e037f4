import { InvalidOptionError } from '@latchkey/core';
import type { ParameterizedContext } from 'koa';

/**
 * How a refusing middleware answers: `'json'` writes the JSON body itself (status, headers,
 * `{ error, message }`) and the rest of the chain never runs; `'throw'` throws a
 * {@link RequestRefusedError} that the app's own error handler formats (problem+json, a redirect to
 * the login page, HTML).
 */
export type RefusalMode = 'json' | 'throw';

/** The JSON body of a refusal, and what a {@link RequestRefusedError} carries as `code` and `message`. */
export interface RefusalBody {
  readonly error: string;
  readonly message: string;
}

/**
 * What a refusing middleware throws with `refusal: 'throw'`: an `http-errors`-compatible error
 * (`status` = `statusCode`, `expose: true`, `headers`), so Koa's default handler, `latchkeyErrors()`
 * (which answers the same JSON body as `'json'` mode) and `http-errors`' `isHttpError()` all recognize
 * it. `code` is the stable machine-readable reason (`unauthenticated`, `csrf_rejected`,
 * `too_many_attempts`, `invalid_request`, `reauthentication_required`); `headers` holds every header
 * the answer needs (`WWW-Authenticate`, `Retry-After`, `RateLimit`, `Cache-Control`), because Koa's
 * default handler drops the headers set before the throw. The message is generic on purpose.
 *
 * @example
 * app.use(async (ctx, next) => {
 *   try {
 *     await next();
 *   } catch (error) {
 *     if (!(error instanceof RequestRefusedError)) throw error;
 *     ctx.status = error.status;
 *     ctx.set(error.headers);
 *     ctx.type = 'application/problem+json';
 *     ctx.body = { type: `https://example.com/problems/${error.code}`, title: error.message, status: error.status };
 *   }
 * });
 */
export class RequestRefusedError extends Error {
  /** The HTTP status (401, 403, 400, 429). */
  readonly status: number;
  /** The same as `status`. */
  readonly statusCode: number;
  /** Always true: the message is generic and meant for the client. */
  readonly expose = true;
  /** The stable reason, the `error` field of the JSON body in `'json'` mode. */
  readonly code: string;
  /** The headers the answer must carry. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, body: RefusalBody, headers: Readonly<Record<string, string>> = {}) {
    super(body.message);
    this.name = 'RequestRefusedError';
    this.status = status;
    this.statusCode = status;
    this.code = body.error;
    this.headers = Object.freeze({ ...headers });
  }
}

/** The `refusal` option: `'json'` unless given, else InvalidOptionError. @internal */
export function refusalOption(value: RefusalMode | undefined): RefusalMode {
  const resolved = value ?? 'json';
  if (resolved !== 'json' && resolved !== 'throw') {
    throw new InvalidOptionError(`refusal must be 'json' or 'throw', got ${JSON.stringify(value)}`);
  }
  return resolved;
}

/**
 * Refuses the request: in `'json'` mode sets the status, the headers and a copy of the body; in
 * `'throw'` mode throws a {@link RequestRefusedError} carrying the same. @internal
 */
export function refuseRequest(
  ctx: ParameterizedContext,
  mode: RefusalMode,
  status: number,
  body: RefusalBody,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (mode === 'throw') throw new RequestRefusedError(status, body, headers);
  ctx.status = status;
  for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  ctx.body = { error: body.error, message: body.message };
}
