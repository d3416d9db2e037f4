-- One sliding-window log: reserves one unit when fewer than the limit are in the window. Used for the
-- per-account login policy (a reservation, settled like the pair's) and for plain per-IP throttles
-- (every hit counts). Members are `<at>.<id>`, scored by `at` (epoch ms). A refusal adds nothing.
-- As in limiter-check, nothing is sent that the answer does not need: one ZRANGE of the three oldest
-- members answers for a missing or short log; a ZCARD only for a longer one, a prune only when the
-- oldest member left the window.
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

local count, oldest = 0, ''
local head = redis.call('ZRANGE', KEYS[1], 0, 2)
if type(head[1]) == 'string' then
  local read = 1
  if type(head[2]) == 'string' then read = 2 end
  if read == 2 and type(head[3]) == 'string' then read = 3 end
  local start = tonumber(ARGV[3])
  local removed = 0
  if tonumber(string.match(head[1], '^(%d+)')) <= start then
    removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
  end
  if read < 3 then
    count = read - removed
  else
    count = redis.call('ZCARD', KEYS[1])
  end
  if count <= 0 then
    count = 0
    if removed > 0 then redis.call('DEL', KEYS[1]) end
  elseif removed < read then
    oldest = head[removed + 1]
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
