import type Router from '@koa/router';
import {
  type MfaAttempt,
  type MfaLogins,
  type MfaMethod,
  type MfaVerifyResult,
  type RecoveryCodes,
  type SecretBox,
  Totp,
} from '@latchkey/core';
import type { Middleware, ParameterizedContext } from 'koa';
import QRCode from 'qrcode';
import type { Logger } from '../logger.js';
import type { MailPurpose } from '../mailer.js';
import type { StoredUser, UserStore } from '../users.js';
import { bodyObject, field, HttpError, invalidRequest, parseString } from '../validation.js';

/**
 * The second-factor routes of HTTP-API.md §"Second factors and passkeys" (all but the passkey ones):
 * the second login step (`POST /auth/login/mfa`, `POST /auth/login/mfa/email`), TOTP setup / confirm
 * / disable, and recovery codes. The password step that answers `mfaRequired` is `POST /auth/login`
 * in app.ts (it calls {@link MfaRouteDeps.mfaLogins}`.begin`).
 *
 * latchkey keeps the state: pending logins (`MfaLogins`: single-use mfaTokens, 5 wrong codes burn
 * one, 10 failures per account per 24 h lock the checks), the last accepted TOTP step per account
 * (`Totp`: a code is never accepted twice), recovery codes as keyed digests (`RecoveryCodes`), and
 * `2fa` email codes bound to one mfaToken. The app keeps the TOTP secret in its user record, sealed
 * with latchkey's `SecretBox` (AES-256-GCM under a key derived from LATCHKEY_SECRET, bound to the
 * user id): a Redis dump alone does not give it away.
 */

/** What the routes need from the app (its stores and the middleware every route shares). */
export interface MfaRouteDeps<S> {
  readonly logger: Logger;
  readonly users: UserStore;
  readonly mfaLogins: MfaLogins;
  readonly totp: Totp;
  readonly recoveryCodes: RecoveryCodes;
  readonly box: SecretBox;
  /** The cross-site check. */
  readonly csrf: Middleware<S>;
  /** Loads the cookie session (`ctx.state.session` and `ctx.state.sessions`). */
  readonly cookieSession: Middleware<S>;
  /** Bearer or cookie; sets `ctx.state.auth`. */
  readonly authenticated: Middleware<S>;
  /** Requires a recent authentication (mounted after `authenticated`). */
  readonly fresh: Middleware<S>;
  /** Parses the body (JSON or form; 16 KiB; 413/415/400). */
  readonly withBody: Middleware<S>;
  /** Creates the session of a completed login, its tokens, and answers the login shape with the cookie. */
  readonly logIn: (
    ctx: ParameterizedContext<S>,
    login: SecondFactorLogin,
    refused: () => HttpError,
  ) => Promise<void>;
  /** The 401 of a protected route whose credential names no usable user. */
  readonly unauthenticated: (ctx: ParameterizedContext<S>) => HttpError;
  /** Revokes every other session of the user (TOTP was turned on or off). */
  readonly revokeOthers: (ctx: ParameterizedContext<S>, userId: string, sessionId: string) => Promise<void>;
  /** Sends a code by email (not awaited). */
  readonly send: (to: string, purpose: MailPurpose, code: string) => void;
  /** Answers 429 with `Retry-After`. */
  readonly tooManyAttempts: (retryAfterMs: number) => HttpError;
}

/** A login whose second factor checked out, for {@link MfaRouteDeps.logIn}. */
export interface SecondFactorLogin {
  readonly userId: string;
  /** The instant the second factor's check began (after the mark check): the session is fresh from it. */
  readonly authenticatedAt: number;
  /** RFC 8176: `pwd`, `otp`, `mfa`. */
  readonly amr: readonly string[];
}

interface MfaState {
  auth?: { readonly userId: string; readonly sessionId: string } | undefined;
}

/** The TOTP issuer shown in authenticator apps. */
export const TOTP_ISSUER = 'latchkey example';
/** Longest mfaToken accepted before it is looked at (the real ones are ~90 characters). */
const MAX_MFA_TOKEN = 512;
/** Longest code accepted before it is looked at (a recovery code with separators is ~20). */
const MAX_CODE = 256;
const METHODS: readonly MfaMethod[] = ['totp', 'recovery-code', 'email'];
/** A TOTP code as typed: six ASCII digits (anything else given to DELETE /auth/mfa/totp is a recovery code). */
const TOTP_CODE = /^\s*\d{6}\s*$/;

export function invalidMfaToken(): HttpError {
  return new HttpError(
    401,
    'invalid_mfa_token',
    'the login step is unknown, expired or already used; log in again',
  );
}

function invalidCode(): HttpError {
  return new HttpError(400, 'invalid_code', 'the code is not valid');
}

