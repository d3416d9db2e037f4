export {
  type AccessTokenCacheOptions,
  type AccessTokenCacheStats,
  type AccessTokenClaims,
  type AccessTokenFailure,
  type AccessTokenId,
  AccessTokens,
  type AccessTokensOptions,
  type AccessTokenVerification,
  type ClaimValue,
  type IssueAccessTokenInput,
  type IssuedAccessToken,
} from './access-tokens.js';
export { type Clock, systemClock } from './clock.js';
export type { CommandHook, CommandTiming } from './command-timing.js';
export {
  CrossSlotError,
  EvictionPolicyError,
  InvalidInputError,
  InvalidOptionError,
  isLatchkeyError,
  KeyError,
  LatchkeyError,
  type LatchkeyErrorCode,
  RefreshTokenReusedError,
  SessionDataTooLargeError,
  StaleAuthenticationError,
  StoreFailedError,
  StoreUnavailableError,
} from './errors.js';
export type { SecurityEvent, SecurityEventHook, SessionEndReason } from './events.js';
export type { DurabilityOptions } from './internal/durability.js';
export type { StoreOptions } from './internal/options.js';
export {
  type DevelopmentKey,
  generateDevelopmentKey,
  KeyRing,
  type KeyRingOptions,
  type KeySource,
  type VerificationKeyInput,
} from './key-ring.js';
export { assertSameSlot, DEFAULT_PREFIX, hashTagOf, KeySpace, userTag } from './keys.js';
export {
  type AccountIpPolicyOptions,
  type FailOpenOptions,
  type LoginBackoffOptions,
  type LoginCheckOptions,
  type LoginCheckResult,
  LoginLimiter,
  type LoginLimiterOptions,
  type LoginOutcome,
  type LoginPolicy,
  type LoginPolicyConfig,
  type LoginPolicyOptions,
  type LoginPolicyState,
  type LoginReservation,
  type Throttle,
  type ThrottlePolicy,
  type ThrottleResult,
} from './login-limiter.js';
export {
  type BeginMfaLoginInput,
  type BegunMfaLogin,
  type IssueMfaEmailCodeResult,
  type MfaAttempt,
  MfaLogins,
  type MfaLoginsOptions,
  type MfaMethod,
  type MfaVerifyResult,
  type PendingMfaLogin,
} from './mfa-logins.js';
export { MAX_IDENTIFIER_LENGTH, normalizeIdentifier, normalizeIp, UNKNOWN_IP } from './normalize.js';
export {
  type CodeAttempt,
  type CodeLimit,
  type CodeTarget,
  type IssueCodeResult,
  type IssueRefusal,
  OneTimeCodes,
  type OneTimeCodesOptions,
  type VerifyCodeResult,
  type VerifyRefusal,
} from './one-time-codes.js';
export {
  type AddPasskeyResult,
  type NewPasskeyCredential,
  type PasskeyCredential,
  PasskeyCredentials,
  type PasskeyCredentialsOptions,
  type PasskeyDeviceType,
  type PasskeyOwner,
  type PasskeyTransport,
  type RecordPasskeyUseResult,
} from './passkey-credentials.js';
export {
  type ConsumeRecoveryCodeResult,
  RecoveryCodes,
  type RecoveryCodesOptions,
} from './recovery-codes.js';
export type { RedisClient } from './redis.js';
export { type CheckRedisOptions, checkRedis, type RedisCheckResult } from './redis-check.js';
export {
  type RefreshToken,
  RefreshTokens,
  type RefreshTokensOptions,
  type RotatedRefreshToken,
} from './refresh-tokens.js';
export {
  DEFAULT_CLOCK_TOLERANCE_MS,
  DEFAULT_SKEW_MARGIN_MS,
  RevocationList,
  type RevocationListOptions,
  type RevocationQuery,
  type RevocationScope,
  type RevokeJtiOptions,
} from './revocation-list.js';
export { type SecretPurpose, ServerSecret } from './secret.js';
export { SecretBox } from './secret-box.js';
export {
  type CreateSessionOptions,
  type RevokeAllOptions,
  type Session,
  type SessionPatch,
  SessionStore,
  type SessionStoreOptions,
  type SessionToken,
} from './sessions.js';
export { Totp, type TotpCheckResult, type TotpOptions } from './totp.js';
export {
  type ChallengeBinding,
  type ChallengeRefusal,
  type ConsumeChallengeResult,
  type IssuedChallenge,
  type PresentedChallenge,
  WebAuthnChallenges,
  type WebAuthnChallengesOptions,
  type WebAuthnPurpose,
} from './webauthn-challenges.js';
