-- Issues a one-time code for one subject and purpose, atomically: refuses while a failure budget is
-- spent (the client IP bucket's, or the subject's across all IPs), inside the resend cooldown (per
-- subject and purpose, across IPs), or over an issue cap (per IP bucket, or across IPs); otherwise
-- replaces the current code (fresh attempts) and records the issue instant in both records. Windows
-- are sliding logs of instants kept as comma lists of the ARGV strings TypeScript passed (never
-- numbers stringified in Lua).
--
-- KEYS[1]  P:c:{S}:<purpose>           hash: d = code digest, a = failed attempts, e = expiresAt (ms)
-- KEYS[2]  P:cb:{S}:<purpose>          hash: f = failure instants, i = issue instants (across IPs)
-- KEYS[3]  P:cb:{S}:<purpose>:<bucket> hash: f, i of one client IP bucket (one fixed bucket for
--                                      callers that pass no IP)
-- ARGV[1]  now, epoch ms
-- ARGV[2]  bucket failure cutoff = now - window, epoch ms (failures after it count)
-- ARGV[3]  bucket failure budget: failures per window that spend it
-- ARGV[4]  subject failure cutoff = now - window, epoch ms
-- ARGV[5]  subject failure budget (across IPs)
-- ARGV[6]  cooldown cutoff = now - resend cooldown, epoch ms (an issue after it blocks a resend)
-- ARGV[7]  bucket history cutoff = now - longest bucket issue window, epoch ms (older issues dropped)
-- ARGV[8]  subject history cutoff = now - max(longest subject issue window, cooldown), epoch ms
-- ARGV[9]  HMAC digest of the new code (base64url)
-- ARGV[10] expiresAt of the new code, epoch ms
-- ARGV[11] TTL of the code record, ms (lifetime plus the tail in which verify answers "expired")
-- ARGV[12] TTL of the subject record, ms (its longest window; every entry is at most `now`)
-- ARGV[13] TTL of the bucket record, ms (its longest window)
-- ARGV[14] nb, the number of bucket issue caps; then per cap k = 0..nb-1:
--          ARGV[15 + 2k] cutoff = now - window, epoch ms; ARGV[16 + 2k] max issues per window
-- ARGV[15 + 2nb] ns, the number of subject issue caps; then per cap k = 0..ns-1:
--          ARGV[16 + 2nb + 2k] cutoff; ARGV[17 + 2nb + 2k] max issues per window
-- Returns {mask, bucketFailures, bucketIssues, subjectFailures, subjectIssues}:
--   mask 0       issued
--   mask bit 1   inside the resend cooldown
--   mask bit 2   over an issue cap
--   mask 4       a failure budget is spent (nothing else checked)
--   the lists: recent instants (comma lists) from which TypeScript derives retryAfterMs

local function recent(list, cutoff)
  local kept = {}
  if type(list) == 'string' then
    for at in string.gmatch(list, '[^,]+') do
      if tonumber(at) > cutoff then kept[#kept + 1] = at end
    end
  end
  return kept
end

local function over(issues, first, count)
  for k = 0, count - 1 do
    local cutoff = tonumber(ARGV[first + 2 * k])
    local n = 0
    for _, at in ipairs(issues) do
      if tonumber(at) > cutoff then n = n + 1 end
    end
    if n >= tonumber(ARGV[first + 1 + 2 * k]) then return true end
  end
  return false
end

local subject = redis.call('HMGET', KEYS[2], 'f', 'i')
local bucket = redis.call('HMGET', KEYS[3], 'f', 'i')
local sFailures = recent(subject[1], tonumber(ARGV[4]))
local sIssues = recent(subject[2], tonumber(ARGV[8]))
local bFailures = recent(bucket[1], tonumber(ARGV[2]))
local bIssues = recent(bucket[2], tonumber(ARGV[7]))

local function reply(mask)
  return {mask, table.concat(bFailures, ','), table.concat(bIssues, ','),
    table.concat(sFailures, ','), table.concat(sIssues, ',')}
end

if #bFailures >= tonumber(ARGV[3]) or #sFailures >= tonumber(ARGV[5]) then
  return reply(4)
end

local mask = 0
local cooldownCutoff = tonumber(ARGV[6])
for _, at in ipairs(sIssues) do
  if tonumber(at) > cooldownCutoff then
    mask = 1
    break
  end
end
local nb = tonumber(ARGV[14])
if over(bIssues, 15, nb) or over(sIssues, 16 + 2 * nb, tonumber(ARGV[15 + 2 * nb])) then
  mask = mask + 2
end
if mask ~= 0 then return reply(mask) end

-- A new code replaces the previous one with fresh per-code attempts; the budgets carry over.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[9], 'e', ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[11])

local function record(key, failures, issues, ttl)
  issues[#issues + 1] = ARGV[1]
  redis.call('HSET', key, 'i', table.concat(issues, ','))
  if #failures > 0 then
    redis.call('HSET', key, 'f', table.concat(failures, ','))
  else
    redis.call('HDEL', key, 'f')
  end
  redis.call('PEXPIRE', key, ttl)
end
record(KEYS[2], sFailures, sIssues, ARGV[12])
record(KEYS[3], bFailures, bIssues, ARGV[13])
return {0, '', '', '', ''}
