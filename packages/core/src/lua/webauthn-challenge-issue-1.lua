-- Stores a new WebAuthn challenge for one owner and purpose, replacing the previous one (an owner has
-- at most one outstanding challenge per purpose, so repeated requests never pile up keys).
--
-- KEYS[1]  P:wc:{<digest(purpose, owner)>}  hash: d = challenge digest, e = expiresAt (epoch ms)
-- ARGV[1]  SHA-256 digest of the challenge (base64url)
-- ARGV[2]  expiresAt, epoch ms
-- ARGV[3]  TTL of the key, ms (the challenge's lifetime)
-- Returns 0.

redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
