-- session-get: loads a live session by its token digest and slides its idle deadline. The deadline,
-- lastSeenAt and the TTLs are written at most once per resolution, never past the absolute deadline.
-- A session found dead (idle or absolute deadline passed, or authenticated before the user's mark) is
-- deleted. A wrong digest changes nothing. The hot path: one HMGET of fixed fields (the data is one
-- field, 'd'), one GET, no loop.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  token digest    ARGV[2]  now (epoch ms)
-- ARGV[3]  lastSeen resolution (ms)    ARGV[4]  sid
--
-- Returns 0 when there is no session for this digest;
--         {2, user id} when it was dead (and is now deleted);
--         {1, user id, createdAt, authenticatedAt, lastSeenAt, idle deadline, absolute deadline,
--            ip or '', user agent or '', data, amr or ''} where data is name NUL json NUL name NUL
--            json ... and amr is space-separated RFC 8176 values
local h = redis.call('HMGET', KEYS[1], 't', 'u', 'c', 'm:aa', 's', 'm:ie', 'm:ae',
  'ip', 'd', 'a1', 'a2', 'a3', 'a4', 'am')
-- A missing field is false on Redis and a truthy non-string on the fake: never equal to the digest.
if h[1] ~= ARGV[1] then return 0 end

local now = tonumber(ARGV[2])
local ae = tonumber(h[7])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(h[6]) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[4])) then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[4])
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {2, h[2]}
end

local sa, ies = h[5], h[6]
if now - tonumber(sa) >= tonumber(ARGV[3]) then
  -- Instants exceed 2^31: the fake's Lua has 32-bit integers, so format with %.0f (exact below
  -- 2^53 on Redis and on the fake alike), never tostring.
  -- The idle timeout is read only when a renewal is due (at most once per resolution).
  local ie = now + tonumber(redis.call('HGET', KEYS[1], 'i'))
  if ie > ae then ie = ae end
  ies = string.format('%.0f', ie)
  sa = ARGV[2]
  redis.call('HSET', KEYS[1], 's', sa, 'm:ie', ies)
  local ttl = ie - now
  local pttl = string.format('%.0f', ttl)
  redis.call('PEXPIRE', KEYS[1], pttl)
  redis.call('PEXPIRE', KEYS[2], pttl)
  -- The index lives exactly as long as its longest-lived member.
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], pttl) end
end
local ip, d = h[8], h[9]
if type(ip) ~= 'string' then ip = '' end
if type(d) ~= 'string' then d = '' end
-- The user agent is stored in pieces of at most 63 bytes (see session-create).
local ua = ''
for k = 10, 13 do
  if type(h[k]) == 'string' then ua = ua .. h[k] end
end
local am = h[14]
if type(am) ~= 'string' then am = '' end
return {1, h[2], h[3], h[4], sa, ies, h[7], ip, ua, d, am}
