export { type Clock, systemClock } from './clock.js';
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
export type { StoreOptions } from './internal/options.js';
export { assertSameSlot, DEFAULT_PREFIX, hashTagOf, KeySpace, userTag } from './keys.js';
export { MAX_IDENTIFIER_LENGTH, normalizeIdentifier, normalizeIp, UNKNOWN_IP } from './normalize.js';
export type { RedisClient } from './redis.js';
export { type CheckRedisOptions, checkRedis, type RedisCheckResult } from './redis-check.js';
export { type SecretPurpose, ServerSecret } from './secret.js';
