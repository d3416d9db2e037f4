#!/usr/bin/env bash
# Packaging check: pack each package, install the tarballs with npm into a temporary project outside the
# workspace, import them from plain ESM and type-check a strict `module: nodenext` consumer — once with
# ioredis 5 and once with ioredis 6 (the two majors core's peer range admits); publint and
# are-the-types-wrong on each tarball. Needs `pnpm build` first.
# Cleans up after itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tsc="$root/node_modules/typescript/bin/tsc"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for p in core koa testing; do
  (cd "$root/packages/$p" && pnpm pack --pack-destination "$work" >/dev/null)
  listing="$(tar tzf "$work/latchkey-$p-0.1.0.tgz")"
  for f in package/LICENSE package/README.md package/dist/index.js package/dist/index.d.ts; do
    grep -qx "$f" <<<"$listing" || { echo "check-packages: $p tarball lacks $f" >&2; exit 1; }
  done
  # publint: package.json fields against the files the tarball holds (exports, types, files); warnings
  # count as errors. are-the-types-wrong: every entry point's types resolve, as ESM, for node16/nodenext
  # and bundlers. The esm-only profile leaves out node10 and require() from CommonJS, which these
  # ESM-only packages do not serve through types (their README says "ESM only").
  "$root/node_modules/.bin/publint" run "$work/latchkey-$p-0.1.0.tgz" --strict >"$work/publint-$p.log" 2>&1 ||
    { cat "$work/publint-$p.log" >&2; echo "check-packages: publint failed for $p" >&2; exit 1; }
  "$root/node_modules/.bin/attw" "$work/latchkey-$p-0.1.0.tgz" --profile esm-only --format ascii >"$work/attw-$p.log" 2>&1 ||
    { cat "$work/attw-$p.log" >&2; echo "check-packages: are-the-types-wrong failed for $p" >&2; exit 1; }
done
echo "check-packages: publint (strict) and are-the-types-wrong (esm-only) pass for core, koa, testing"

consumer() {
  local dir="$1" ioredis="$2"
  mkdir -p "$dir"
  cd "$dir"
  echo '{"name":"consumer","private":true,"type":"module"}' >package.json
  npm install --no-audit --no-fund --loglevel=error \
    "$work/latchkey-core-0.1.0.tgz" "$work/latchkey-koa-0.1.0.tgz" "$work/latchkey-testing-0.1.0.tgz" \
    "ioredis@$ioredis" koa@3 @types/koa@3 @types/node@20 >/dev/null 2>"$dir/npm.err" ||
    { cat "$dir/npm.err" >&2; exit 1; }
  cat >smoke.mjs <<'JS'
import { Redis } from 'ioredis';
import { LoginLimiter, ServerSecret, SessionStore } from '@latchkey/core';
import { latchkeyErrors, loginLimiter, session } from '@latchkey/koa';
import { createFakeRedis, TestClock } from '@latchkey/testing';
const clock = new TestClock();
const redis = createFakeRedis({ clock });
const store = new SessionStore({ redis, clock });
const { token } = await store.create('u1', { theme: 'dark' });
const got = await store.get(token);
if (got === null || got.data.theme !== 'dark') throw new Error('session round trip through the fake failed');
session({ store });
loginLimiter({ limiter: new LoginLimiter({ redis, clock, secret: ServerSecret.fromBase64url('A'.repeat(43)) }), identifier: () => 'a@example.com' });
latchkeyErrors();
new Redis({ lazyConnect: true }).disconnect();
console.log('ok');
JS
  [ "$(node smoke.mjs)" = ok ] || { echo "check-packages: ESM smoke failed (ioredis $ioredis)" >&2; exit 1; }
  # The `latchkey` bin of @latchkey/core, as npm linked it.
  node_modules/.bin/latchkey keys generate --json | grep -q '"kid": "k4.pid\.' ||
    { echo "check-packages: the latchkey bin did not run (ioredis $ioredis)" >&2; exit 1; }
  cat >consumer.ts <<'TS'
import { Redis } from 'ioredis';
import Koa from 'koa';
import { LoginLimiter, ServerSecret, SessionStore } from '@latchkey/core';
import { latchkeyErrors, loginLimiter, session, type SessionState } from '@latchkey/koa';
import { createFakeRedis, TestClock } from '@latchkey/testing';
const redis = new Redis({ lazyConnect: true });
const sessions = new SessionStore<{ theme: string }>({ redis });
const app = new Koa<SessionState<{ theme: string }>>();
app.use(latchkeyErrors());
app.use(session({ store: sessions }));
app.use(loginLimiter({ limiter: new LoginLimiter({ redis, secret: ServerSecret.fromBase64url('A'.repeat(43)) }), identifier: () => 'a@example.com' }));
app.use((ctx) => {
  ctx.body = { theme: ctx.state.session?.data.theme ?? null };
});
const fake: Redis = createFakeRedis({ clock: new TestClock() });
new SessionStore({ redis: fake });
TS
  # ioredis 6.1's own .d.ts imports the untyped 'redis-errors', so its lib check is skipped there only.
  local skip=false
  [ "$ioredis" = 5 ] || skip=true
  cat >tsconfig.json <<JSON
{ "compilerOptions": { "strict": true, "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022",
  "noEmit": true, "skipLibCheck": $skip, "exactOptionalPropertyTypes": true, "types": ["node"] },
  "files": ["consumer.ts"] }
JSON
  node "$tsc" -p tsconfig.json || { echo "check-packages: strict nodenext consumer failed (ioredis $ioredis)" >&2; exit 1; }
  echo "check-packages: ioredis $ioredis: tarballs install, import from ESM and type-check (nodenext, strict)"
}

consumer "$work/ioredis5" 5 &
five=$!
consumer "$work/ioredis6" 6
wait "$five"
