-- session-list: the user's live sessions, newest absolute deadline first, pruning dead ones (and
-- their refresh state) from the index as it goes.
--
-- KEYS[1]  P:s:{T}:   session base      KEYS[2]  P:rr:{T}:  retired-refresh base
-- KEYS[3]  P:ix:{T}   the user's index  KEYS[4]  P:rb:{T}   the user's revoke-before mark
--
-- ARGV[1]  now (epoch ms)    ARGV[2]  most sessions to return (bounds the reply)
--
-- Returns {sid, user id, createdAt, authenticatedAt, lastSeenAt, idle deadline, absolute deadline,
--          ip or '', user agent or '', data, ...} ten values per live session, data as in session-get.
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
  local h = redis.call('HGETALL', key)
  local m = {}
  local d = {}
  for j = 1, #h, 2 do
    local f = h[j]
    if string.byte(f, 1) == 100 and string.byte(f, 2) == 58 then
      d[#d + 1] = string.sub(f, 3)
      d[#d + 1] = h[j + 1]
    else
      m[f] = h[j + 1]
    end
  end
  if #h == 0 or now >= tonumber(m['m:ie']) or now >= tonumber(m['m:ae'])
      or (markAt ~= nil and markAt > tonumber(m['m:aa'])) then
    redis.call('DEL', key, KEYS[2] .. id)
    redis.call('ZREM', KEYS[3], id)
  elseif count < limit then
    count = count + 1
    out[#out + 1] = id
    out[#out + 1] = m['m:uid']
    out[#out + 1] = m['m:ca']
    out[#out + 1] = m['m:aa']
    out[#out + 1] = m['m:sa']
    out[#out + 1] = m['m:ie']
    out[#out + 1] = m['m:ae']
    out[#out + 1] = m['m:ip'] or ''
    out[#out + 1] = m['m:ua'] or ''
    out[#out + 1] = table.concat(d, '\0')
  end
end
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
return {unpack(out)}
