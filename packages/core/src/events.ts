/**
 * Typed security events. Every store takes one `onEvent` hook; events carry ids and digests, never
 * tokens, codes, passwords or raw identifiers, so a hook may log them as they are.
 */

import type { MfaMethod } from './internal/second-factor.js';

interface EventBase {
  /** When it happened, by the store's clock (epoch ms). */
  readonly at: number;
}

/** Why a session ended. */
export type SessionEndReason =
  | 'logout'
  | 'revoked'
  | 'revoked-all'
  | 'evicted'
  | 'regenerated'
  | 'refresh-reuse';

export type SecurityEvent =
  | (EventBase & { readonly type: 'session.created'; readonly userId: string; readonly sessionId: string })
  | (EventBase & {
      readonly type: 'session.revoked';
      readonly userId: string;
      readonly sessionId: string;
      readonly reason: SessionEndReason;
    })
  | (EventBase & {
      readonly type: 'session.revoked-all';
      readonly userId: string;
      readonly count: number;
      readonly exceptSessionId?: string;
    })
  | (EventBase & { readonly type: 'session.expired'; readonly userId: string; readonly sessionId: string })
  | (EventBase & {
      readonly type: 'session.regenerated';
      readonly userId: string;
      readonly sessionId: string;
      readonly previousSessionId: string;
    })
  | (EventBase & { readonly type: 'session.stale-auth-refused'; readonly userId: string })
  | (EventBase & { readonly type: 'access-token.revoked'; readonly jti: string; readonly userId?: string })
  | (EventBase & {
      readonly type: 'refresh.reuse-detected';
      readonly userId: string;
      readonly sessionId: string;
    })
  | (EventBase & {
      readonly type: 'login.succeeded';
      readonly accountDigest: string;
      readonly ipBucket: string;
    })
  | (EventBase & {
      readonly type: 'login.failed';
      readonly accountDigest: string;
      readonly ipBucket: string;
    })
  | (EventBase & {
      readonly type: 'login.blocked';
      readonly policy: 'account-ip' | 'ip' | 'account';
      readonly accountDigest: string;
      readonly ipBucket: string;
      readonly retryAfterMs: number;
    })
  | (EventBase & {
      readonly type: 'code.exhausted';
      readonly purpose: string;
      readonly subjectDigest: string;
      readonly scope: 'code' | 'budget';
    })
  | (EventBase & {
      readonly type: 'passkey.added' | 'passkey.removed';
      readonly userId: string;
      /** SHA-256 of the credential id (base64url), as in the credential's keys. */
      readonly credentialDigest: string;
    })
  | (EventBase & {
      readonly type: 'passkey.counter-regressed';
      readonly userId: string;
      readonly credentialDigest: string;
      /** The counter on record. */
      readonly storedCounter: number;
      /** The counter the refused assertion carried (≤ the stored one: a cloned authenticator?). */
      readonly presentedCounter: number;
    })
  | (EventBase & {
      readonly type: 'mfa.succeeded';
      readonly userId: string;
      readonly method: MfaMethod;
      /** The pending login's public id. */
      readonly loginId: string;
    })
  | (EventBase & {
      readonly type: 'mfa.failed';
      readonly userId: string;
      readonly method: MfaMethod;
      /** The pending login's public id; absent for a check outside a login (setup, disable). */
      readonly loginId?: string;
    })
  | (EventBase & { readonly type: 'mfa.token-burned'; readonly userId: string; readonly loginId: string })
  | (EventBase & { readonly type: 'mfa.locked'; readonly userId: string; readonly retryAfterMs: number })
  | (EventBase & { readonly type: 'recovery-code.used'; readonly userId: string; readonly remaining: number })
  | (EventBase & { readonly type: 'password.reset'; readonly userId: string })
  | (EventBase & { readonly type: 'password.changed'; readonly userId: string });

/** The one hook through which every store reports security events. Must not throw; if it does, the
 * error is reported to `onHookError` (default: ignored) and the operation still succeeds. */
export type SecurityEventHook = (event: SecurityEvent) => void;

/** @internal Calls the hook, never letting a listener break the operation that emitted. */
export function emitSafely(hook: SecurityEventHook | undefined, event: SecurityEvent): void {
  if (hook === undefined) return;
  try {
    hook(event);
  } catch {
    // A failing listener must not turn a completed revocation into an error for the caller.
  }
}
