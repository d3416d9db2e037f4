-- access-verify: the Redis half of verifying a latchkey access token, read-only (never writes).
-- Answers together: is the token's jti revoked, is its session alive, and was that session
-- authenticated before the user's "revoke everything before T" mark. The mark is compared with the
-- session's authenticatedAt (m:aa, ms), never with the token's iat (whole seconds).
--
-- KEYS[1]  P:s:{T}:<sid>  the session record (hash; schema in lua/README.md)
-- KEYS[2]  P:rb:{T}       the user's revoke-before mark (string, epoch ms)
-- KEYS[3]  P:rj:{T}:<jti> the revoked-jti record (string)
-- ARGV[1]  now, epoch ms (string)
--
-- Returns {0, m:aa}  valid: not revoked, session alive, authenticated at or after the mark; m:aa
--                   (the session's authenticatedAt, ms) is passed through as stored
--         {1}       the jti is revoked
--         {2}       the session is missing or past its idle or absolute deadline
--         {3}       the session was authenticated before the user's mark
-- Both strings of the tag in one MGET (the revoked-jti record and the mark): two commands on the
-- common path instead of three. Only latchkey writes these keys, and only as strings.
local r = redis.call('MGET', KEYS[3], KEYS[2])
if type(r[1]) == 'string' then
  return {1}
end
local s = redis.call('HMGET', KEYS[1], 'm:ie', 'm:ae', 'm:aa')
local ie, ae, aa = s[1], s[2], s[3]
if type(ie) ~= 'string' or type(ae) ~= 'string' or type(aa) ~= 'string' then
  return {2}
end
local now = tonumber(ARGV[1])
if now >= tonumber(ie) or now >= tonumber(ae) then
  return {2}
end
local mark = r[2]
if type(mark) == 'string' and tonumber(mark) > tonumber(aa) then
  return {3}
end
return {0, aa}
