-- revocation-check: whether each of several token ids of one hash tag is revoked. Read-only.
-- Each record key is KEYS[1] .. ARGV[i]: for a user's ids KEYS[1] is P:rj:{T}: and ARGV[i] the
-- jti; for an id without a user KEYS[1] is the whole key P:rj:{<sha256(jti)>} and ARGV[i] is ''.
--
-- KEYS[1]  the tagged base of the revoked-jti keys
-- ARGV[i]  one key suffix per id (at most a few hundred per call)
--
-- Returns a flat array: 1 where the id is revoked, 0 where it is not, in ARGV order
local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('EXISTS', KEYS[1] .. ARGV[i])
end
return {unpack(out)}
