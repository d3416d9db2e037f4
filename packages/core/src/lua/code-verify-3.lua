-- Verifies a presented one-time code for one subject and purpose, atomically. Only keyed digests
-- are compared. A match consumes the code and clears the failures of the client's IP bucket and of
-- the subject. Every other outcome (wrong, malformed, expired, used or missing, exhausted) is a
-- failure: it counts against the code's own attempts (when a live code exists) and against two
-- failure budgets that survive resends — the client IP bucket's and the subject's across all IPs.
-- The failure that uses the last attempt burns the code (its digest is dropped; the record stays
-- until it expires so later attempts answer "exhausted"). While the bucket's budget is spent nothing
-- is compared for that bucket and nothing more is recorded, but the code stays for the other buckets
-- (a stranger's failures must not block the owner elsewhere); the failure that spends the subject's
-- budget deletes the code, and while it is spent nothing is compared for anyone.
--
-- KEYS[1]  P:c:{S}:<purpose>           hash: d = code digest, a = failed attempts, e = expiresAt (ms)
-- KEYS[2]  P:cb:{S}:<purpose>          hash: f = failure instants, i = issue instants (across IPs)
-- KEYS[3]  P:cb:{S}:<purpose>:<bucket> hash: f, i of one client IP bucket
-- ARGV[1]  now, epoch ms
-- ARGV[2]  bucket failure cutoff = now - window, epoch ms (failures after it count)
-- ARGV[3]  bucket failure budget
-- ARGV[4]  subject failure cutoff = now - window, epoch ms
-- ARGV[5]  subject failure budget (across IPs)
-- ARGV[6]  HMAC digest of the presented code, or a marker that matches no digest (malformed input)
-- ARGV[7]  attempts per code
-- ARGV[8]  TTL of the subject record, ms (its longest window; every entry is at most `now`)
-- ARGV[9]  TTL of the bucket record, ms
-- Returns {status, events, bucketFailures, subjectFailures}:
--   status 0 valid (consumed), 1 invalid, 2 expired, 3 exhausted, 4 no code, 5 a budget is spent
--   events bit 1: this attempt exhausted the code; bit 2: this attempt spent a budget
--   the lists: recent failure instants (comma lists), from which TypeScript derives retryAfterMs

local function recent(list, cutoff)
  local kept = {}
  if type(list) == 'string' then
    for at in string.gmatch(list, '[^,]+') do
      if tonumber(at) > cutoff then kept[#kept + 1] = at end
    end
  end
  return kept
end

local bBudget = tonumber(ARGV[3])
local sBudget = tonumber(ARGV[5])
local bFailures = recent(redis.call('HGET', KEYS[3], 'f'), tonumber(ARGV[2]))
local sFailures = recent(redis.call('HGET', KEYS[2], 'f'), tonumber(ARGV[4]))
if #sFailures >= sBudget then
  redis.call('DEL', KEYS[1])
  return {5, 0, table.concat(bFailures, ','), table.concat(sFailures, ',')}
end
if #bFailures >= bBudget then
  return {5, 0, table.concat(bFailures, ','), table.concat(sFailures, ',')}
end

local function clear(key)
  redis.call('HDEL', key, 'f')
  if redis.call('HLEN', key) == 0 then redis.call('DEL', key) end
end

local code = redis.call('HMGET', KEYS[1], 'd', 'e')
local digest, expiresAt = code[1], code[2]
local status, events = 1, 0
if type(expiresAt) ~= 'string' then
  status = 4
elseif type(digest) ~= 'string' then
  status = 3
elseif tonumber(ARGV[1]) >= tonumber(expiresAt) then
  redis.call('DEL', KEYS[1])
  status = 2
elseif digest == ARGV[6] then
  redis.call('DEL', KEYS[1])
  clear(KEYS[2])
  clear(KEYS[3])
  return {0, 0, '', ''}
else
  local attempts = redis.call('HINCRBY', KEYS[1], 'a', 1)
  if attempts >= tonumber(ARGV[7]) then
    redis.call('HDEL', KEYS[1], 'd')
    status = 3
    events = 1
  end
end

sFailures[#sFailures + 1] = ARGV[1]
bFailures[#bFailures + 1] = ARGV[1]
redis.call('HSET', KEYS[2], 'f', table.concat(sFailures, ','))
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('HSET', KEYS[3], 'f', table.concat(bFailures, ','))
redis.call('PEXPIRE', KEYS[3], ARGV[9])
if #sFailures >= sBudget then
  redis.call('DEL', KEYS[1])
  status = 5
  events = events + 2
elseif #bFailures >= bBudget then
  status = 5
  events = events + 2
end
return {status, events, table.concat(bFailures, ','), table.concat(sFailures, ',')}
