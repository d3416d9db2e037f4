import type Router from '@koa/router';
import { type Clock, type PasskeyCredentials, type Session, WebAuthnChallenges } from '@latchkey/core';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { Middleware, ParameterizedContext } from 'koa';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { User, UserStore } from '../users.js';
import { HttpError, invalidRequest } from '../validation.js';

/**
 * The passkey (WebAuthn) routes of HTTP-API.md §"Second factors and passkeys". WebAuthn data is
 * verified by `@simplewebauthn/server`; latchkey keeps the challenges (single use, bound to the session
 * for a registration and to an attempt cookie for a login) and the credentials with their counters.
 *
 * Every verification first consumes the challenge the response echoes — whatever comes next, that
 * challenge is spent — and only then checks the signature against that same challenge. A replayed or
 * foreign response therefore fails at the challenge, before any signature is looked at.
 */

/** What the routes need from the app (its stores and the middleware every route shares). */
export interface PasskeyRouteDeps<S> {
  readonly config: Config;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly challenges: WebAuthnChallenges;
  readonly passkeys: PasskeyCredentials;
  readonly users: UserStore;
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
  /** Throttles per client IP: every request counts. */
  readonly perIp: (action: string, limit: number) => Middleware<S>;
  /** The login limiter, keyed by what `identifier` returns (failures count per account+IP and IP). */
  readonly loginThrottle: (identifier: (ctx: ParameterizedContext<S>) => string) => Middleware<S>;
  /** Creates the session of a login, its refresh token, and answers the login shape with the cookie. */
  readonly logIn: (ctx: ParameterizedContext<S>, login: PasskeyLogin) => Promise<void>;
  /** The 401 of a protected route whose credential names no usable user. */
  readonly unauthenticated: (ctx: ParameterizedContext<S>) => HttpError;
  /** Revokes every other session of the user (a credential was added or removed). */
  readonly revokeOthers: (ctx: ParameterizedContext<S>, userId: string, sessionId: string) => Promise<void>;
}

/** A verified passkey login, for {@link PasskeyRouteDeps.logIn}. */
export interface PasskeyLogin {
  readonly userId: string;
  /** Taken before the credential was checked (a later revoke-before mark makes the login stale). */
  readonly authenticatedAt: number;
  /**
   * RFC 8176 methods: `hwk` for a device-bound key, `swk` for a synced one, plus `mfa` — every
   * passkey login requires user verification (PIN or biometric on the authenticator), so it proves
   * possession and a second factor at once.
   */
  readonly amr: readonly string[];
}

interface PasskeyState {
  auth?: { readonly userId: string; readonly sessionId: string } | undefined;
  session?: Session<Record<string, unknown>> | null | undefined;
  sessions?: { forget(): void } | undefined;
}

/** A WebAuthn ceremony may take this long; the challenge lives as long. */
const CEREMONY_MS = 5 * 60 * 1000;
/** Longest credential id (WebAuthn: 1023 bytes) in base64url. */
const MAX_CREDENTIAL_ID = 1364;
/** Longest base64url field of a response accepted before it is looked at (the body cap is 16 KiB). */
const MAX_FIELD = 16 * 1024;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const RP_NAME = 'latchkey example';

