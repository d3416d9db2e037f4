-- session-revoke-all: deletes every session of a user (but one, when `except` is given) with its
-- refresh state, and optionally sets the revoke-before mark so that a login whose credential check
-- began before now can no longer create a session (and nothing authenticated before now stays alive).
-- When the mark is set and a session is kept, the kept session's authenticatedAt is raised to now:
-- the caller has just re-verified the user (a password change), and the mark must not kill it.
--
-- KEYS[1]  P:s:{T}:   session base      KEYS[2]  P:rr:{T}:  retired-refresh base
-- KEYS[3]  P:ix:{T}   the user's index  KEYS[4]  P:rb:{T}   the user's revoke-before mark
--
-- ARGV[1]  now (epoch ms)    ARGV[2]  sid to keep ('' = none)    ARGV[3]  '1' to set the mark
-- ARGV[4]  minimum mark TTL (ms: the longest session lifetime plus skew)
-- ARGV[5]  clock skew margin (ms), added to the longest remaining absolute deadline
-- ARGV[6]  the mark to set: now + 1 ms (epoch ms), so that an authentication in the same
--          millisecond as this call counts as before it (a session is alive while mark <= m:aa)
--
-- Returns {number of sessions deleted, 1 if the kept session is alive else 0}.
local now = tonumber(ARGV[1])
local keep = ARGV[2]
local ids = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
local count = 0
local latest = now
for i = 1, #ids, 2 do
  local id = ids[i]
  local ae = tonumber(ids[i + 1])
  if ae > latest then latest = ae end
  if id ~= keep then
    count = count + redis.call('DEL', KEYS[1] .. id)
    redis.call('DEL', KEYS[2] .. id)
    redis.call('ZREM', KEYS[3], id)
  end
end
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end

local kept = 0
if keep ~= '' then
  local h = redis.call('HMGET', KEYS[1] .. keep, 'm:ie', 'm:ae', 'm:aa')
  local mark = redis.call('GET', KEYS[4])
  if type(h[1]) == 'string' and now < tonumber(h[1]) and now < tonumber(h[2])
      and (type(mark) ~= 'string' or tonumber(mark) <= tonumber(h[3])) then
    kept = 1
  end
end

if ARGV[3] == '1' then
  local ttl = latest - now + tonumber(ARGV[5])
  if ttl < tonumber(ARGV[4]) then ttl = tonumber(ARGV[4]) end
  local pttl = redis.call('PTTL', KEYS[4])
  if pttl > ttl then ttl = pttl end
  -- A mark already later than now (another server's clock ahead) is kept, never moved back.
  local value = ARGV[6]
  local current = redis.call('GET', KEYS[4])
  if type(current) == 'string' and tonumber(current) > tonumber(value) then value = current end
  redis.call('SET', KEYS[4], value, 'PX', string.format('%.0f', ttl))
  if kept == 1 then
    redis.call('HSET', KEYS[1] .. keep, 'm:aa', value)
  end
end
return {count, kept}
