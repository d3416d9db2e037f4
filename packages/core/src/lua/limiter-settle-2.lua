-- Login limiter settle for the account+IP and IP pair. A failure needs no call: the reservation
-- already counts as one. A success clears the account's failures at this IP and releases its own
-- reservation from the IP log, whose other failures stay (a success never clears the per-IP count).
-- A release (the attempt never reached the password check) removes the reservation from both logs.
--
-- KEYS[1]  P:l:ai:{<ip>}:<hmac(account)>  zset
-- KEYS[2]  P:l:ip:{<ip>}                  zset
-- ARGV[1]  's' = success, 'r' = release
-- ARGV[2]  the reservation's member
--
-- Returns { held }: 1 when the reservation was still in the IP log, 0 when it had expired or been
-- cleared.

if ARGV[1] == 's' then
  redis.call('DEL', KEYS[1])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
  if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
end
local held = redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) end
return { held }
