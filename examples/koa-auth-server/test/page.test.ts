import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PAGE_SECURITY_HEADERS } from '../src/page.js';
import { startTestApp, type TestApp } from './helpers.js';

// The browser page of issue 10, as HTTP and as source: every file is served with the CSP and its
// companions, the markup holds nothing the CSP would have to allow (no inline script, style or
// handler), and the script neither renders HTML nor keeps a credential. The browser test
// (e2e/browser.test.ts) shows the same in Chromium.

const CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
const PUBLIC = new URL('../public/', import.meta.url);
const html = readFileSync(new URL('index.html', PUBLIC), 'utf8');
const scripts = ['app.js', 'passkeys.js', 'mfa.js'].map((file) =>
  readFileSync(new URL(file, PUBLIC), 'utf8'),
);

const page = suite<{ app: TestApp }>('the browser page');
page.before.each(async (ctx) => {
  ctx.app = await startTestApp();
});
page.after.each(async (ctx) => {
  await ctx.app.close();
});

page('every file is served with the CSP, nosniff, no-referrer and its own type', async ({ app }) => {
  assert.equal(PAGE_SECURITY_HEADERS, {
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  for (const [path, type] of [
    ['/', /^text\/html; charset=utf-8$/],
    ['/app.js', /^text\/javascript; charset=utf-8$/],
    ['/passkeys.js', /^text\/javascript; charset=utf-8$/],
    ['/mfa.js', /^text\/javascript; charset=utf-8$/],
    ['/app.css', /^text\/css; charset=utf-8$/],
    ['/favicon.svg', /^image\/svg\+xml$/],
  ] as const) {
    for (const method of ['GET', 'HEAD']) {
      const reply = await app.client().request(method, path);
      assert.is(reply.status, 200, `${method} ${path}`);
      assert.is(reply.headers.get('content-security-policy'), CSP, path);
      assert.is(reply.headers.get('x-content-type-options'), 'nosniff', path);
      assert.is(reply.headers.get('referrer-policy'), 'no-referrer', path);
      assert.match(reply.headers.get('content-type') ?? '', type, path);
      assert.equal(reply.setCookies, [], 'serving the page sets no cookie');
      for (const name of reply.headers.keys()) assert.not.ok(name.startsWith('access-control-'), name);
    }
  }
});

page('another method on a page path is 405 method_not_allowed and runs nothing', async ({ app }) => {
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const reply = await app.client().request(method, '/', { json: {} });
    assert.is(reply.status, 405, method);
    assert.is(reply.body.error, 'method_not_allowed');
    assert.is(reply.headers.get('allow'), 'GET, HEAD');
  }
});

page('the markup holds no inline script, style, event handler or javascript: URL', () => {
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.ok(scripts.length > 0);
  for (const [, attributes = '', body = ''] of scripts) {
    assert.match(attributes, /\bsrc="\/(app|passkeys|mfa)\.js"/, 'scripts come from this origin');
    assert.is(body.trim(), '', 'no inline script');
  }
  assert.not.match(html, /<style\b/i, 'no inline style sheet');
  assert.not.match(html, /\sstyle\s*=/i, 'no style attribute');
  assert.not.match(html, /\son[a-z]+\s*=/i, 'no event-handler attribute');
  assert.not.match(html, /javascript:/i, 'no javascript: URL');
  for (const match of html.matchAll(/\b(?:src|href|action)="([^"]*)"/g)) {
    assert.ok(match[1]?.startsWith('/'), `a same-origin path: ${match[1]}`);
  }
});

page('the script renders no HTML, keeps no credential and talks only to this origin', () => {
  for (const [pattern, what] of [
    [/\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write/, 'HTML rendering'],
    [/\beval\s*\(|new Function\s*\(|setTimeout\s*\(\s*['"`]/, 'code from strings'],
    [/localStorage|sessionStorage|indexedDB|document\.cookie|caches\./, 'storage'],
    [/\.accessToken|\.refreshToken|\['accessToken'\]|\['refreshToken'\]/, 'a token read from a response'],
    [/https?:\/\//, 'an absolute URL'],
    [/credentials:\s*'include'/, 'credentials sent cross-origin'],
  ] as const) {
    for (const script of scripts) assert.not.match(script, pattern, what);
  }
});

page.run();
