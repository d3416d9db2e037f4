-- refresh-issue: makes a digest the current refresh token of a live session. A token issued before
-- is retired (presenting it later counts as reuse), as after a rotation.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests (zset digest -> generation)
-- KEYS[3]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  now (epoch ms)    ARGV[2]  new token digest    ARGV[3]  most retired digests kept
--
-- Returns 0 when the session is unknown or dead (nothing written); 1 when issued.
local h = redis.call('HMGET', KEYS[1], 'm:ie', 'm:ae', 'm:aa', 'rc')
if type(h[1]) ~= 'string' then return 0 end
local now = tonumber(ARGV[1])
local mark = redis.call('GET', KEYS[3])
if now >= tonumber(h[1]) or now >= tonumber(h[2])
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[3])) then
  return 0
end
-- A replay of this very call (ioredis re-sends a command whose reply was lost): already current.
if h[4] == ARGV[2] then return 1 end
if type(h[4]) == 'string' then
  local gen = redis.call('HINCRBY', KEYS[1], 'rg', 1)
  redis.call('ZADD', KEYS[2], gen, h[4])
  local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
  if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1) end
  redis.call('PEXPIRE', KEYS[2], string.format('%.0f', redis.call('PTTL', KEYS[1])))
end
redis.call('HSET', KEYS[1], 'rc', ARGV[2])
redis.call('HDEL', KEYS[1], 'rp', 'rt', 'ri')
return 1
