-- Consumes one recovery code outside a login (e.g. to disable TOTP), atomically: its keyed digest is
-- removed from the user's set (single use: of concurrent callers with one code, one succeeds). A
-- miss counts against the user's second-factor failure budget; while it is spent nothing is compared.
--
-- KEYS[1]  P:mf:{T}   string: recent failure instants (comma list of epoch ms)
-- KEYS[2]  P:mr:{T}   set: keyed digests of unused recovery codes
-- ARGV[1]  now, epoch ms
-- ARGV[2]  failure cutoff = now - budget window, epoch ms
-- ARGV[3]  failure budget
-- ARGV[4]  TTL of the failure record, ms (the budget window)
-- ARGV[5]  keyed digest of the presented code ('!' for malformed input: no digest equals it)
-- ARGV[6]  TTL of the set, ms (refreshed by a successful use)
-- Returns {status, remaining, failures}: 0 consumed (remaining = codes left); 1 refused (counted;
--   failures = the recent instants, including this one); 2 the budget is spent (nothing compared).

local failures = {}
local recorded = redis.call('GET', KEYS[1])
if type(recorded) == 'string' then
  local cutoff = tonumber(ARGV[2])
  for at in string.gmatch(recorded, '[^,]+') do
    if tonumber(at) > cutoff then failures[#failures + 1] = at end
  end
end
if #failures >= tonumber(ARGV[3]) then return {2, 0, table.concat(failures, ',')} end

if redis.call('SREM', KEYS[2], ARGV[5]) == 1 then
  local left = redis.call('SCARD', KEYS[2])
  if left == 0 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  end
  return {0, left, ''}
end
failures[#failures + 1] = ARGV[1]
redis.call('SET', KEYS[1], table.concat(failures, ','), 'PX', ARGV[4])
return {1, 0, table.concat(failures, ',')}