export function passkeyRoutes<S extends PasskeyState>(router: Router<S>, deps: PasskeyRouteDeps<S>): void {
  const { config, clock, challenges, passkeys, users } = deps;
  const attemptCookie = config.secureCookies ? '__Host-pk_attempt' : 'pk_attempt';

  /** The RP id and expected origin: PUBLIC_ORIGIN's, else the request's own (development). */
  const relyingParty = (ctx: ParameterizedContext<S>): { rpID: string; origin: string } => {
    if (config.publicOrigin !== undefined) {
      return { rpID: new URL(config.publicOrigin).hostname, origin: config.publicOrigin };
    }
    return { rpID: ctx.hostname, origin: `${ctx.protocol}://${ctx.host}` };
  };

  const invalidRegistration = (): HttpError =>
    new HttpError(400, 'invalid_passkey', 'the passkey registration is not valid');
  const invalidLogin = (): HttpError => new HttpError(401, 'invalid_passkey', 'the passkey is not valid');

  /** The authenticated user, who must have a verified email: credentials have no TTL, and an
   * unverified account expires (its passkeys would outlive it). */
  const verifiedUser = async (ctx: ParameterizedContext<S>): Promise<User> => {
    const user = await users.findById(authOf(ctx).userId);
    if (user === null) throw deps.unauthenticated(ctx);
    if (!user.emailVerified) {
      throw new HttpError(403, 'email_not_verified', 'verify your email address before adding a passkey');
    }
    return user;
  };
  const authOf = (ctx: ParameterizedContext<S>): { userId: string; sessionId: string } => {
    const auth = ctx.state.auth;
    if (auth === undefined) throw deps.unauthenticated(ctx);
    return auth;
  };

  router.post(
    '/auth/passkeys/register/options',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.fresh,
    async (ctx) => {
      const { sessionId } = authOf(ctx);
      const user = await verifiedUser(ctx);
      const existing = await passkeys.list(user.id);
      const { challenge } = await challenges.issue({ purpose: 'registration', owner: sessionId });
      const { rpID } = relyingParty(ctx);
      const options = await generateRegistrationOptions({
        rpName: RP_NAME,
        rpID,
        userName: user.email,
        userID: userHandle(user.id),
        challenge: new Uint8Array(Buffer.from(challenge, 'base64url')),
        timeout: CEREMONY_MS,
        attestationType: 'none',
        excludeCredentials: existing.map((c) => ({ id: c.id, transports: [...c.transports] })),
        authenticatorSelection: {
          residentKey: 'required',
          requireResidentKey: true,
          userVerification: 'preferred',
        },
      });
      ctx.set('Cache-Control', 'no-store');
      ctx.body = options;
    },
  );

  router.post(
    '/auth/passkeys/register/verify',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.withBody,
    async (ctx) => {
      const response = parseRegistration(bodyOf(ctx));
      const { sessionId } = authOf(ctx);
      const userId = (await verifiedUser(ctx)).id;
      const echoed = echoedChallenge(response.response.clientDataJSON);
      const spent = await challenges.consume({
        purpose: 'registration',
        owner: sessionId,
        challenge: echoed,
      });
      if (!spent.ok) throw invalidRegistration();
      const { rpID, origin } = relyingParty(ctx);
      let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
      try {
        verified = await verifyRegistrationResponse({
          response,
          expectedChallenge: echoed,
          expectedOrigin: origin,
          expectedRPID: rpID,
          expectedType: 'webauthn.create',
          requireUserVerification: false,
        });
      } catch (error) {
        deps.logger.info({ reason: reasonOf(error) }, 'passkey registration refused');
        throw invalidRegistration();
      }
      const info = verified.registrationInfo;
      if (!verified.verified || info === undefined || info.credential.id !== response.id) {
        throw invalidRegistration();
      }
      const added = await passkeys.add(userId, {
        id: info.credential.id,
        publicKey: info.credential.publicKey,
        counter: info.credential.counter,
        transports: info.credential.transports,
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
      });
      if (!added.ok) {
        throw new HttpError(
          400,
          'invalid_passkey',
          added.reason === 'limit'
            ? 'this account has the most passkeys allowed'
            : 'this passkey is already registered',
        );
      }
      await deps.revokeOthers(ctx, userId, sessionId);
      ctx.status = 201;
      ctx.body = { id: added.credential.id, createdAt: new Date(added.credential.createdAt).toISOString() };
    },
  );

  router.get('/auth/passkeys', deps.csrf, deps.cookieSession, deps.authenticated, async (ctx) => {
    const list = await passkeys.list(authOf(ctx).userId);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      passkeys: list.map((c) => ({
        id: c.id,
        createdAt: new Date(c.createdAt).toISOString(),
        lastUsedAt: c.lastUsedAt === null ? null : new Date(c.lastUsedAt).toISOString(),
      })),
    };
  });

  router.delete(
    '/auth/passkeys/:id',
    deps.csrf,
    deps.cookieSession,
    deps.authenticated,
    deps.fresh,
    async (ctx) => {
      const { userId, sessionId } = authOf(ctx);
      const id = (ctx.params as Record<string, string | undefined>)['id'] ?? '';
      const removed = id.length <= MAX_CREDENTIAL_ID && (await passkeys.remove(userId, id));
      if (!removed) throw new HttpError(404, 'not_found', 'no such passkey');
      await deps.revokeOthers(ctx, userId, sessionId);
      ctx.status = 204;
    },
  );

  router.post(
    '/auth/passkeys/login/options',
    deps.csrf,
    deps.perIp('passkey-login', config.limits.passkeyLoginMaxPerIp),
    async (ctx) => {
      const attempt = WebAuthnChallenges.createAttemptId();
      const { challenge } = await challenges.issue({ purpose: 'authentication', owner: attempt });
      const options = await generateAuthenticationOptions({
        rpID: relyingParty(ctx).rpID,
        challenge: new Uint8Array(Buffer.from(challenge, 'base64url')),
        timeout: CEREMONY_MS,
        userVerification: 'required',
        allowCredentials: [],
      });
      setAttemptCookie(ctx, attemptCookie, attempt, config.secureCookies);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = options;
    },
  );

  router.post(
    '/auth/passkeys/login/verify',
    deps.csrf,
    deps.withBody,
    // Validated before the limiter: a malformed body spends no attempt and no challenge.
    async (ctx, next) => {
      (ctx.state as { passkeyResponse?: AuthenticationResponseJSON }).passkeyResponse = parseAuthentication(
        bodyOf(ctx),
      );
      await next();
    },
    // Failed passkey checks count against the client IP like failed passwords (and per credential id).
    deps.loginThrottle((ctx) => `passkey:${responseOf(ctx).id.slice(0, 64)}`),
    deps.cookieSession,
    async (ctx) => {
      const authenticatedAt = clock.now();
      const response = responseOf(ctx);
      const attempt = ctx.cookies.get(attemptCookie);
      // The attempt cookie is spent with its challenge, whatever the outcome.
      clearAttemptCookie(ctx, attemptCookie, config.secureCookies);
      if (attempt === undefined || !/^[A-Za-z0-9_-]{43}$/.test(attempt)) throw invalidLogin();
      const echoed = echoedChallenge(response.response.clientDataJSON);
      const spent = await challenges.consume({
        purpose: 'authentication',
        owner: attempt,
        challenge: echoed,
      });
      if (!spent.ok) throw invalidLogin();
      const owner = await passkeys.lookup(response.id);
      if (owner === null) throw invalidLogin();
      const handle = response.response.userHandle;
      if (handle !== undefined && handle !== Buffer.from(userHandle(owner.userId)).toString('base64url'))
        throw invalidLogin();
      const { rpID, origin } = relyingParty(ctx);
      let newCounter: number;
      try {
        const verified = await verifyAuthenticationResponse({
          response,
          expectedChallenge: echoed,
          expectedOrigin: origin,
          expectedRPID: rpID,
          expectedType: 'webauthn.get',
          // Counter 0: the library's own (non-atomic) counter check never refuses; recordUse decides.
          credential: { id: response.id, publicKey: owner.publicKey, counter: 0 },
          requireUserVerification: true,
        });
        if (!verified.verified) throw new Error('not verified');
        newCounter = verified.authenticationInfo.newCounter;
      } catch (error) {
        deps.logger.info({ reason: reasonOf(error) }, 'passkey login refused');
        throw invalidLogin();
      }
      const user = await users.findById(owner.userId);
      if (user === null) throw invalidLogin();
      const used = await passkeys.recordUse(owner.userId, response.id, newCounter);
      if (!used.ok) throw invalidLogin();
      const amr = [used.deviceType === 'multiDevice' ? 'swk' : 'hwk', 'mfa'];
      await deps.logIn(ctx, { userId: owner.userId, authenticatedAt, amr });
    },
  );
}

