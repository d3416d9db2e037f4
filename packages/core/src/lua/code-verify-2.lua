-- Verifies a presented one-time code for one subject and purpose, atomically. Only keyed digests
-- are compared. A match consumes the code and clears the failure record. Every other outcome (wrong,
-- malformed, expired, used or missing, exhausted) is a failure: it counts against the code's own
-- attempts (when a live code exists) and against the failure budget that survives resends. The
-- failure that uses the last attempt burns the code (its digest is dropped; the record stays until
-- it expires so later attempts answer "exhausted"); the failure that spends the budget deletes the
-- code. While the budget is spent nothing is compared and nothing more is recorded.
--
-- KEYS[1]  P:c:{S}:<purpose>   hash: d = code digest, a = failed attempts, e = expiresAt (epoch ms)
-- KEYS[2]  P:cb:{S}:<purpose>  hash: f = recent failure instants, i = recent issue instants
-- ARGV[1]  now, epoch ms
-- ARGV[2]  failure cutoff = now - failure window, epoch ms (failures after it count)
-- ARGV[3]  failure budget: failures per window that spend it
-- ARGV[4]  HMAC digest of the presented code, or a marker that matches no digest (malformed input)
-- ARGV[5]  attempts per code
-- ARGV[6]  TTL of the budget record, ms (the longest window; every entry is at most `now`)
-- Returns {status, events, failures}:
--   status 0 valid (consumed), 1 invalid, 2 expired, 3 exhausted, 4 no code, 5 budget spent
--   events bit 1: this attempt exhausted the code; bit 2: this attempt spent the budget
--   failures: the recent failure instants (comma list), from which TypeScript derives retryAfterMs

local function recent(list, cutoff)
  local kept = {}
  if type(list) == 'string' then
    for at in string.gmatch(list, '[^,]+') do
      if tonumber(at) > cutoff then kept[#kept + 1] = at end
    end
  end
  return kept
end

local budget = tonumber(ARGV[3])
local failures = recent(redis.call('HGET', KEYS[2], 'f'), tonumber(ARGV[2]))
if #failures >= budget then
  redis.call('DEL', KEYS[1])
  return {5, 0, table.concat(failures, ',')}
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
elseif digest == ARGV[4] then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], 'f')
  if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) end
  return {0, 0, ''}
else
  local attempts = redis.call('HINCRBY', KEYS[1], 'a', 1)
  if attempts >= tonumber(ARGV[5]) then
    redis.call('HDEL', KEYS[1], 'd')
    status = 3
    events = 1
  end
end

failures[#failures + 1] = ARGV[1]
redis.call('HSET', KEYS[2], 'f', table.concat(failures, ','))
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if #failures >= budget then
  redis.call('DEL', KEYS[1])
  status = 5
  events = events + 2
end
return {status, events, table.concat(failures, ',')}
