-- Removes one passkey credential of one user (its own record and its place in the user's list; the
-- credential-id index is dropped by passkey-unclaim-1 in its own slot).
--
-- KEYS[1]  P:pk:{T}:<digest(credential id)>  hash: the credential
-- KEYS[2]  P:pkx:{T}                         zset: credential-id digest -> createdAt
-- ARGV[1]  credential-id digest
-- Returns 1 removed, 0 no such credential.

local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) end
return removed