/** The WebAuthn user handle of a user: the bytes of its (random, non-identifying) id. */
function userHandle(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId, 'utf8'));
}

function bodyOf(ctx: ParameterizedContext<unknown>): unknown {
  return (ctx.request as { body?: unknown }).body;
}

function responseOf<S>(ctx: ParameterizedContext<S>): AuthenticationResponseJSON {
  const response = (ctx.state as { passkeyResponse?: AuthenticationResponseJSON }).passkeyResponse;
  if (response === undefined) throw invalidRequest('the body is not a WebAuthn response');
  return response;
}

/** The challenge a response's clientDataJSON echoes, or '' when there is none to read. */
function echoedChallenge(clientDataJSON: string): string {
  try {
    const data: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
    const challenge = (data as { challenge?: unknown } | null)?.challenge;
    return typeof challenge === 'string' ? challenge : '';
  } catch {
    return '';
  }
}

/** Why the library refused (its message names the check, never a secret), for the log. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : 'refused';
  // Messages may quote the presented challenge or origin: keep the first words only.
  return message.split(/["(]/)[0]?.slice(0, 80) ?? 'refused';
}

function setAttemptCookie(
  ctx: ParameterizedContext<unknown>,
  name: string,
  value: string,
  secure: boolean,
): void {
  const maxAge = Math.floor(CEREMONY_MS / 1000);
  ctx.append(
    'Set-Cookie',
    `${name}=${value}; Max-Age=${maxAge}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`,
  );
}

function clearAttemptCookie(ctx: ParameterizedContext<unknown>, name: string, secure: boolean): void {
  if (ctx.cookies.get(name) === undefined) return;
  ctx.append(
    'Set-Cookie',
    `${name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`,
  );
}

// --- body shapes: wrong types, missing or oversized fields are 400 invalid_request ------------------

type Json = Record<string, unknown>;

function object(value: unknown, name: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidRequest(`${name} must be an object`);
  }
  return value as Json;
}

function base64url(value: unknown, name: string, max = MAX_FIELD): string {
  if (typeof value !== 'string') throw invalidRequest(`${name} must be a string`);
  if (value.length === 0 || value.length > max || !BASE64URL.test(value)) {
    throw invalidRequest(`${name} must be base64url of at most ${max} characters`);
  }
  return value;
}

/** The fields every WebAuthn response JSON shares, checked; `response` still to be read. */
interface CommonFields {
  readonly base: {
    readonly id: string;
    readonly rawId: string;
    readonly type: 'public-key';
    readonly clientExtensionResults: Record<string, never>;
    readonly authenticatorAttachment?: 'platform' | 'cross-platform';
  };
  readonly response: Json;
  readonly clientDataJSON: string;
}

