import { InvalidOptionError } from '@latchkey/core';
import type { Middleware } from 'koa';
import { checkOptionsObject } from './internal/options.js';
import { type RefusalMode, refusalOption, refuseRequest } from './refusal.js';

/** Options of {@link crossOriginProtection}. */
export interface CrossOriginProtectionOptions {
  /**
   * Origins (`scheme://host[:port]`, as browsers send them in `Origin`) whose unsafe requests always
   * pass, e.g. a separately hosted front end. `null` is not an origin and is refused.
   * @default []
   */
  readonly trustedOrigins?: readonly string[];
  /**
   * The server's own public origin (`https://auth.example.com`). When set, a request's `Origin` must
   * name its host and port; when unset, the `Host` header's (never `X-Forwarded-Host`). The scheme is
   * not compared, so TLS ending at a proxy does not break the check.
   * @default undefined (the `Host` header)
   */
  readonly publicOrigin?: string;
  /**
   * How a refusal (403) is answered: `'json'` writes `{ error: 'csrf_rejected', message }`;
   * `'throw'` throws a {@link RequestRefusedError} (status 403, code `csrf_rejected`).
   * @default 'json'
   */
  readonly refusal?: RefusalMode;
}

/** The JSON body of a refused request. */
export const CSRF_REJECTED = Object.freeze({
  error: 'csrf_rejected',
  message: 'cross-origin request refused',
});

/** As in Go: every other method (POST, PUT, PATCH, DELETE and any extension method) is checked. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Authorization schemes a browser attaches on its own, cross-site too, once the user has logged in to
 * the origin with them (HTTP authentication, e.g. a Basic-auth staging proxy). They prove nothing
 * about who built the request, so such a request is checked like a cookie request.
 */
const AMBIENT_SCHEME = /^[\t ]*(?:basic|digest|negotiate|ntlm)(?:[\t ]|$)/i;
/** `scheme://authority` and nothing else: the serialization of an origin. */
const ORIGIN = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#@\s]+)$/;

interface Resolved {
  readonly trusted: ReadonlySet<string>;
  readonly publicHost: string | undefined;
  readonly refusal: RefusalMode;
}

/**
 * Refuses cross-site unsafe requests, with the semantics of Go's `http.CrossOriginProtection`. Every
 * request but `GET`, `HEAD` and `OPTIONS` (so every `POST`, `PUT`, `PATCH` and `DELETE`) without an
 * `Authorization` header (cookie-authenticated or anonymous, so login CSRF is covered) is checked:
 *
 * 1. `Sec-Fetch-Site` present: only `same-origin` and `none` pass.
 * 2. Otherwise a present `Origin` must name the server's host and port (`publicOrigin`, else `Host`);
 *    the scheme is ignored; `Origin: null` fails.
 * 3. An origin on `trustedOrigins` always passes.
 * 4. Requests with neither header (non-browser clients) pass.
 *
 * A refusal answers 403 `{ "error": "csrf_rejected", "message": … }` before any later middleware
 * runs, so nothing changes. Requests carrying `Authorization` are exempt: a browser cannot attach that
 * header to a cross-site request without a CORS preflight that this server never grants. The schemes
 * of HTTP authentication (`Basic`, `Digest`, `Negotiate`, `NTLM`) are the exception: a browser resends
 * cached credentials of those on its own, so they are checked like cookies.
 *
 * @throws {InvalidOptionError} when an origin option is not `scheme://host[:port]`
 * @example
 * app.use(latchkeyErrors());
 * app.use(crossOriginProtection({ publicOrigin: process.env.PUBLIC_ORIGIN }));
 */
export function crossOriginProtection(options: CrossOriginProtectionOptions = {}): Middleware {
  const resolved = resolveOptions(options);
  return async (ctx, next) => {
    if (!SAFE_METHODS.has(ctx.method) && !carriesExplicitCredential(ctx.req.headers.authorization)) {
      if (!isAllowed(ctx.req.headers, resolved)) {
        refuseRequest(ctx, resolved.refusal, 403, CSRF_REJECTED);
        return;
      }
    }
    await next();
  };
}

/**
 * True for an `Authorization` header that a page cannot make a browser send cross-site without a
 * CORS preflight (which the server never grants): `Bearer …` and any scheme but the ambient ones.
 */
function carriesExplicitCredential(header: string | undefined): boolean {
  return header !== undefined && !AMBIENT_SCHEME.test(header);
}

function isAllowed(headers: NodeJS.Dict<string | string[]>, options: Resolved): boolean {
  const origin = single(headers['origin']);
  const site = single(headers['sec-fetch-site']);
  if (site !== undefined && site !== '') {
    if (site === 'same-origin' || site === 'none') return true;
    return origin !== undefined && options.trusted.has(origin.toLowerCase());
  }
  if (origin === undefined || origin === '') return true;
  const match = ORIGIN.exec(origin);
  if (match !== null) {
    const host = (match[1] as string).toLowerCase();
    // HTTP/2 clients may send `:authority` instead of `Host` (an HTTP/1 header name cannot hold ':').
    const own = options.publicHost ?? single(headers.host ?? headers[':authority'])?.toLowerCase();
    if (own !== undefined && host === own) return true;
  }
  return options.trusted.has(origin.toLowerCase());
}

/**
 * A header sent more than once is ambiguous and must match nothing. Node joins repeated `Origin` and
 * `Sec-Fetch-Site` lines into `a, b`, which no rule accepts; an array is refused the same way.
 */
function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? '\u0000' : value;
}

function resolveOptions(options: CrossOriginProtectionOptions): Resolved {
  checkOptionsObject(options);
  const list = options.trustedOrigins ?? [];
  if (!Array.isArray(list)) throw new InvalidOptionError('trustedOrigins must be an array of origins');
  const trusted = new Set<string>();
  for (const origin of list) {
    const url = parseOrigin('trustedOrigins', origin);
    // As browsers serialize an origin: lower case, IDNA, the scheme's default port left out.
    trusted.add(url.origin === 'null' ? (origin as string).toLowerCase() : url.origin);
  }
  const publicHost =
    options.publicOrigin === undefined ? undefined : parseOrigin('publicOrigin', options.publicOrigin).host;
  return Object.freeze({ trusted, publicHost, refusal: refusalOption(options.refusal) });
}

function parseOrigin(option: string, value: unknown): URL {
  if (typeof value === 'string' && ORIGIN.test(value)) {
    try {
      const url = new URL(value);
      if (url.host !== '') return url;
    } catch {
      // reported below
    }
  }
  throw new InvalidOptionError(
    `${option}: ${JSON.stringify(value)} is not an origin of the form scheme://host[:port]`,
  );
}
