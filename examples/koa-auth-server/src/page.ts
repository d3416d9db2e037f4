import { readFileSync } from 'node:fs';
import type { Middleware } from 'koa';

/**
 * The headers every file of the page is served with. The policy allows scripts, styles and fetches
 * from this origin only: no inline script or style (an injected `<script>` or `onclick=` does not
 * run), no plugins, no `<base>` rewriting, and no framing (clickjacking of the logout buttons).
 */
export const PAGE_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy': "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
});

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PUBLIC_DIR = new URL('../public/', import.meta.url);

function load(file: string, type: string): Asset {
  return { type, body: readFileSync(new URL(file, PUBLIC_DIR)) };
}

/**
 * Serves the example's browser page: `GET /` (the page) and its assets `/app.css`, `/app.js`,
 * `/passkeys.js`, `/mfa.js` and `/favicon.svg`, each with {@link PAGE_SECURITY_HEADERS} and `Cache-Control: no-cache`. Another method
 * on these paths is 405 `method_not_allowed`; every other path goes on to the next middleware. The
 * files are read once, when the middleware is built.
 *
 * The page talks to the JSON API of the same origin through the session cookie only; it never keeps a
 * token in script.
 *
 * @throws Error (from `readFileSync`) when a file of `public/` is missing.
 * @example
 * app.use(browserPage()); // before the router
 */
export function browserPage(): Middleware {
  const assets = new Map<string, Asset>([
    ['/', load('index.html', 'text/html; charset=utf-8')],
    ['/app.css', load('app.css', 'text/css; charset=utf-8')],
    ['/app.js', load('app.js', 'text/javascript; charset=utf-8')],
    ['/passkeys.js', load('passkeys.js', 'text/javascript; charset=utf-8')],
    ['/mfa.js', load('mfa.js', 'text/javascript; charset=utf-8')],
    ['/favicon.svg', load('favicon.svg', 'image/svg+xml')],
  ]);
  return async (ctx, next) => {
    const asset = assets.get(ctx.path);
    if (asset === undefined) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      ctx.body = { error: 'method_not_allowed', message: 'only GET and HEAD are allowed here' };
      return;
    }
    ctx.set(PAGE_SECURITY_HEADERS);
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = asset.type;
    ctx.body = asset.body;
  };
}
