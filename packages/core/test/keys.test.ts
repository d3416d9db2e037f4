import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  assertSameSlot,
  CrossSlotError,
  hashTagOf,
  InvalidOptionError,
  KeySpace,
  userTag,
} from '../src/index.js';

const tags = suite('keys: userTag and hashTagOf');

tags('userTag is the full 43-character base64url SHA-256, stable per user id', () => {
  const tag = userTag('alice');
  assert.match(tag, /^[A-Za-z0-9_-]{43}$/);
  assert.is(userTag('alice'), tag);
  assert.is.not(userTag('Alice'), tag);
});

tags('user ids with braces, quotes, colons and unicode never break a key or its tag', () => {
  const keys = new KeySpace('app');
  for (const id of ['{evil}', '"quoted"', 'a:b:c', 'ünï💥', '}{', '', ' ']) {
    const key = keys.session(userTag(id), 'sid');
    assert.is(hashTagOf(key), userTag(id), id);
    assert.is((key.match(/\{/g) ?? []).length, 1);
  }
});

tags('hashTagOf follows the cluster rule: first {…} with content, else the whole key', () => {
  assert.is(hashTagOf('p:s:{abc}:x'), 'abc');
  assert.is(hashTagOf('p:{}:{abc}'), 'p:{}:{abc}');
  assert.is(hashTagOf('plain'), 'plain');
  assert.is(hashTagOf('a{b}c{d}'), 'b');
});

tags('assertSameSlot throws CrossSlotError when keys span two tags', () => {
  const keys = new KeySpace();
  assertSameSlot([keys.session('T', 'a'), keys.sessionIndex('T'), keys.revokeBefore('T')], 'ok');
  assert.throws(
    () => assertSameSlot([keys.sessionIndex('T1'), keys.sessionIndex('T2')], 'bad'),
    (e: unknown) => {
      return e instanceof CrossSlotError && e.code === 'ERR_CROSS_SLOT';
    },
  );
});

tags.run();

const space = suite('KeySpace');

space('rejects a prefix that is empty, too long or a hash tag', () => {
  for (const bad of ['', '{lk}', 'a b', 'x'.repeat(65), 'a*']) {
    assert.throws(
      () => new KeySpace(bad),
      (e: unknown) => e instanceof InvalidOptionError,
      bad,
    );
  }
});

space('builds <prefix>:<kind>:{<tag>}:<id> keys and an escaped scan pattern', () => {
  const keys = new KeySpace('my-app');
  assert.is(keys.session('T', 'sid'), 'my-app:s:{T}:sid');
  assert.is(keys.sessionBase('T'), 'my-app:s:{T}:');
  assert.is(keys.loginAccountIp('1.2.3.4', 'D'), 'my-app:l2:ai:{1.2.3.4}:D');
  assert.is(keys.loginIp('1.2.3.4'), 'my-app:l2:ip:{1.2.3.4}');
  assert.is(keys.code('S', 'reset'), 'my-app:c:{S}:reset');
  assert.is(keys.scanPattern(), 'my-app:*');
  assert.match(hashTagOf(keys.revokedJtiStandalone('jti')), /^[A-Za-z0-9_-]{43}$/);
});

space.run();
