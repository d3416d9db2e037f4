-- session-create: creates one session of a user, atomically with the stale-authentication check,
-- the pruning of the user's index and the per-user cap (oldest sessions by createdAt are evicted).
--
-- KEYS[1]  P:s:{T}:   session base; a session key is KEYS[1] .. sid
-- KEYS[2]  P:rr:{T}:  retired-refresh base; a set key is KEYS[2] .. sid
-- KEYS[3]  P:ix:{T}   the user's index, zset sid -> absolute deadline (ms)
-- KEYS[4]  P:rb:{T}   the user's revoke-before mark (ms)
--
-- ARGV[1]  sid                      ARGV[2]  user id
-- ARGV[3]  token digest             ARGV[4]  now (epoch ms)
-- ARGV[5]  authenticatedAt (ms)     ARGV[6]  idle timeout (ms)
-- ARGV[7]  idle deadline (ms)       ARGV[8]  absolute deadline (ms)
-- ARGV[9]  session key TTL (ms)     ARGV[10] max sessions per user
-- ARGV[11] ip ('' = none)
-- ARGV[12] data: name NUL json NUL name NUL json ... ('' = none), stored as the one field 'd'
-- ARGV[13..16] the user agent in up to four pieces of at most 63 bytes, each cut at a character
--          boundary by the caller ('' = none), stored as 'a1'..'a4': one longer value would turn the
--          hash from a compact listpack into a hashtable (hash-max-listpack-value, 64 by default)
-- ARGV[17] amr: RFC 8176 method values separated by spaces, at most 63 bytes ('' = none),
--          stored as 'am'
--
-- Returns {-1, mark} when the mark (as stored) is later than authenticatedAt (nothing written);
--         {1, evicted sid, ...} on success; {1} for a replay of this very call (ioredis re-sends a
--         command whose reply was lost to a reconnect: the session exists, nothing more is evicted).
if redis.call('HGET', KEYS[1] .. ARGV[1], 't') == ARGV[3] then return {1} end
local mark = redis.call('GET', KEYS[4])
local markAt = nil
if type(mark) == 'string' then
  markAt = tonumber(mark)
  if markAt > tonumber(ARGV[5]) then return {-1, mark} end
end

local now = tonumber(ARGV[4])
local live = {}
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
for i = 1, #ids do
  local id = ids[i]
  local h = redis.call('HMGET', KEYS[1] .. id, 'm:ie', 'm:ae', 'm:aa', 'c')
  if type(h[1]) == 'string' and now < tonumber(h[1]) and now < tonumber(h[2])
      and (markAt == nil or markAt <= tonumber(h[3])) then
    live[#live + 1] = {id, tonumber(h[4])}
  else
    redis.call('DEL', KEYS[1] .. id, KEYS[2] .. id)
    redis.call('ZREM', KEYS[3], id)
  end
end

local evicted = {}
local excess = #live + 1 - tonumber(ARGV[10])
if excess > 0 then
  table.sort(live, function(a, b) return a[2] < b[2] end)
  for i = 1, excess do
    local id = live[i][1]
    redis.call('DEL', KEYS[1] .. id, KEYS[2] .. id)
    redis.call('ZREM', KEYS[3], id)
    evicted[#evicted + 1] = id
  end
end

local key = KEYS[1] .. ARGV[1]
redis.call('HSET', key, 'u', ARGV[2], 't', ARGV[3], 'c', ARGV[4], 'm:aa', ARGV[5],
  's', ARGV[4], 'i', ARGV[6], 'm:ie', ARGV[7], 'm:ae', ARGV[8], 'd', ARGV[12])
if ARGV[11] ~= '' then redis.call('HSET', key, 'ip', ARGV[11]) end
local pieces = {'a1', 'a2', 'a3', 'a4'}
for k = 1, 4 do
  if ARGV[12 + k] ~= '' then redis.call('HSET', key, pieces[k], ARGV[12 + k]) end
end
if ARGV[17] ~= '' then redis.call('HSET', key, 'am', ARGV[17]) end
redis.call('PEXPIRE', key, ARGV[9])

redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
-- The index lives exactly as long as its longest-lived member.
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[9]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[9])
end
return {1, unpack(evicted)}
