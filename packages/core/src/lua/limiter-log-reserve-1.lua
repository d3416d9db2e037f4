-- One bounded sliding log (the format of limiter-check): reserves one unit when fewer than the limit
-- are in the window. Used for the per-account login policy (a reservation, settled like the pair's)
-- and for plain per-IP throttles (every hit counts). A refusal writes nothing. Instants are only
-- compared here; every computed instant comes from TypeScript.
--
-- KEYS[1]  the log (P:l2:a:{<hmac(account)>} or P:l2:h:{<ip>}:<action>)  string
-- ARGV[1]  now, epoch ms
-- ARGV[2]  window start, epoch ms (now - window: an entry whose `to` is at or before it left)
-- ARGV[3]  limit (units per window)
-- ARGV[4]  key TTL, ms (the window plus a small slack)
-- ARGV[5]  slot label of now (floor(now / slot), decimal)
--
-- Returns { allowed, count, ref }
--   allowed  1 = reserved; 0 = refused, nothing written
--   count    units in the window, this one included when allowed
--   ref      an instant (`to` string): when refused, the one whose expiry frees a unit; otherwise the
--            oldest ('' never: the reservation itself when the log was empty)

local MAX_ENTRIES = 16

-- The fast path reads only each entry's `to` and count; the log is parsed into arrays only to prune
-- (its oldest entry left the window), to refuse (the reopening instant) or to merge/coalesce.
local v = redis.call('GET', KEYS[1])
local count, entries, first, newest = 0, 0, '', ''
if type(v) == 'string' then
  for to, n in string.gmatch(v, '(%d+),(%d+),%d*,%d+;') do
    entries = entries + 1
    if entries == 1 then first = to end
    newest = to
    count = count + tonumber(n)
  end
else
  v = ''
end
local limit = tonumber(ARGV[3])
local stale = entries > 0 and tonumber(first) <= tonumber(ARGV[2])

if entries == 0 then
  redis.call('SET', KEYS[1], ARGV[1] .. ',1,,' .. ARGV[5] .. ';', 'PX', ARGV[4])
  return { 1, 1, ARGV[1] }
end
if not stale and count < limit and entries < MAX_ENTRIES and tonumber(ARGV[1]) > tonumber(newest) then
  redis.call('SET', KEYS[1], v .. ARGV[1] .. ',1,,' .. ARGV[5] .. ';', 'PX', ARGV[4])
  return { 1, count + 1, first }
end

local tos, ns, froms, labels = {}, {}, {}, {}
count = 0
local start = tonumber(ARGV[2])
local live = false
for to, n, from, label in string.gmatch(v, '(%d+),(%d+),(%d*),(%d+);') do
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

if count >= limit then
  local left = count
  for i = 1, #tos do
    left = left - ns[i]
    if left < limit then return { 0, count, tos[i] } end
  end
  return { 0, count, '' }
end

local oldest = tos[1] or ARGV[1]
local last = #tos
if last > 0 and tonumber(ARGV[1]) <= tonumber(tos[last]) then
  -- Same millisecond (or a clock a little behind another server's): counts with the newest entry.
  ns[last] = ns[last] + 1
else
  last = last + 1
  tos[last] = ARGV[1]
  ns[last] = 1
  froms[last] = ''
  labels[last] = ARGV[5]
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
redis.call('SET', KEYS[1], table.concat(parts), 'PX', ARGV[4])
return { 1, count + 1, oldest }
