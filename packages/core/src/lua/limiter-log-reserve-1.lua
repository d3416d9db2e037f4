-- One sliding-window log: reserves one unit when fewer than the limit are in the window. Used for the
-- per-account login policy (a reservation, settled like the pair's) and for plain per-IP throttles
-- (every hit counts). Members are `<at>.<id>`, scored by `at` (epoch ms). A refusal writes nothing.
--
-- KEYS[1]  the log (P:l:a:{<hmac(account)>} or P:l:h:{<ip>}:<action>)  zset
-- ARGV[1]  now, epoch ms
-- ARGV[2]  the member `<now>.<random id>`
-- ARGV[3]  window start, epoch ms (now - window: members scored at or before it expired)
-- ARGV[4]  limit (units per window)
-- ARGV[5]  key TTL, ms (the window plus a small slack)
--
-- Returns { allowed, count, ref }
--   allowed  1 = reserved; 0 = refused, nothing written
--   count    members in the window, this one included when allowed
--   ref      when refused, the member whose expiry frees a unit; otherwise the oldest ('' when empty)

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then redis.call('DEL', KEYS[1]) end
local limit = tonumber(ARGV[4])

local function memberAt(index)
  local found = redis.call('ZRANGE', KEYS[1], index, index)
  if type(found[1]) == 'string' then return found[1] end
  return ''
end

if count >= limit then
  return { 0, count, memberAt(count - limit) }
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return { 1, count + 1, memberAt(0) }
