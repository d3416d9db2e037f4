-- Login limiter check: reserves one attempt for an account at an IP and for the IP, atomically.
-- Both sorted sets are sliding-window logs whose members are `<at>.<id>`, scored by `at` (epoch ms).
-- A reservation is one member in both sets; it counts as a failure until it is settled (a success
-- removes it) and leaves with the window like any failure. When a policy refuses, nothing is added:
-- refused attempts never reach the password check, so they neither count nor extend a block.
--
-- Cost: this runs before every login, so it sends no command the answer does not need. A log is
-- read first for its three oldest members (one ZRANGE). A missing log costs only that command, and
-- its oldest member after the reservation is the reservation itself. Fewer than three members read
-- means the whole log was read: its count needs no ZCARD. When the oldest member is still inside the
-- window nothing is stale (members are scored by `at`), so nothing is pruned. Otherwise the log is
-- pruned; ZREMRANGEBYSCORE removes exactly the first `removed` members in score order, so the new
-- oldest is the read member right after them (one more ZRANGE only when all three read were stale).
-- An emptied log gets the explicit DEL the fake Redis needs.
--
-- KEYS[1]  P:l:ai:{<ip>}:<hmac(account)>  zset  reservations and failures of the account at the IP
-- KEYS[2]  P:l:ip:{<ip>}                  zset  reservations and failures at the IP, any account
-- ARGV[1]  now, epoch ms
-- ARGV[2]  the reservation's member `<now>.<id>`
-- ARGV[3]  account+IP window start, epoch ms (now - window: members scored at or before it expired)
-- ARGV[4]  account+IP limit (failures per window)
-- ARGV[5]  account+IP key TTL, ms (the window plus a small slack)
-- ARGV[6]  IP window start, epoch ms
-- ARGV[7]  IP limit
-- ARGV[8]  IP key TTL, ms (the window plus a small slack)
-- ARGV[9]  back-off initial delay, ms (0 = no back-off)
-- ARGV[10] back-off maximum delay, ms
--
-- Returns { allowed, aiState, aiCount, aiRef, ipState, ipCount, ipRef }
--   allowed  1 = reserved; 0 = refused, nothing added
--   state    0 = open, 1 = limit reached, 2 = back-off (account+IP only)
--   count    members in the window, this reservation included when allowed
--   ref      a member whose `at` TypeScript reads: at the limit, the one whose expiry reopens the
--            policy; in back-off, the newest; otherwise the oldest ('' when the set is empty)

local function atOf(member)
  return tonumber(string.match(member, '^(%d+)'))
end

local function memberAt(key, index)
  local found = redis.call('ZRANGE', key, index, index)
  if type(found[1]) == 'string' then return found[1] end
  return ''
end

-- The live count and oldest live member of a log, after pruning what left the window.
local function load(key, windowStart)
  local head = redis.call('ZRANGE', key, 0, 2)
  if type(head[1]) ~= 'string' then return 0, '' end
  local read = 1
  if type(head[2]) == 'string' then read = 2 end
  if read == 2 and type(head[3]) == 'string' then read = 3 end
  local start = tonumber(windowStart)
  if atOf(head[1]) > start then
    if read < 3 then return read, head[1] end
    return redis.call('ZCARD', key), head[1]
  end
  local removed = redis.call('ZREMRANGEBYSCORE', key, '-inf', windowStart)
  local n
  if read < 3 then
    n = read - removed
  else
    n = redis.call('ZCARD', key)
  end
  if n <= 0 then
    redis.call('DEL', key)
    return 0, ''
  end
  if removed < read then return n, head[removed + 1] end
  return n, memberAt(key, 0)
end

local now = tonumber(ARGV[1])
local aiLimit = tonumber(ARGV[4])
local ipLimit = tonumber(ARGV[7])
local backoff = tonumber(ARGV[9])

local aiCount, aiOldest = load(KEYS[1], ARGV[3])
local ipCount, ipOldest = load(KEYS[2], ARGV[6])

local aiState, aiRef = 0, aiOldest
if aiCount >= aiLimit then
  aiState = 1
  if aiCount > aiLimit then aiRef = memberAt(KEYS[1], aiCount - aiLimit) end
elseif aiCount > 0 and backoff > 0 then
  local newest = memberAt(KEYS[1], -1)
  local delay = backoff * 2 ^ (aiCount - 1)
  local cap = tonumber(ARGV[10])
  if delay > cap then delay = cap end
  if newest ~= '' and now - atOf(newest) < delay then
    aiState = 2
    aiRef = newest
  end
end

local ipState, ipRef = 0, ipOldest
if ipCount >= ipLimit then
  ipState = 1
  if ipCount > ipLimit then ipRef = memberAt(KEYS[2], ipCount - ipLimit) end
end

if aiState ~= 0 or ipState ~= 0 then
  return { 0, aiState, aiCount, aiRef, ipState, ipCount, ipRef }
end

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
-- The oldest member is unchanged by the new one (no member is newer than now), unless the log was empty.
if aiCount == 0 then aiRef = ARGV[2] end
if ipCount == 0 then ipRef = ARGV[2] end
return { 1, 0, aiCount + 1, aiRef, 0, ipCount + 1, ipRef }
