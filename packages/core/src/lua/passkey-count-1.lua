-- How many passkey credentials one user has (read-only).
--
-- KEYS[1]  P:pkx:{T}  zset: credential-id digest -> createdAt
-- Returns the count.

return redis.call('ZCARD', KEYS[1])
