import { isIP } from 'node:net';
import { InvalidInputError } from './errors.js';

/** The longest identifier accepted, in UTF-16 code units after normalization. */
export const MAX_IDENTIFIER_LENGTH = 1024;

/**
 * Normalizes an account identifier (an email, a user name): trim, Unicode NFC, lower-case. Used by
 * the login limiter, the one-time codes and the example's user store, so one account maps to one
 * bucket wherever it is typed.
 *
 * @throws {InvalidInputError} when `input` is not a string, is empty after trimming, or is longer
 *   than {@link MAX_IDENTIFIER_LENGTH}.
 * @example
 * normalizeIdentifier('  Alice@Example.COM ') // 'alice@example.com'
 */
export function normalizeIdentifier(input: unknown): string {
  if (typeof input !== 'string') throw new InvalidInputError('identifier must be a string');
  const value = input.trim().normalize('NFC').toLowerCase();
  if (value.length === 0) throw new InvalidInputError('identifier must not be empty');
  if (value.length > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidInputError(`identifier must be at most ${MAX_IDENTIFIER_LENGTH} characters`);
  }
  return value;
}

/** The single bucket every missing or unparsable IP address falls into. */
export const UNKNOWN_IP = 'unknown';

/**
 * Normalizes a client IP address to the bucket it is counted in:
 * IPv4-mapped IPv6 (`::ffff:192.0.2.1`, as Node reports on dual-stack sockets) → `192.0.2.1`;
 * IPv4 → itself; IPv6 → its /64 prefix (`2001:db8:1:2::/64`), since one host usually owns a whole
 * /64; a zone index is dropped; a port is dropped (`10.0.0.1:1234`, `[2001:db8::1]:443`, as some
 * proxies write them into `X-Forwarded-For`), so the address with a port is the address; anything else
 * (missing, empty, garbage) → {@link UNKNOWN_IP}, one shared bucket, so that a client cannot escape a
 * limit by sending nonsense.
 *
 * @example
 * normalizeIp('::ffff:10.0.0.1') // '10.0.0.1'
 * normalizeIp('[2001:db8::1]:443') // '2001:db8:0:0::/64'
 */
export function normalizeIp(input: unknown): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > 64) return UNKNOWN_IP;
  let ip = input.trim();
  // `[v6]` or `[v6]:port`, and `a.b.c.d:port`: the port is not part of the address. A bare IPv6
  // address is never read as having a port (`::1:80` is an address).
  const bracketed = /^\[([^\]]*)\](?::\d{1,5})?$/.exec(ip);
  const v4WithPort = /^([0-9.]+):\d{1,5}$/.exec(ip);
  if (bracketed !== null) ip = bracketed[1] ?? '';
  else if (v4WithPort !== null) ip = v4WithPort[1] ?? '';
  const zone = ip.indexOf('%');
  if (zone !== -1) ip = ip.slice(0, zone);
  const family = isIP(ip);
  // node's isIP accepts only canonical dotted quads (no leading zeros): nothing to rewrite.
  if (family === 4) return ip;
  if (family !== 6) return UNKNOWN_IP;
  const groups = expandIpv6(ip);
  if (groups === null) return UNKNOWN_IP;
  // ::ffff:a.b.c.d (IPv4-mapped) → the IPv4 address.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const hi = groups[6] ?? 0;
    const lo = groups[7] ?? 0;
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  const prefix = groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':');
  return `${prefix}::/64`;
}

/** Eight 16-bit groups of a valid IPv6 address (a trailing dotted IPv4 part becomes two groups). */
function expandIpv6(ip: string): number[] | null {
  let text = ip.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    if (isIP(last) !== 4) return null;
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map((n) => Number.parseInt(n, 10));
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  let groups: number[];
  const gap = text.indexOf('::');
  if (gap === -1) {
    groups = parse(text);
  } else {
    const head = parse(text.slice(0, gap));
    const rest = parse(text.slice(gap + 2));
    const zeros = 8 - head.length - rest.length;
    if (zeros < 0) return null;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  }
  if (groups.length !== 8 || groups.some((g) => Number.isNaN(g) || g < 0 || g > 0xffff)) return null;
  return groups;
}
