-- session-destroy: deletes the session a token names (logout), with its refresh state and its index
-- entry. A wrong digest changes nothing.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  token digest    ARGV[2]  now (epoch ms)    ARGV[3]  sid
--
-- Returns 0 when there is no session for this digest;
--         {1, user id} when a live session was deleted; {2, user id} when a dead one was.
local h = redis.call('HMGET', KEYS[1], 't', 'u', 'm:ie', 'm:ae', 'm:aa')
if type(h[1]) ~= 'string' or h[1] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[3])
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
local now = tonumber(ARGV[2])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(h[3]) or now >= tonumber(h[4])
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[5])) then
  return {2, h[2]}
end
return {1, h[2]}
