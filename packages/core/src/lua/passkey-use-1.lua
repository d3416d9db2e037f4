-- Records a verified assertion of one credential: moves its signature counter forward and sets
-- lastUsedAt, atomically. A counter that does not move forward is refused when the authenticator
-- keeps one (stored or presented counter non-zero); both zero means it keeps none.
--
-- KEYS[1]  P:pk:{T}:<digest(credential id)>  hash: the credential (see passkey-add-2)
-- ARGV[1]  the presented counter (decimal, 0 … 2^32-1; compared only, never computed with)
-- ARGV[2]  now, epoch ms
-- Returns {status, stored counter, device type, backed up}: status 0 recorded, 1 no such credential,
--   2 counter regression (nothing changed).

local h = redis.call('HMGET', KEYS[1], 'n', 'dt', 'b')
if type(h[1]) ~= 'string' then return {1, '', '', ''} end
local stored, presented = tonumber(h[1]), tonumber(ARGV[1])
if (stored ~= 0 or presented ~= 0) and presented <= stored then return {2, h[1], h[2], h[3]} end
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'l', ARGV[2])
return {0, h[1], h[2], h[3]}
