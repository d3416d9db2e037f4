-- revocation-add: records a revoked token id until the token can no longer be accepted anywhere.
-- The TTL (computed in TypeScript) is the token's remaining lifetime plus the verifiers' clock
-- tolerance plus a skew margin. An existing record is never shortened: revoking twice keeps the
-- longer TTL (compared with PTTL because ioredis-mock ignores SET/PEXPIRE flags).
--
-- KEYS[1]  P:rj:{T}:<jti> or P:rj:{<sha256(jti)>}  the revoked-jti record (string)
-- ARGV[1]  TTL in ms (string, > 0)
--
-- Returns 1  written, or its TTL extended
--         0  already recorded with at least this TTL
local current = redis.call('PTTL', KEYS[1])
if current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
