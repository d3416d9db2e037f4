-- Issues a one-time code for one subject and purpose, atomically: refuses while the failure budget
-- is spent, inside the resend cooldown, or over an issue cap; otherwise replaces the current code
-- (fresh attempts) and records the issue instant. Windows are sliding logs of instants kept as
-- comma lists of the ARGV strings TypeScript passed (never numbers stringified in Lua).
--
-- KEYS[1]  P:c:{S}:<purpose>   hash: d = code digest, a = failed attempts, e = expiresAt (epoch ms)
-- KEYS[2]  P:cb:{S}:<purpose>  hash: f = recent failure instants, i = recent issue instants
-- ARGV[1]  now, epoch ms
-- ARGV[2]  failure cutoff = now - failure window, epoch ms (failures after it count)
-- ARGV[3]  failure budget: failures per window that spend it
-- ARGV[4]  cooldown cutoff = now - resend cooldown, epoch ms (an issue after it blocks a resend)
-- ARGV[5]  history cutoff = now - max(longest issue window, cooldown), epoch ms (older issues dropped)
-- ARGV[6]  HMAC digest of the new code (base64url)
-- ARGV[7]  expiresAt of the new code, epoch ms
-- ARGV[8]  TTL of the code record, ms (lifetime plus the tail in which verify answers "expired")
-- ARGV[9]  TTL of the budget record, ms (the longest window; every entry is at most `now`)
-- ARGV[10] n, the number of issue caps; then per cap k = 0..n-1:
--          ARGV[11 + 2k] cutoff = now - window, epoch ms; ARGV[12 + 2k] max issues per window
-- Returns {mask, failures, issues}:
--   mask 0       issued
--   mask bit 1   inside the resend cooldown
--   mask bit 2   over an issue cap
--   mask 4       the failure budget is spent (nothing else checked)
--   failures, issues: the recent instants (comma lists) from which TypeScript derives retryAfterMs

local function recent(list, cutoff)
  local kept = {}
  if type(list) == 'string' then
    for at in string.gmatch(list, '[^,]+') do
      if tonumber(at) > cutoff then kept[#kept + 1] = at end
    end
  end
  return kept
end

local budget = redis.call('HMGET', KEYS[2], 'f', 'i')
local failures = recent(budget[1], tonumber(ARGV[2]))
local issues = recent(budget[2], tonumber(ARGV[5]))

if #failures >= tonumber(ARGV[3]) then
  return {4, table.concat(failures, ','), table.concat(issues, ',')}
end

local mask = 0
local cooldownCutoff = tonumber(ARGV[4])
for _, at in ipairs(issues) do
  if tonumber(at) > cooldownCutoff then
    mask = 1
    break
  end
end
local capped = false
for k = 0, tonumber(ARGV[10]) - 1 do
  local cutoff = tonumber(ARGV[11 + 2 * k])
  local count = 0
  for _, at in ipairs(issues) do
    if tonumber(at) > cutoff then count = count + 1 end
  end
  if count >= tonumber(ARGV[12 + 2 * k]) then capped = true end
end
if capped then mask = mask + 2 end
if mask ~= 0 then
  return {mask, table.concat(failures, ','), table.concat(issues, ',')}
end

-- A new code replaces the previous one with fresh per-code attempts; the budget carries over.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[6], 'e', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])

issues[#issues + 1] = ARGV[1]
redis.call('HSET', KEYS[2], 'i', table.concat(issues, ','))
if #failures > 0 then
  redis.call('HSET', KEYS[2], 'f', table.concat(failures, ','))
else
  redis.call('HDEL', KEYS[2], 'f')
end
redis.call('PEXPIRE', KEYS[2], ARGV[9])
return {0, '', ''}
