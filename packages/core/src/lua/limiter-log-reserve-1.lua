-- One sliding-window log: reserves one unit when fewer than the limit are in the window. Used for the
-- per-account login policy (a reservation, settled like the pair's) and for plain per-IP throttles
-- (every hit counts). Members are `<at>.<id>`, scored by `at` (epoch ms). A refusal adds nothing.
-- As in limiter-check, nothing is sent that the answer does not need: an empty log costs one ZCARD.
--
-- KEYS[1]  the log (P:l:a:{<hmac(account)>} or P:l:h:{<ip>}:<action>)  zset
-- ARGV[1]  now, epoch ms
-- ARGV[2]  the member `<now>.<id>`
-- ARGV[3]  window start, epoch ms (now - window: members scored at or before it expired)
-- ARGV[4]  limit (units per window)
-- ARGV[5]  key TTL, ms (the window plus a small slack)
--
-- Returns { allowed, count, ref }
--   allowed  1 = reserved; 0 = refused, nothing added
--   count    members in the window, this one included when allowed
--   ref      when refused, the member whose expiry frees a unit; otherwise the oldest ('' when empty)

local function memberAt(index)
  local found = redis.call('ZRANGE', KEYS[1], index, index)
  if type(found[1]) == 'string' then return found[1] end
  return ''
end

local count = redis.call('ZCARD', KEYS[1])
local oldest = ''
if count > 0 then
  count = count - redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
  if count == 0 then
    redis.call('DEL', KEYS[1])
  else
    oldest = memberAt(0)
  end
end
local limit = tonumber(ARGV[4])

if count >= limit then
  if count > limit then oldest = memberAt(count - limit) end
  return { 0, count, oldest }
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if count == 0 then oldest = ARGV[2] end
return { 1, count + 1, oldest }
