import type { ServerResponse } from 'node:http';

/**
 * The values of the cookies named exactly `name` in a raw `Cookie` request header, in order, at most
 * `limit` of them. Node joins repeated `Cookie` header lines with `; `, so duplicates sent on separate
 * lines are seen too. Parsed by hand because the session middleware must see every occurrence of its
 * cookie (two of them means cookie tossing), while `ctx.cookies.get` silently returns the first.
 */
export function cookieValues(header: string | undefined, name: string, limit = 2): string[] {
  const found: string[] = [];
  if (header === undefined || header.length === 0 || !header.includes(name)) return found;
  const length = header.length;
  let start = 0;
  while (start < length && found.length < limit) {
    let end = header.indexOf(';', start);
    if (end === -1) end = length;
    // Look for '=' inside this pair only: searching to the end of the header from every pair is
    // quadratic in a header of many '='-less pairs (`;;;;…;sid=x`), a cheap way to burn CPU.
    const pair = header.slice(start, end);
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === name) found.push(pair.slice(eq + 1).trim());
    start = end + 1;
  }
  return found;
}

/** The `SameSite` attribute values, as written in `Set-Cookie`. */
export type SameSiteAttribute = 'Strict' | 'Lax' | 'None';

/** How the session cookie is written. `HttpOnly` is always set. */
export interface CookieAttributes {
  readonly path: string;
  readonly secure: boolean;
  readonly sameSite: SameSiteAttribute;
}

/** A cookie name: an RFC 6265 token (no separators, no controls, ASCII only). */
export const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A cookie path: printable ASCII without `;` and starting with `/`. */
export const COOKIE_PATH = /^\/[\x21-\x3a\x3c-\x7e]*$/;

const EXPIRED = 'Thu, 01 Jan 1970 00:00:00 GMT';

/**
 * A `Set-Cookie` value. `maxAgeSeconds` ≤ 0 writes a clearing cookie (empty value, `Max-Age=0` and an
 * `Expires` in the past for clients that ignore `Max-Age`).
 */
export function serializeCookie(
  name: string,
  value: string,
  maxAgeSeconds: number,
  attributes: CookieAttributes,
): string {
  const clearing = maxAgeSeconds <= 0;
  let cookie = `${name}=${clearing ? '' : value}; Path=${attributes.path}`;
  cookie += clearing ? `; Max-Age=0; Expires=${EXPIRED}` : `; Max-Age=${Math.floor(maxAgeSeconds)}`;
  cookie += '; HttpOnly';
  if (attributes.secure) cookie += '; Secure';
  cookie += `; SameSite=${attributes.sameSite}`;
  return cookie;
}

/**
 * Adds `cookie` (a full `Set-Cookie` value for `name`) to the response, replacing a `Set-Cookie` for
 * the same name written earlier in this response (a logout followed by a login sends only the
 * login's cookie) and keeping every other cookie. Written on the raw response, so Koa's
 * `ctx.cookies`, which refuses a `Secure` cookie when `ctx.secure` is false (TLS ended at a proxy),
 * is never involved.
 */
export function putSetCookie(res: ServerResponse, name: string, cookie: string): void {
  const current = res.getHeader('set-cookie');
  const prefix = `${name}=`;
  const list: string[] = [];
  if (typeof current === 'string') {
    if (!current.startsWith(prefix)) list.push(current);
  } else if (Array.isArray(current)) {
    for (const value of current) if (!value.startsWith(prefix)) list.push(value);
  }
  list.push(cookie);
  res.setHeader('set-cookie', list);
}
