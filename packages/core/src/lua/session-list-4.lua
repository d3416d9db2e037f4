-- session-list: the user's live sessions, newest absolute deadline first, pruning dead ones (and
-- their refresh state) from the index as it goes.
--
-- KEYS[1]  P:s:{T}:   session base      KEYS[2]  P:rr:{T}:  retired-refresh base
-- KEYS[3]  P:ix:{T}   the user's index  KEYS[4]  P:rb:{T}   the user's revoke-before mark
--
-- ARGV[1]  now (epoch ms)    ARGV[2]  most sessions to return (bounds the reply)
--
-- Returns {sid, user id, createdAt, authenticatedAt, lastSeenAt, idle deadline, absolute deadline,
--          ip or '', user agent or '', data, amr or '', ...} eleven values per live session, data and
--          amr as in session-get.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local mark = redis.call('GET', KEYS[4])
local markAt = nil
if type(mark) == 'string' then markAt = tonumber(mark) end

local out = {}
local count = 0
local ids = redis.call('ZREVRANGE', KEYS[3], 0, -1)
for i = 1, #ids do
  local id = ids[i]
  local key = KEYS[1] .. id
  local h = redis.call('HMGET', key, 'm:ie', 'u', 'c', 'm:aa', 's', 'm:ae', 'ip', 'd', 'a1',
    'a2', 'a3', 'a4', 'am')
  if type(h[1]) ~= 'string' or now >= tonumber(h[1]) or now >= tonumber(h[6])
      or (markAt ~= nil and markAt > tonumber(h[4])) then
    redis.call('DEL', key, KEYS[2] .. id)
    redis.call('ZREM', KEYS[3], id)
  elseif count < limit then
    count = count + 1
    local ip, d = h[7], h[8]
    if type(ip) ~= 'string' then ip = '' end
    if type(d) ~= 'string' then d = '' end
    -- The user agent is stored in pieces of at most 63 bytes (see session-create).
    local ua = ''
    for k = 9, 12 do
      if type(h[k]) == 'string' then ua = ua .. h[k] end
    end
    out[#out + 1] = id
    out[#out + 1] = h[2]
    out[#out + 1] = h[3]
    out[#out + 1] = h[4]
    out[#out + 1] = h[5]
    out[#out + 1] = h[1]
    out[#out + 1] = h[6]
    out[#out + 1] = ip
    out[#out + 1] = ua
    out[#out + 1] = d
    if type(h[13]) == 'string' then out[#out + 1] = h[13] else out[#out + 1] = '' end
  end
end
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
return {unpack(out)}
