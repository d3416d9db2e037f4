-- refresh-rotate: replaces a session's current refresh token by its successor in one step, with reuse
-- detection. The successor's digest is derived by the caller (HMAC of the presented token), so a retry
-- inside the grace window gets the same successor back and there is never a second live one.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests (zset digest -> generation)
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  sid                        ARGV[2]  now (epoch ms)
-- ARGV[3]  presented token digest     ARGV[4]  successor token digest
-- ARGV[5]  grace window (ms)          ARGV[6]  most retired digests kept
-- ARGV[7]  request id (random, public): a replay of this very call is recognised by it
--
-- Returns 0 when the token is invalid: unknown session, dead session, or a digest never issued for it
--           (a forged token changes nothing);
--         {-1, user id} on reuse of a retired token: the session is deleted;
--         {1, ...} rotated (or this very call again: ioredis re-sends a command whose reply was lost
--           to a reconnect, and that must not look like reuse), {3, ...} the same successor again
--           inside the grace window, where ... is the session as in session-get (user id, ..., data, amr).
-- The user agent is stored in pieces of at most 63 bytes, 'a1'..'a4' (see session-create).
local h = redis.call('HMGET', KEYS[1], 'u', 'c', 'm:aa', 's', 'm:ie', 'm:ae', 'ip',
  'a1', 'd', 'i', 'rc', 'rp', 'rt', 'ri', 'a2', 'a3', 'a4', 'am')
if type(h[1]) ~= 'string' then return 0 end

local now = tonumber(ARGV[2])
local ae = tonumber(h[6])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(h[5]) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[3])) then
  return 0
end
local ip, ua, d = h[7], h[8], h[9]
if type(ip) ~= 'string' then ip = '' end
if type(ua) ~= 'string' then ua = '' end
local am = h[18]
if type(am) ~= 'string' then am = '' end
if type(d) ~= 'string' then d = '' end
for k = 15, 17 do
  if type(h[k]) == 'string' then ua = ua .. h[k] end
end

-- A missing r:* field is false on Redis and a truthy non-string on the fake: never equal to a digest.
local presented = ARGV[3]
if h[11] == presented then
  local gen = redis.call('HINCRBY', KEYS[1], 'rg', 1)
  redis.call('ZADD', KEYS[2], gen, presented)
  local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
  if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1) end
  -- %.0f, never tostring: instants exceed the fake's 32-bit integers (see session-get).
  local ie = now + tonumber(h[10])
  if ie > ae then ie = ae end
  local ies = string.format('%.0f', ie)
  redis.call('HSET', KEYS[1], 'rc', ARGV[4], 'rp', presented, 'rt', ARGV[2],
    'ri', ARGV[7], 's', ARGV[2], 'm:ie', ies)
  local ttl = ie - now
  local pttl = string.format('%.0f', ttl)
  redis.call('PEXPIRE', KEYS[1], pttl)
  redis.call('PEXPIRE', KEYS[2], pttl)
  -- The index lives exactly as long as its longest-lived member.
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], pttl) end
  return {1, h[1], h[2], h[3], ARGV[2], ies, h[6], ip, ua, d, am}
end

if h[12] == presented and h[11] == ARGV[4] and h[14] == ARGV[7] then
  return {1, h[1], h[2], h[3], h[4], h[5], h[6], ip, ua, d, am}
end

if h[12] == presented and h[11] == ARGV[4]
    and now - tonumber(h[13]) < tonumber(ARGV[5]) then
  return {3, h[1], h[2], h[3], h[4], h[5], h[6], ip, ua, d, am}
end

if h[12] == presented or type(redis.call('ZSCORE', KEYS[2], presented)) == 'string' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {-1, h[1]}
end
return 0
