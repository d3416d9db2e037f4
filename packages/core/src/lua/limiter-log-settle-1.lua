-- Settles a reservation in one bounded sliding log (the per-account login policy): a success clears
-- the log (the account's failures across IPs), a release takes back only the reservation — one
-- attempt from the entry whose span holds its instant (none when that entry already left the window;
-- a reservation that cannot be found keeps counting, the safe side). The key keeps its TTL.
--
-- KEYS[1]  P:l2:a:{<hmac(account)>}  string (see limiter-check for the format)
-- ARGV[1]  's' = success, 'r' = release
-- ARGV[2]  when the reservation was made, epoch ms (the instant its check wrote)
--
-- Returns { held }: 1 when the reservation was still in the log, else 0.

if ARGV[1] == 's' then
  return { redis.call('DEL', KEYS[1]) }
end
local v = redis.call('GET', KEYS[1])
if type(v) ~= 'string' then return { 0 } end
local at = tonumber(ARGV[2])
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
if held == 0 then return { 0 } end
if #parts == 0 then
  redis.call('DEL', KEYS[1])
else
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('SET', KEYS[1], table.concat(parts), 'PX', ttl)
  else
    redis.call('DEL', KEYS[1])
  end
end
return { 1 }
