-- refresh-revoke: ends the session a refresh token belongs to, when the token's digest was issued for
-- it (current or retired). A forged token changes nothing.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  sid    ARGV[2]  token digest    ARGV[3]  now (epoch ms)
--
-- Returns 0 when the digest was never issued for this session (or it is gone);
--         {1, user id} when a live session was deleted; {2, user id} when a dead one was.
local h = redis.call('HMGET', KEYS[1], 'rc', 'rp', 'u', 'm:ie', 'm:ae', 'm:aa')
if type(h[3]) ~= 'string' then return 0 end
if h[1] ~= ARGV[2] and h[2] ~= ARGV[2]
    and type(redis.call('ZSCORE', KEYS[2], ARGV[2])) ~= 'string' then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
local now = tonumber(ARGV[3])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(h[4]) or now >= tonumber(h[5])
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[6])) then
  return {2, h[3]}
end
return {1, h[3]}
