export {
  type AssuranceOptions,
  INSUFFICIENT_USER_AUTHENTICATION,
  INSUFFICIENT_USER_AUTHENTICATION_CHALLENGE,
} from './assurance.js';
export {
  type AccessTokenVerifier,
  type Auth,
  type AuthState,
  type BearerAuth,
  type BearerOptions,
  type BearerState,
  bearer,
  INVALID_TOKEN,
  type OptionalBearerState,
  type RequireAuthOptions,
  requireAuth,
  type SessionAuth,
  type SessionLike,
  type SessionLikeState,
  type TokenAuthOptions,
  UNAUTHENTICATED,
} from './bearer.js';
export {
  type CrossOriginProtectionOptions,
  CSRF_REJECTED,
  crossOriginProtection,
} from './csrf.js';
export {
  type FreshnessState,
  REAUTHENTICATION_REQUIRED,
  type RequireFreshAuthOptions,
  requireFreshAuth,
} from './freshness.js';
export {
  HTTP_ERRORS,
  type HttpMapping,
  type LatchkeyErrorsOptions,
  latchkeyErrors,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from './http-errors.js';
export {
  INVALID_LOGIN_IDENTIFIER,
  type LoginLimiterLike,
  type LoginLimiterMiddlewareOptions,
  type LoginLimitState,
  loginLimiter,
  type RateLimitOptions,
  rateLimit,
  TOO_MANY_ATTEMPTS,
} from './login-limiter.js';
export { type RefusalBody, type RefusalMode, RequestRefusedError } from './refusal.js';
export {
  type LogInOptions,
  type SessionControl,
  type SessionCookieOptions,
  type SessionData,
  type SessionMiddlewareOptions,
  type SessionState,
  type SessionStoreLike,
  session,
} from './session.js';
