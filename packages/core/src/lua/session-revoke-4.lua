-- session-revoke: deletes one session of a user by its public id (from a "where am I logged in"
-- list, or a refresh token's session), with its refresh state and its index entry.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  now (epoch ms)    ARGV[2]  sid
--
-- Returns 0 when there was no such session;
--         1 when a live session was deleted; 2 when a dead one was.
local h = redis.call('HMGET', KEYS[1], 'm:ie', 'm:ae', 'm:aa')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
if type(h[1]) ~= 'string' then return 0 end
local now = tonumber(ARGV[1])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(h[1]) or now >= tonumber(h[2])
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[3])) then
  return 2
end
return 1
