-- Stores a pending second-factor login (issued after a correct password), unless the user's
-- revoke-before mark is later than the instant the password check began: such a login raced a
-- password reset, a password change or logout-all and gets no token (as session-create refuses it).
--
-- KEYS[1]  P:mp:{T}:<login id>  hash: u = user id, aa = authenticatedAt (ms), e = expiresAt (ms),
--                               m = allowed methods (space-separated), f = first-factor amr
--                               (space-separated), a = failed attempts (absent until one)
-- KEYS[2]  P:rb:{T}             the user's revoke-before mark (epoch ms), read only
-- ARGV[1]  user id              ARGV[2]  authenticatedAt, epoch ms
-- ARGV[3]  expiresAt, epoch ms  ARGV[4]  methods        ARGV[5]  first-factor amr
-- ARGV[6]  TTL of the record, ms (its lifetime)
-- Returns {1, ''} stored, or {-1, mark} refused as stale (the mark, epoch ms, as stored).

local mark = redis.call('GET', KEYS[2])
if type(mark) == 'string' and tonumber(mark) > tonumber(ARGV[2]) then return {-1, mark} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'aa', ARGV[2], 'e', ARGV[3], 'm', ARGV[4], 'f', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, ''}
