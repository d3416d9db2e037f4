-- Checks a TOTP code outside a login (confirming a setup, disabling), atomically, under the same
-- per-user rules as mfa-verify: the matched step must be later than the user's last accepted step,
-- which it becomes; a failure counts against the user's second-factor failure budget; while the
-- budget is spent nothing is compared.
--
-- KEYS[1]  P:mf:{T}   string: recent failure instants (comma list of epoch ms)
-- KEYS[2]  P:mt:{T}   string: the last accepted TOTP step
-- ARGV[1]  now, epoch ms
-- ARGV[2]  failure cutoff = now - budget window, epoch ms
-- ARGV[3]  failure budget
-- ARGV[4]  TTL of the failure record, ms (the budget window)
-- ARGV[5]  the matched step ('' when the code matched no step of the window, or is malformed)
-- ARGV[6]  TTL of the last-step record, ms
-- Returns {status, failures}: 0 accepted; 1 refused (counted; failures = the recent instants,
--   including this one); 2 the budget is spent (nothing compared); 3 refused, not counted: the code
--   is right but its step was already accepted (a replay or a double submission).

local failures = {}
local recorded = redis.call('GET', KEYS[1])
if type(recorded) == 'string' then
  local cutoff = tonumber(ARGV[2])
  for at in string.gmatch(recorded, '[^,]+') do
    if tonumber(at) > cutoff then failures[#failures + 1] = at end
  end
end
if #failures >= tonumber(ARGV[3]) then return {2, table.concat(failures, ',')} end

if ARGV[5] ~= '' then
  local last = redis.call('GET', KEYS[2])
  if type(last) ~= 'string' or tonumber(ARGV[5]) > tonumber(last) then
    redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
    return {0, ''}
  end
  -- A correct code of an already accepted step: refused, not counted (no guess at the secret).
  return {3, table.concat(failures, ',')}
end
failures[#failures + 1] = ARGV[1]
redis.call('SET', KEYS[1], table.concat(failures, ','), 'PX', ARGV[4])
return {1, table.concat(failures, ',')}
