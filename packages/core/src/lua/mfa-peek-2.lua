-- Reads a pending second-factor login without spending it or counting anything (read only).
--
-- KEYS[1]  P:mp:{T}:<login id>  hash (see mfa-begin-2.lua)
-- KEYS[2]  P:rb:{T}             the user's revoke-before mark (epoch ms)
-- ARGV[1]  now, epoch ms
-- Returns {status, user id, authenticatedAt, expiresAt, methods}:
--   status 0 live; 1 unknown (never issued, spent or burned); 2 expired; 3 issued before the mark.
--   The strings are empty unless status is 0.

local h = redis.call('HMGET', KEYS[1], 'u', 'aa', 'e', 'm')
if type(h[1]) ~= 'string' or type(h[2]) ~= 'string' or type(h[3]) ~= 'string' then
  return {1, '', '', '', ''}
end
if tonumber(ARGV[1]) >= tonumber(h[3]) then return {2, '', '', '', ''} end
local mark = redis.call('GET', KEYS[2])
if type(mark) == 'string' and tonumber(mark) > tonumber(h[2]) then return {3, '', '', '', ''} end
local methods = ''
if type(h[4]) == 'string' then methods = h[4] end
return {0, h[1], h[2], h[3], methods}