/** The account's second-factor checks are locked (10 failures in 24 h): the contract's 400 invalid_code. */
function lockedCode(retryAfterMs: number): HttpError {
  return new HttpError(400, 'invalid_code', 'too many wrong codes for this account; try again later', {
    'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
  });
}

/** The second-factor methods an account with TOTP may use at login (`email` once the address is verified). */
export function methodsOf(user: StoredUser): MfaMethod[] {
  return ['totp', 'recovery-code', ...(user.emailVerified ? (['email'] as const) : [])];
}

export function mfaRoutes<S extends MfaState>(router: Router<S>, deps: MfaRouteDeps<S>): void {
  const { users, mfaLogins, totp, recoveryCodes, box } = deps;

  const authOf = (ctx: ParameterizedContext<S>): { userId: string; sessionId: string } => {
    const auth = ctx.state.auth;
    if (auth === undefined) throw deps.unauthenticated(ctx);
    return auth;
  };
  const userOf = async (ctx: ParameterizedContext<S>): Promise<StoredUser> => {
    const user = await users.findById(authOf(ctx).userId);
    if (user === null) throw deps.unauthenticated(ctx);
    return user;
  };
  /** The user's TOTP secret in clear, or null when it cannot be opened (LATCHKEY_SECRET changed?). */
  const openSecret = (user: StoredUser, sealed: string): string | null => {
    const secret = box.open(sealed, user.id);
    if (secret === null) {
      deps.logger.error(
        { userId: user.id },
        'a sealed TOTP secret does not open (was LATCHKEY_SECRET changed?)',
      );
    }
    return secret;
  };

  // --- the second login step ---------------------------------------------------------------------

  router.post('/auth/login/mfa/email', deps.csrf, deps.withBody, async (ctx) => {
    const body = bodyObject(bodyOf(ctx));
    const mfaToken = parseString(field(body, 'mfaToken'), 'mfaToken', MAX_MFA_TOKEN);
    const issued = await mfaLogins.issueEmailCode(mfaToken, { ip: ctx.ip });
    if (!issued.ok) {
      if (issued.reason === 'invalid_token') throw invalidMfaToken();
      throw deps.tooManyAttempts(issued.retryAfterMs);
    }
    const user = await users.findById(issued.login.userId);
    if (user === null) throw invalidMfaToken();
    deps.send(user.email, '2fa', issued.code);
    ctx.status = 202;
    ctx.body = { status: 'sent' };
  });

  router.post(
    '/auth/login/mfa',
    deps.csrf,
    deps.withBody,
    // Validated whole before anything is looked up: a malformed request spends no attempt.
    async (ctx, next) => {
      const body = bodyObject(bodyOf(ctx));
      const mfaToken = parseString(field(body, 'mfaToken'), 'mfaToken', MAX_MFA_TOKEN);
      const method = parseString(field(body, 'method'), 'method', 32);
      const code = parseString(field(body, 'code'), 'code', MAX_CODE);
      if (!(METHODS as readonly string[]).includes(method)) {
        throw invalidRequest(`method must be one of ${METHODS.join(', ')}`);
      }
      (ctx.state as { mfaInput?: MfaInput }).mfaInput = { mfaToken, method: method as MfaMethod, code };
      await next();
    },
    // The login replaces a session cookie already present (as POST /auth/login does).
    deps.cookieSession,
    async (ctx) => {
      const { mfaToken, method, code } = (ctx.state as { mfaInput?: MfaInput }).mfaInput as MfaInput;
      let attempt: MfaAttempt;
      if (method === 'totp') {
        // The secret lives in the user record: read the pending login (no write) to find the user.
        const pending = await mfaLogins.peek(mfaToken);
        if (pending === null) throw invalidMfaToken();
        const user = await users.findById(pending.userId);
        // TOTP turned off since the password step: this pending login cannot use it any more.
        if (user === null || user.totpSealed === null) throw invalidMfaToken();
        const secret = openSecret(user, user.totpSealed);
        if (secret === null) throw invalidMfaToken();
        attempt = { method, code, secret };
      } else if (method === 'email') {
        attempt = { method, code, ip: ctx.ip };
      } else {
        attempt = { method, code };
      }
      const result: MfaVerifyResult = await mfaLogins.verify(mfaToken, attempt);
      if (!result.ok) {
        if (result.reason === 'invalid_token') throw invalidMfaToken();
        if (result.reason === 'locked') throw lockedCode(result.retryAfterMs);
        throw invalidCode();
      }
      // A password reset, change or logout-all after this step began makes the session stale: refused.
      await deps.logIn(
        ctx,
        { userId: result.userId, authenticatedAt: result.authenticatedAt, amr: result.amr },
        invalidMfaToken,
      );
    },
  );

  // --- TOTP setup, confirmation, removal ----------------------------------------------------------

  router.post(
    '/auth/mfa/totp/setup',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.fresh,
    async (ctx) => {
      const user = await userOf(ctx);
      if (user.totpSealed !== null) throw alreadyEnabled();
      const secret = Totp.generateSecret();
      const stored = await users.beginTotpSetup(user.id, box.seal(secret, user.id));
      if (stored === 'already_enabled') throw alreadyEnabled();
      if (stored === 'no_user') throw deps.unauthenticated(ctx);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { secret, otpauthUri: totp.uri({ secret, account: user.email }) };
    },
  );

  // The pending setup's otpauth:// URI as a QR code (SVG drawn by `qrcode` on the server), for an
  // <img> of the page: the page's CSP allows images from this origin only, and no script draws it.
  router.get('/auth/mfa/totp/setup/qr.svg', deps.cookieSession, deps.authenticated, async (ctx) => {
    const user = await userOf(ctx);
    const sealed = await users.pendingTotpSetup(user.id);
    const secret = sealed === null ? null : openSecret(user, sealed);
    if (secret === null) throw noPendingSetup();
    const svg = await QRCode.toString(totp.uri({ secret, account: user.email }), {
      type: 'svg',
      errorCorrectionLevel: 'M',
      margin: 2,
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', "default-src 'none'");
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.type = 'image/svg+xml';
    ctx.body = svg;
  });

  router.post(
    '/auth/mfa/totp/confirm',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.withBody,
    async (ctx) => {
      const body = bodyObject(bodyOf(ctx));
      const code = parseString(field(body, 'code'), 'code', MAX_CODE);
      const { sessionId } = authOf(ctx);
      const user = await userOf(ctx);
      const sealed = await users.pendingTotpSetup(user.id);
      if (sealed === null) throw noPendingSetup();
      const secret = openSecret(user, sealed);
      if (secret === null) throw noPendingSetup();
      const checked = await totp.verify(user.id, secret, code);
      if (!checked.ok) throw checked.reason === 'locked' ? lockedCode(checked.retryAfterMs) : invalidCode();
      const confirmed = await users.confirmTotp(user.id, sealed);
      if (confirmed === 'no_user') throw deps.unauthenticated(ctx);
      if (confirmed !== 'confirmed') throw noPendingSetup();
      const codes = await recoveryCodes.replace(user.id);
      await deps.revokeOthers(ctx, user.id, sessionId);
      deps.logger.info({ userId: user.id }, 'TOTP turned on');
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { recoveryCodes: codes };
    },
  );

  router.delete(
    '/auth/mfa/totp',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.fresh,
    deps.withBody,
    async (ctx) => {
      const body = bodyObject(bodyOf(ctx));
      const code = parseString(field(body, 'code'), 'code', MAX_CODE);
      const { sessionId } = authOf(ctx);
      const user = await userOf(ctx);
      if (user.totpSealed === null) throw notEnabled();
      if (TOTP_CODE.test(code)) {
        const secret = openSecret(user, user.totpSealed);
        const checked = secret === null ? null : await totp.verify(user.id, secret, code.trim());
        if (checked === null || !checked.ok) {
          throw checked !== null && !checked.ok && checked.reason === 'locked'
            ? lockedCode(checked.retryAfterMs)
            : invalidCode();
        }
      } else {
        const used = await recoveryCodes.consume(user.id, code);
        if (!used.ok) throw used.reason === 'locked' ? lockedCode(used.retryAfterMs) : invalidCode();
      }
      if (!(await users.disableTotp(user.id, user.totpSealed))) throw notEnabled();
      await recoveryCodes.remove(user.id);
      await deps.revokeOthers(ctx, user.id, sessionId);
      deps.logger.info({ userId: user.id }, 'TOTP turned off');
      ctx.status = 204;
    },
  );

  router.post(
    '/auth/mfa/recovery-codes',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.fresh,
    async (ctx) => {
      const user = await userOf(ctx);
      if (user.totpSealed === null) throw notEnabled();
      const codes = await recoveryCodes.replace(user.id);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { recoveryCodes: codes };
    },
  );
}

interface MfaInput {
  readonly mfaToken: string;
  readonly method: MfaMethod;
  readonly code: string;
}

function alreadyEnabled(): HttpError {
  return new HttpError(409, 'mfa_already_enabled', 'TOTP is already on for this account');
}

function noPendingSetup(): HttpError {
  return new HttpError(409, 'no_pending_setup', 'start a TOTP setup first (it lasts 15 minutes)');
}

function notEnabled(): HttpError {
  return new HttpError(404, 'not_found', 'TOTP is not on for this account');
}

function bodyOf(ctx: ParameterizedContext<unknown>): unknown {
  return (ctx.request as { body?: unknown }).body;
}
