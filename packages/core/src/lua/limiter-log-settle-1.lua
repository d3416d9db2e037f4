-- Settles a reservation in one sliding-window log (the per-account login policy): a success clears
-- the log (the account's failures across IPs), a release removes only the reservation.
--
-- KEYS[1]  P:l:a:{<hmac(account)>}  zset
-- ARGV[1]  's' = success, 'r' = release
-- ARGV[2]  the reservation's member
--
-- Returns { held }: 1 when the reservation was still in the log, else 0.

local held = redis.call('ZREM', KEYS[1], ARGV[2])
if ARGV[1] == 's' then
  redis.call('DEL', KEYS[1])
elseif redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
end
return { held }
