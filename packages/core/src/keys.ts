import { CrossSlotError, InvalidOptionError } from './errors.js';
import { sha256 } from './internal/crypto.js';

/** The default key prefix. */
export const DEFAULT_PREFIX = 'lk';

/**
 * The user's hash tag: the full base64url SHA-256 (43 characters) of the domain-separated user id.
 * Everything of one user lives under `{<tag>}`, so "revoke everything" is one script on one slot.
 * User ids are arbitrary strings: quotes, braces, colons and Unicode never reach a key.
 */
export function userTag(userId: string): string {
  return sha256(`latchkey/user\u0000${userId}`);
}

/**
 * The hash tag Redis Cluster hashes for `key`: the text between the first `{` and the next `}` when
 * that is non-empty, else the whole key (the rule of the Cluster specification).
 */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

/**
 * Throws unless every key hashes to the same tag. Runs before every script call: a `CROSSSLOT`
 * error is a bug found in development, never a surprise on a production cluster.
 * @throws {CrossSlotError}
 */
export function assertSameSlot(keys: readonly string[], script: string): void {
  const first = keys[0];
  if (first === undefined) return;
  const tag = hashTagOf(first);
  for (let i = 1; i < keys.length; i++) {
    if (hashTagOf(keys[i] as string) !== tag) {
      throw new CrossSlotError(`script ${script}: KEYS[${i + 1}] does not share the hash tag of KEYS[1]`);
    }
  }
}

/**
 * Builds every latchkey key under one configurable prefix. Shape: `<prefix>:<kind>:{<tag>}:<id>`.
 * The prefix is never itself a hash tag (it may not contain braces).
 *
 * | key | type | holds |
 * |---|---|---|
 * | `P:s:{T}:<sid>` | hash | one session: metadata, refresh state and data, kept compact (see `lua/README.md`) |
 * | `P:rr:{T}:<sid>` | zset | retired refresh-token digests of one session, scored by generation (capped) |
 * | `P:ix:{T}` | zset | the user's session ids, scored by absolute expiry |
 * | `P:rb:{T}` | string | the user's revoke-before mark (epoch ms) |
 * | `P:rj:{T}:<jti>` | string | a revoked access-token id of the user |
 * | `P:rj:{<sha256(jti)>}` | string | a revoked token id without a user |
 * | `P:l2:ai:{<ip>}:<hmac(account)>` | string | login reservations and failures per account+IP (a bounded log) |
 * | `P:l2:ip:{<ip>}` | string | login failures per IP (a bounded log) |
 * | `P:l2:a:{<hmac(account)>}` | string | login failures per account across IPs (a bounded log) |
 * | `P:l2:h:{<ip>}:<action>` | string | hits of a per-IP throttle (a bounded log) |
 * | `P:c:{<hmac(subject)>}:<purpose>` | hash | the current one-time code of a subject and purpose |
 * | `P:cb:{<hmac(subject)>}:<purpose>` | hash | failure budget and issue counts of a subject and purpose across IPs |
 * | `P:cb:{<hmac(subject)>}:<purpose>:<hmac(ip bucket)>` | hash | the same per client IP bucket (`-`: calls without an IP) |
 * | `P:wc:{<sha256(purpose, owner)>}` | hash | the outstanding WebAuthn challenge of an owner (digest) |
 * | `P:pk:{T}:<sha256(credential id)>` | hash | one passkey credential of the user |
 * | `P:pkx:{T}` | zset | the user's passkey credentials (id digests), by createdAt |
 * | `P:pkc:{<sha256(credential id)>}` | hash | credential id → user id and public key (login lookup) |
 * | `P:mp:{T}:<login id>` | hash | one pending second-factor login (the mfaToken's digest is the id) |
 * | `P:mf:{T}` | string | the user's recent second-factor failures (comma list of instants) |
 * | `P:mt:{T}` | string | the user's last accepted TOTP step |
 * | `P:mr:{T}` | set | keyed digests of the user's unused recovery codes |
 */
export class KeySpace {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) {
      throw new InvalidOptionError(
        'prefix must be 1 to 64 characters of letters, digits, "_", ".", ":" or "-" (no braces: it is never a hash tag)',
      );
    }
    this.prefix = prefix;
  }

  /** `P:<kind>:{<tag>}` — the base that scripts extend with `:<id>` suffixes. */
  base(kind: string, tag: string): string {
    return `${this.prefix}:${kind}:{${tag}}`;
  }

  session(tag: string, sessionId: string): string {
    return `${this.base('s', tag)}:${sessionId}`;
  }

  /** `P:s:{T}:` — sessions are derived inside scripts as this base plus a session id. */
  sessionBase(tag: string): string {
    return `${this.base('s', tag)}:`;
  }

  retiredRefresh(tag: string, sessionId: string): string {
    return `${this.base('rr', tag)}:${sessionId}`;
  }

  retiredRefreshBase(tag: string): string {
    return `${this.base('rr', tag)}:`;
  }

  sessionIndex(tag: string): string {
    return this.base('ix', tag);
  }

  revokeBefore(tag: string): string {
    return this.base('rb', tag);
  }

  revokedJti(tag: string, jti: string): string {
    return `${this.base('rj', tag)}:${jti}`;
  }

  revokedJtiBase(tag: string): string {
    return `${this.base('rj', tag)}:`;
  }

  /** A revoked token id that belongs to no user: tagged by the digest of the id itself. */
  revokedJtiStandalone(jti: string): string {
    return this.base('rj', sha256(`latchkey/jti\u0000${jti}`));
  }

  loginAccountIp(ipBucket: string, accountDigest: string): string {
    return `${this.base('l2:ai', ipBucket)}:${accountDigest}`;
  }

  loginIp(ipBucket: string): string {
    return this.base('l2:ip', ipBucket);
  }

  loginAccount(accountDigest: string): string {
    return this.base('l2:a', accountDigest);
  }

  code(subjectDigest: string, purpose: string): string {
    return `${this.base('c', subjectDigest)}:${purpose}`;
  }

  codeBudget(subjectDigest: string, purpose: string): string {
    return `${this.base('cb', subjectDigest)}:${purpose}`;
  }

  /** The failure budget and issue counts of one client IP bucket (an HMAC, or `-` for none). */
  codeBucketBudget(subjectDigest: string, purpose: string, bucket: string): string {
    return `${this.codeBudget(subjectDigest, purpose)}:${bucket}`;
  }

  webauthnChallenge(ownerDigest: string): string {
    return this.base('wc', ownerDigest);
  }

  passkey(tag: string, credentialDigest: string): string {
    return `${this.base('pk', tag)}:${credentialDigest}`;
  }

  /** `P:pk:{T}:` — credentials are derived inside scripts as this base plus an id digest. */
  passkeyBase(tag: string): string {
    return `${this.base('pk', tag)}:`;
  }

  passkeyList(tag: string): string {
    return this.base('pkx', tag);
  }

  passkeyIndex(credentialDigest: string): string {
    return this.base('pkc', credentialDigest);
  }

  mfaPending(tag: string, loginId: string): string {
    return `${this.base('mp', tag)}:${loginId}`;
  }

  mfaFailures(tag: string): string {
    return this.base('mf', tag);
  }

  totpLastStep(tag: string): string {
    return this.base('mt', tag);
  }

  recoveryCodes(tag: string): string {
    return this.base('mr', tag);
  }

  /** A SCAN `MATCH` pattern for every key under this prefix, glob characters escaped. */
  scanPattern(): string {
    return `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`;
  }
}
