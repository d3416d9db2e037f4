import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidInputError, normalizeIdentifier, normalizeIp, UNKNOWN_IP } from '../src/index.js';

const ident = suite('normalizeIdentifier');

ident('trims, applies NFC and lower-cases', () => {
  assert.is(normalizeIdentifier('  Alice@Example.COM \n'), 'alice@example.com');
  // "é" as e + combining acute (NFD) and as one code point (NFC) are one account.
  assert.is(normalizeIdentifier('Jose\u0301@x.io'), normalizeIdentifier('jos\u00e9@x.io'));
});

ident('rejects non-strings, empty and over-long input with InvalidInputError', () => {
  for (const bad of [undefined, null, 42, {}, '', '   ', 'a'.repeat(1025)]) {
    assert.throws(
      () => normalizeIdentifier(bad),
      (e: unknown) => e instanceof InvalidInputError,
    );
  }
});

ident.run();

const ip = suite('normalizeIp');

ip('IPv4-mapped IPv6 becomes IPv4, so one client is one bucket', () => {
  assert.is(normalizeIp('::ffff:192.0.2.1'), '192.0.2.1');
  assert.is(normalizeIp('::FFFF:c000:0201'), '192.0.2.1');
  assert.is(normalizeIp('192.0.2.1'), '192.0.2.1');
});

ip('IPv6 counts per /64', () => {
  assert.is(normalizeIp('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.is(normalizeIp('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.is(normalizeIp('[2001:DB8:1:2::9]'), '2001:db8:1:2::/64');
  assert.is(normalizeIp('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.is(normalizeIp('::1'), '0:0:0:0::/64');
});

ip('an address written with a port counts as the address (not the unknown bucket)', () => {
  assert.is(normalizeIp('10.0.0.1:1234'), '10.0.0.1');
  assert.is(normalizeIp(' 10.0.0.1:80 '), '10.0.0.1');
  assert.is(normalizeIp('[2001:db8::1]:443'), '2001:db8:0:0::/64');
  assert.is(normalizeIp('[2001:db8:1:2::9]:65535'), '2001:db8:1:2::/64');
  assert.is(normalizeIp('[::ffff:192.0.2.1]:8080'), '192.0.2.1');
  // A bare IPv6 address is never cut at its last colon.
  assert.is(normalizeIp('2001:db8:1:2::80'), '2001:db8:1:2::/64');
  // Malformed ports or addresses stay unparsable.
  for (const bad of [
    '10.0.0.1:',
    '10.0.0.1:123456',
    '10.0.0.1:x',
    '[2001:db8::1]:',
    '[2001:db8::1]x',
    '999.0.0.1:80',
    '[10.0.0.1]:80x',
  ]) {
    assert.is(normalizeIp(bad), UNKNOWN_IP, bad);
  }
});

ip('missing or unparsable addresses share one documented bucket', () => {
  for (const bad of [
    undefined,
    '',
    'garbage',
    '999.1.1.1',
    '1.2.3',
    '::ffff:1.2.3.999',
    'x'.repeat(100),
    42,
  ]) {
    assert.is(normalizeIp(bad), UNKNOWN_IP, String(bad));
  }
});

ip.run();

const quads = suite('normalizeIp, IPv4 forms');

quads('non-canonical dotted quads (leading zeros, octal-looking) are unparsable, not rewritten', () => {
  for (const bad of ['01.2.3.4', '1.2.3.04', '010.0.0.1', '1.2.3.4.5', ' 1.2.3.4x']) {
    assert.is(normalizeIp(bad), UNKNOWN_IP, bad);
  }
  assert.is(normalizeIp(' 10.0.0.1 '), '10.0.0.1');
});

quads.run();
