-- Login limiter check: reserves one attempt for an account at an IP and for the IP, atomically.
-- Each key is a bounded sliding log, one string of at most 16 entries `<to>,<n>,<from>,<label>;`,
-- oldest first: n attempts made from `from` to `to` (epoch ms, the ARGV strings TypeScript wrote;
-- `from` is empty when it equals `to`), all inside one slot `label` of 1/15 of the window. An entry
-- counts until its `to` is one window old. Attempts in one millisecond share an entry. Only when a
-- 17th entry would be written are two neighbours of one slot merged (there always are two: live
-- entries span at most 16 slots), so the log is exact — the sliding log of every attempt — while a
-- key holds at most 16 distinct live milliseconds (always when the limit is at most 16); beyond, a
-- merged attempt counts at most one slot longer than its own, never shorter (never more than the
-- limit in any span of one window). A reservation counts as a failure until settled (a success or
-- release takes it back) and leaves with the window like any failure. When a policy refuses, nothing
-- is written: refused attempts never reach the password check, so they neither count nor extend a
-- block. Instants are only compared here; every computed instant comes from TypeScript.
--
-- KEYS[1]  P:l2:ai:{<ip>}:<hmac(account)>  string  attempts of the account at the IP
-- KEYS[2]  P:l2:ip:{<ip>}                  string  attempts at the IP, any account
-- ARGV[1]  now, epoch ms
-- ARGV[2]  account+IP window start, epoch ms (now - window: an entry whose `to` is at or before it left)
-- ARGV[3]  account+IP limit (failures per window)
-- ARGV[4]  account+IP key TTL, ms (the window plus a small slack)
-- ARGV[5]  account+IP slot label of now (floor(now / slot), decimal)
-- ARGV[6]  IP window start, epoch ms
-- ARGV[7]  IP limit
-- ARGV[8]  IP key TTL, ms
-- ARGV[9]  IP slot label of now
-- ARGV[10..] back-off (absent = none): ARGV[9 + n] = now - the wait after n failures, epoch ms, for
--          n = 1..m; more than m failures wait as long as m (the cap)
--
-- Returns { allowed, aiState, aiCount, aiRef, ipState, ipCount, ipRef }
--   allowed  1 = reserved; 0 = refused, nothing written
--   state    0 = open, 1 = limit reached, 2 = back-off (account+IP only)
--   count    attempts in the window, this reservation included when allowed
--   ref      an instant (`to` string) TypeScript reads: at the limit, the one whose expiry reopens the
--            policy; in back-off, the newest; otherwise the oldest ('' when the log is empty)

local MAX_ENTRIES = 16

-- The live entries of a log, as parallel arrays, and their attempt count.
local function load(key, windowStart)
  local log = { tos = {}, ns = {}, froms = {}, labels = {}, count = 0 }
  local v = redis.call('GET', key)
  if type(v) ~= 'string' then return log end
  local start = tonumber(windowStart)
  local live = false
  for to, n, from, label in string.gmatch(v, '(%d+),(%d+),(%d*),(%d+);') do
    if live or tonumber(to) > start then
      live = true
      local i = #log.tos + 1
      log.tos[i] = to
      log.ns[i] = tonumber(n)
      log.froms[i] = from
      log.labels[i] = label
      log.count = log.count + log.ns[i]
    end
  end
  return log
end

-- At the limit: the `to` of the entry whose expiry brings the count below the limit.
local function reopenAt(log, limit)
  local left = log.count
  for i = 1, #log.tos do
    left = left - log.ns[i]
    if left < limit then return log.tos[i] end
  end
  return ''
end

-- Adds one attempt at `now` and writes the log back with a fresh TTL.
local function reserve(key, log, now, label, ttl)
  local last = #log.tos
  if last > 0 and tonumber(now) <= tonumber(log.tos[last]) then
    -- Same millisecond (or a clock a little behind another server's): counts with the newest entry.
    log.ns[last] = log.ns[last] + 1
  else
    last = last + 1
    log.tos[last] = now
    log.ns[last] = 1
    log.froms[last] = ''
    log.labels[last] = label
  end
  if last > MAX_ENTRIES then
    local i = 1
    for j = 1, last - 1 do
      if log.labels[j] == log.labels[j + 1] then
        i = j
        break
      end
    end
    if log.froms[i] == '' then log.froms[i] = log.tos[i] end
    log.tos[i] = log.tos[i + 1]
    log.ns[i] = log.ns[i] + log.ns[i + 1]
    log.labels[i] = log.labels[i + 1]
    table.remove(log.tos, i + 1)
    table.remove(log.ns, i + 1)
    table.remove(log.froms, i + 1)
    table.remove(log.labels, i + 1)
  end
  local parts = {}
  for j = 1, #log.tos do
    parts[j] = log.tos[j] .. ',' .. log.ns[j] .. ',' .. log.froms[j] .. ',' .. log.labels[j] .. ';'
  end
  redis.call('SET', key, table.concat(parts), 'PX', ttl)
end

local aiLimit = tonumber(ARGV[3])
local ipLimit = tonumber(ARGV[7])
local backoffSteps = #ARGV - 9

local ai = load(KEYS[1], ARGV[2])
local ip = load(KEYS[2], ARGV[6])

local aiState, aiRef = 0, ai.tos[1] or ''
if ai.count >= aiLimit then
  aiState = 1
  aiRef = reopenAt(ai, aiLimit)
elseif ai.count > 0 and backoffSteps > 0 then
  local step = ai.count
  if step > backoffSteps then step = backoffSteps end
  local newest = ai.tos[#ai.tos]
  if tonumber(newest) > tonumber(ARGV[9 + step]) then
    aiState = 2
    aiRef = newest
  end
end

local ipState, ipRef = 0, ip.tos[1] or ''
if ip.count >= ipLimit then
  ipState = 1
  ipRef = reopenAt(ip, ipLimit)
end

if aiState ~= 0 or ipState ~= 0 then
  return { 0, aiState, ai.count, aiRef, ipState, ip.count, ipRef }
end

reserve(KEYS[1], ai, ARGV[1], ARGV[5], ARGV[4])
reserve(KEYS[2], ip, ARGV[1], ARGV[9], ARGV[8])
if aiRef == '' then aiRef = ARGV[1] end
if ipRef == '' then ipRef = ARGV[1] end
return { 1, 0, ai.count + 1, aiRef, 0, ip.count + 1, ipRef }
