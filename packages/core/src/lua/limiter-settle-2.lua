-- Login limiter settle for the account+IP and IP pair (bounded sliding logs, see limiter-check). A
-- failure needs no call: the reservation already counts as one. A success clears the account's
-- failures at this IP and takes its own reservation back from the IP log, whose other failures stay
-- (a success never clears the per-IP count). A release (the attempt never reached the password check)
-- takes the reservation back from both logs. Taking back removes one attempt from the entry whose span
-- holds the reservation's instant (none when that entry already left the window: a reservation that
-- cannot be found keeps counting, the safe side). Keys keep their TTL.
--
-- KEYS[1]  P:l2:ai:{<ip>}:<hmac(account)>  string
-- KEYS[2]  P:l2:ip:{<ip>}                  string
-- ARGV[1]  's' = success, 'r' = release
-- ARGV[2]  when the reservation was made, epoch ms (the instant its check wrote)
--
-- Returns { held }: 1 when the reservation was still in the IP log, 0 when it had expired or been
-- cleared.

local function takeBack(key, at)
  local v = redis.call('GET', key)
  if type(v) ~= 'string' then return 0 end
  local held = 0
  local parts = {}
  for to, n, from, label in string.gmatch(v, '(%d+),(%d+),(%d*),(%d+);') do
    local first = from
    if first == '' then first = to end
    local count = tonumber(n)
    if held == 0 and tonumber(first) <= at and at <= tonumber(to) then
      held = 1
      count = count - 1
    end
    if count > 0 then parts[#parts + 1] = to .. ',' .. count .. ',' .. from .. ',' .. label .. ';' end
  end
  if held == 0 then return 0 end
  if #parts == 0 then
    redis.call('DEL', key)
  else
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then
      redis.call('SET', key, table.concat(parts), 'PX', ttl)
    else
      redis.call('DEL', key)
    end
  end
  return 1
end

local at = tonumber(ARGV[2])
if ARGV[1] == 's' then
  redis.call('DEL', KEYS[1])
else
  takeBack(KEYS[1], at)
end
return { takeBack(KEYS[2], at) }
