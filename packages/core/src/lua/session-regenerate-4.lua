-- session-regenerate: moves a live session to a new id and token digest (fixation protection). The
-- old token, the old id and everything bound to it (refresh state, access tokens naming the old sid)
-- stop working at once; data and metadata carry over; it counts as activity.
--
-- KEYS[1]  P:s:{T}:   session base      KEYS[2]  P:rr:{T}:  retired-refresh base
-- KEYS[3]  P:ix:{T}   the user's index  KEYS[4]  P:rb:{T}   the user's revoke-before mark
--
-- ARGV[1]  old sid         ARGV[2]  old token digest    ARGV[3]  now (epoch ms)
-- ARGV[4]  new sid         ARGV[5]  new token digest
--
-- Returns 0 when there is no session for this digest; {2, user id} when it was dead (now deleted);
--         {1, ...} as session-get, describing the session under its new id — also for a replay of
--         this very call (ioredis re-sends a command whose reply was lost to a reconnect), found by
--         the new id holding the new digest.
local old = KEYS[1] .. ARGV[1]
-- The user agent is stored in pieces of at most 63 bytes, 'a1'..'a4' (see session-create).
local h = redis.call('HMGET', old, 't', 'u', 'c', 'm:aa', 'm:ie', 'm:ae', 'ip', 'a1', 'd', 'i',
  'a2', 'a3', 'a4', 'am')
if h[1] ~= ARGV[2] then
  local r = redis.call('HMGET', KEYS[1] .. ARGV[4], 't', 'u', 'c', 'm:aa', 's', 'm:ie',
    'm:ae', 'ip', 'a1', 'd', 'a2', 'a3', 'a4', 'am')
  if r[1] ~= ARGV[5] then return 0 end
  local ip, ua, d = r[8], r[9], r[10]
  if type(ip) ~= 'string' then ip = '' end
  if type(ua) ~= 'string' then ua = '' end
  if type(d) ~= 'string' then d = '' end
  for k = 11, 13 do
    if type(r[k]) == 'string' then ua = ua .. r[k] end
  end
  local am = r[14]
  if type(am) ~= 'string' then am = '' end
  return {1, r[2], r[3], r[4], r[5], r[6], r[7], ip, ua, d, am}
end

local now = tonumber(ARGV[3])
local ae = tonumber(h[6])
local mark = redis.call('GET', KEYS[4])
redis.call('DEL', KEYS[2] .. ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if now >= tonumber(h[5]) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[4])) then
  redis.call('DEL', old)
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {2, h[2]}
end

local new = KEYS[1] .. ARGV[4]
redis.call('RENAME', old, new)
redis.call('HDEL', new, 'rc', 'rp', 'rt', 'ri', 'rg')
-- %.0f, never tostring: instants exceed the fake's 32-bit integers (see session-get).
local ie = now + tonumber(h[10])
if ie > ae then ie = ae end
local ies = string.format('%.0f', ie)
redis.call('HSET', new, 't', ARGV[5], 's', ARGV[3], 'm:ie', ies)
local pttl = string.format('%.0f', ie - now)
redis.call('PEXPIRE', new, pttl)
redis.call('ZADD', KEYS[3], h[6], ARGV[4])
-- The index lives exactly as long as its longest-lived member.
if redis.call('PTTL', KEYS[3]) < ie - now then redis.call('PEXPIRE', KEYS[3], pttl) end
local ip, ua, d = h[7], h[8], h[9]
if type(ip) ~= 'string' then ip = '' end
if type(ua) ~= 'string' then ua = '' end
if type(d) ~= 'string' then d = '' end
for k = 11, 13 do
  if type(h[k]) == 'string' then ua = ua .. h[k] end
end
local am = h[14]
if type(am) ~= 'string' then am = '' end
return {1, h[2], h[3], h[4], ARGV[3], ies, h[6], ip, ua, d, am}
