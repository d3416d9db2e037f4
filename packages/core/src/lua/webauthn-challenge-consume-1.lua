-- Consumes the outstanding WebAuthn challenge of one owner and purpose: whatever the outcome, the
-- challenge is deleted, so each one is checked at most once (one verification per challenge, also
-- under races: the first caller takes it, every other finds nothing).
--
-- KEYS[1]  P:wc:{<digest(purpose, owner)>}  hash: d = challenge digest, e = expiresAt (epoch ms)
-- ARGV[1]  now, epoch ms
-- ARGV[2]  SHA-256 digest of the presented challenge, or a marker that equals no digest
-- Returns 0 consumed (it matched and was live), 1 none outstanding (never issued, used or replaced),
--   2 another challenge was outstanding (it is spent too), 3 expired.

local h = redis.call('HMGET', KEYS[1], 'd', 'e')
if type(h[1]) ~= 'string' or type(h[2]) ~= 'string' then return 1 end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[1]) >= tonumber(h[2]) then return 3 end
if h[1] ~= ARGV[2] then return 2 end
return 0
