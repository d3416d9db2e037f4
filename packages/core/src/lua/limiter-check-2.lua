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
local ENTRY = '(%d+),(%d+),(%d*),(%d+);'

-- The live entries of a stored log as parallel arrays, and their attempt count (the slow path:
-- pruning, merging, a refusal's reopening instant).
local function load(v, windowStart)
  local tos, ns, froms, labels = {}, {}, {}, {}
  local count = 0
  local start = tonumber(windowStart)
  local live = false
  for to, n, from, label in string.gmatch(v, ENTRY) do
    if live or tonumber(to) > start then
      live = true
      local i = #tos + 1
      tos[i] = to
      ns[i] = tonumber(n)
      froms[i] = from
      labels[i] = label
      count = count + ns[i]
    end
  end
  return { tos = tos, ns = ns, froms = froms, labels = labels, count = count }
end

-- A log as a check reads it: the attempt count, the number of entries, the oldest and newest `to`
-- ('' when empty), and the parsed log (`load`) only when its oldest entry left the window, else nil.
-- The common case reads each entry's `to` and count and builds no table; a missing key is empty.
local function open(v, windowStart)
  if type(v) ~= 'string' then return 0, 0, '', '', nil end
  local count, entries, first, last = 0, 0, '', ''
  for to, n in string.gmatch(v, '(%d+),(%d+),%d*,%d+;') do
    entries = entries + 1
    if entries == 1 then first = to end
    last = to
    count = count + tonumber(n)
  end
  if entries == 0 or tonumber(first) > tonumber(windowStart) then
    return count, entries, first, last, nil
  end
  local log = load(v, windowStart)
  entries = #log.tos
  if entries == 0 then return 0, 0, '', '', log end
  return log.count, entries, log.tos[1], log.tos[entries], log
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

-- Adds one attempt at `now` to a log and writes it back with a fresh TTL. The common case — a later
-- millisecond, nothing pruned, room for an entry — appends to the stored string without parsing it.
local function reserve(key, v, entries, last, log, now, label, ttl, windowStart)
  if entries == 0 then
    redis.call('SET', key, now .. ',1,,' .. label .. ';', 'PX', ttl)
    return
  end
  if log == nil and entries < MAX_ENTRIES and tonumber(now) > tonumber(last) then
    redis.call('SET', key, v .. now .. ',1,,' .. label .. ';', 'PX', ttl)
    return
  end
  if log == nil then log = load(v, windowStart) end
  local tos, ns, froms, labels = log.tos, log.ns, log.froms, log.labels
  last = #tos
  if last > 0 and tonumber(now) <= tonumber(tos[last]) then
    -- Same millisecond (or a clock a little behind another server's): counts with the newest entry.
    ns[last] = ns[last] + 1
  else
    last = last + 1
    tos[last] = now
    ns[last] = 1
    froms[last] = ''
    labels[last] = label
  end
  if last > MAX_ENTRIES then
    -- Merge the oldest two neighbours of one slot (live entries span at most 16 slots, so two exist).
    local i = 1
    for j = 1, last - 1 do
      if labels[j] == labels[j + 1] then
        i = j
        break
      end
    end
    if froms[i] == '' then froms[i] = tos[i] end
    tos[i] = tos[i + 1]
    ns[i] = ns[i] + ns[i + 1]
    labels[i] = labels[i + 1]
    table.remove(tos, i + 1)
    table.remove(ns, i + 1)
    table.remove(froms, i + 1)
    table.remove(labels, i + 1)
  end
  local parts = {}
  for j = 1, #tos do
    parts[j] = tos[j] .. ',' .. ns[j] .. ',' .. froms[j] .. ',' .. labels[j] .. ';'
  end
  redis.call('SET', key, table.concat(parts), 'PX', ttl)
end

-- Both logs in one MGET (one command fewer than two GETs; they share the IP's hash tag).
local stored = redis.call('MGET', KEYS[1], KEYS[2])
local aiV, ipV = stored[1], stored[2]
local aiCount, aiEntries, aiFirst, aiLast, aiLog = open(aiV, ARGV[2])
local ipCount, ipEntries, ipFirst, ipLast, ipLog = open(ipV, ARGV[6])

-- An empty log is open: a limit is at least 1 and a back-off follows a failure.
local aiState, aiRef = 0, aiFirst
if aiCount > 0 then
  local limit = tonumber(ARGV[3])
  local backoffSteps = #ARGV - 9
  if aiCount >= limit then
    aiState = 1
    aiRef = reopenAt(aiLog or load(aiV, ARGV[2]), limit)
  elseif backoffSteps > 0 then
    local step = aiCount
    if step > backoffSteps then step = backoffSteps end
    if tonumber(aiLast) > tonumber(ARGV[9 + step]) then
      aiState = 2
      aiRef = aiLast
    end
  end
end

local ipState, ipRef = 0, ipFirst
if ipCount > 0 then
  local limit = tonumber(ARGV[7])
  if ipCount >= limit then
    ipState = 1
    ipRef = reopenAt(ipLog or load(ipV, ARGV[6]), limit)
  end
end

if aiState ~= 0 or ipState ~= 0 then
  return { 0, aiState, aiCount, aiRef, ipState, ipCount, ipRef }
end

reserve(KEYS[1], aiV, aiEntries, aiLast, aiLog, ARGV[1], ARGV[5], ARGV[4], ARGV[2])
reserve(KEYS[2], ipV, ipEntries, ipLast, ipLog, ARGV[1], ARGV[9], ARGV[8], ARGV[6])
if aiRef == '' then aiRef = ARGV[1] end
if ipRef == '' then ipRef = ARGV[1] end
return { 1, 0, aiCount + 1, aiRef, 0, ipCount + 1, ipRef }