function common(body: unknown): CommonFields {
  const top = object(body, 'the body');
  const id = base64url(top['id'], 'id', MAX_CREDENTIAL_ID);
  if (top['rawId'] !== id) throw invalidRequest('rawId must equal id');
  if (top['type'] !== 'public-key') throw invalidRequest('type must be "public-key"');
  object(top['clientExtensionResults'] ?? {}, 'clientExtensionResults');
  const attachment = top['authenticatorAttachment'] as 'platform' | 'cross-platform' | undefined;
  if (attachment !== undefined && attachment !== 'platform' && attachment !== 'cross-platform') {
    throw invalidRequest('authenticatorAttachment must be "platform" or "cross-platform"');
  }
  const response = object(top['response'], 'response');
  const clientDataJSON = base64url(response['clientDataJSON'], 'response.clientDataJSON');
  // Extension results are not used: none is requested, so none is passed on.
  const base = {
    id,
    rawId: id,
    type: 'public-key',
    clientExtensionResults: {},
    ...(attachment === undefined ? {} : { authenticatorAttachment: attachment }),
  } as const;
  return { base, response, clientDataJSON };
}

function parseRegistration(body: unknown): RegistrationResponseJSON {
  const { base, response, clientDataJSON } = common(body);
  const attestationObject = base64url(response['attestationObject'], 'response.attestationObject');
  const transports = response['transports'] ?? [];
  if (
    !Array.isArray(transports) ||
    transports.length > 16 ||
    transports.some((t) => typeof t !== 'string' || t.length > 32)
  ) {
    throw invalidRequest('response.transports must be a list of at most 16 short strings');
  }
  return {
    ...base,
    response: {
      clientDataJSON,
      attestationObject,
      transports: transports as NonNullable<RegistrationResponseJSON['response']['transports']>,
    },
  };
}

function parseAuthentication(body: unknown): AuthenticationResponseJSON {
  const { base, response, clientDataJSON } = common(body);
  const authenticatorData = base64url(response['authenticatorData'], 'response.authenticatorData');
  const signature = base64url(response['signature'], 'response.signature');
  const handle = response['userHandle'];
  const userHandle =
    handle === undefined || handle === null || handle === ''
      ? undefined
      : base64url(handle, 'response.userHandle', 128);
  return {
    ...base,
    response: {
      clientDataJSON,
      authenticatorData,
      signature,
      ...(userHandle === undefined ? {} : { userHandle }),
    },
  };
}
