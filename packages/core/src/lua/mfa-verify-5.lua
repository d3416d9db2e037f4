-- Checks one second factor against a pending login, atomically: either spends the login (success)
-- or counts a failure against the login (its last attempt burns it) and against the user's failure
-- budget across logins and checks (the failure that spends it locks second-factor checks until the
-- oldest failure in the window leaves it). While the budget is spent nothing is compared and nothing
-- is spent or counted. A login issued before the user's revoke-before mark is deleted and refused.
-- The factor itself was evaluated in TypeScript where it needs a secret (TOTP: the matching step;
-- email: the OneTimeCodes verdict); what must not race is decided here:
--   totp           the matched step must be later than the user's last accepted step, which it
--                  becomes (a code, or any earlier step's code, is accepted at most once per user)
--   recovery-code  its keyed digest must be removed from the user's set (single use)
--
-- KEYS[1]  P:mp:{T}:<login id>  hash (see mfa-begin-2.lua)
-- KEYS[2]  P:mf:{T}             string: recent failure instants (comma list of epoch ms)
-- KEYS[3]  P:rb:{T}             the user's revoke-before mark (epoch ms), read only
-- KEYS[4]  P:mt:{T}             string: the last accepted TOTP step
-- KEYS[5]  P:mr:{T}             set: keyed digests of unused recovery codes
-- ARGV[1]  now, epoch ms
-- ARGV[2]  failure cutoff = now - budget window, epoch ms (failures after it count)
-- ARGV[3]  failure budget (failures per window that lock)
-- ARGV[4]  TTL of the failure record, ms (the budget window; every entry is at most now)
-- ARGV[5]  method: totp | recovery-code | email
-- ARGV[6]  proof: totp, the matched step ('' for none); recovery-code, the digest ('!' for
--          malformed input); email, '1' when OneTimeCodes accepted the code, else ''
-- ARGV[7]  failed attempts per login (the last one burns it)
-- ARGV[8]  TTL of the last-step record, ms
-- ARGV[9]  TTL of the recovery-code set, ms (refreshed by every successful login)
-- Returns {status, user id, authenticatedAt, first-factor amr, extra, failures}:
--   status 0 success (spent): extra = recovery codes left (recovery-code), else ''
--   status 1 unknown (never issued, spent or burned), 2 expired, 3 issued before the mark
--            (the other fields are empty)
--   status 4 the failure budget is spent: nothing compared; failures = the recent instants
--   status 5 wrong code (counted): extra = bit 1 this failure burned the login, bit 2 it spent
--            the budget; failures = the recent instants. A TOTP code of a step already accepted
--            (a replay, a double submission) is refused with extra 0 and NOT counted.

local h = redis.call('HMGET', KEYS[1], 'u', 'aa', 'e', 'm', 'f')
if type(h[1]) ~= 'string' or type(h[2]) ~= 'string' or type(h[3]) ~= 'string' then
  return {1, '', '', '', '', ''}
end
if tonumber(ARGV[1]) >= tonumber(h[3]) then
  redis.call('DEL', KEYS[1])
  return {2, '', '', '', '', ''}
end
local mark = redis.call('GET', KEYS[3])
if type(mark) == 'string' and tonumber(mark) > tonumber(h[2]) then
  redis.call('DEL', KEYS[1])
  return {3, '', '', '', '', ''}
end
local first = ''
if type(h[5]) == 'string' then first = h[5] end

local failures = {}
local recorded = redis.call('GET', KEYS[2])
if type(recorded) == 'string' then
  local cutoff = tonumber(ARGV[2])
  for at in string.gmatch(recorded, '[^,]+') do
    if tonumber(at) > cutoff then failures[#failures + 1] = at end
  end
end
local budget = tonumber(ARGV[3])
if #failures >= budget then
  return {4, h[1], h[2], first, '', table.concat(failures, ',')}
end

local method = ARGV[5]
local allowed = false
if type(h[4]) == 'string' then
  for m in string.gmatch(h[4], '[^ ]+') do
    if m == method then allowed = true end
  end
end

local ok = false
local replayed = false
local extra = ''
if allowed then
  if method == 'totp' then
    if ARGV[6] ~= '' then
      local last = redis.call('GET', KEYS[4])
      if type(last) ~= 'string' or tonumber(ARGV[6]) > tonumber(last) then
        redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[8])
        ok = true
      else
        replayed = true
      end
    end
  elseif method == 'recovery-code' then
    if redis.call('SREM', KEYS[5], ARGV[6]) == 1 then
      ok = true
      local left = redis.call('SCARD', KEYS[5])
      extra = left
    end
  elseif method == 'email' then
    ok = ARGV[6] == '1'
  end
end

if ok then
  redis.call('DEL', KEYS[1])
  if redis.call('SCARD', KEYS[5]) == 0 then
    redis.call('DEL', KEYS[5])
  else
    redis.call('PEXPIRE', KEYS[5], ARGV[9])
  end
  return {0, h[1], h[2], first, extra, ''}
end

-- A correct code of an already accepted step (a double submission, a replay) is refused but not
-- counted: it is no guess at the secret, and twenty parallel submissions of one right code must
-- not lock the owner out.
if replayed then return {5, h[1], h[2], first, 0, table.concat(failures, ',')} end

local flags = 0
local attempts = redis.call('HINCRBY', KEYS[1], 'a', 1)
if attempts >= tonumber(ARGV[7]) then
  redis.call('DEL', KEYS[1])
  flags = 1
end
failures[#failures + 1] = ARGV[1]
redis.call('SET', KEYS[2], table.concat(failures, ','), 'PX', ARGV[4])
if #failures >= budget then flags = flags + 2 end
return {5, h[1], h[2], first, flags, table.concat(failures, ',')}
