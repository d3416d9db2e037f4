-- session-regenerate: moves a live session to a new id and token digest (fixation protection). The
-- old token, the old id and everything bound to it (refresh state, access tokens naming the old sid)
-- stop working at once; data and metadata carry over; it counts as activity.
--
-- KEYS[1]  P:s:{T}:   session base      KEYS[2]  P:rr:{T}:  retired-refresh base
-- KEYS[3]  P:ix:{T}   the user's index  KEYS[4]  P:rb:{T}   the user's revoke-before mark
--
-- ARGV[1]  old sid         ARGV[2]  old token digest    ARGV[3]  now (epoch ms)
-- ARGV[4]  new sid         ARGV[5]  new token digest
--
-- Returns 0 when there is no session for this digest; {2, user id} when it was dead (now deleted);
--         {1, ...} as session-get, describing the session under its new id.
local old = KEYS[1] .. ARGV[1]
local h = redis.call('HGETALL', old)
if #h == 0 then return 0 end
local m = {}
local d = {}
for i = 1, #h, 2 do
  local f = h[i]
  if string.byte(f, 1) == 100 and string.byte(f, 2) == 58 then
    d[#d + 1] = string.sub(f, 3)
    d[#d + 1] = h[i + 1]
  else
    m[f] = h[i + 1]
  end
end
if m['m:tok'] ~= ARGV[2] then return 0 end

local now = tonumber(ARGV[3])
local ae = tonumber(m['m:ae'])
local mark = redis.call('GET', KEYS[4])
redis.call('DEL', KEYS[2] .. ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if now >= tonumber(m['m:ie']) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(m['m:aa'])) then
  redis.call('DEL', old)
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {2, m['m:uid']}
end

local new = KEYS[1] .. ARGV[4]
redis.call('RENAME', old, new)
redis.call('HDEL', new, 'r:cur', 'r:prv', 'r:rat', 'r:gen')
-- %.0f, never tostring: instants exceed the fake's 32-bit integers (see session-get).
local ie = now + tonumber(m['m:it'])
if ie > ae then ie = ae end
m['m:ie'] = string.format('%.0f', ie)
redis.call('HSET', new, 'm:tok', ARGV[5], 'm:sa', ARGV[3], 'm:ie', m['m:ie'])
local pttl = string.format('%.0f', ie - now)
redis.call('PEXPIRE', new, pttl)
redis.call('ZADD', KEYS[3], m['m:ae'], ARGV[4])
-- The index lives exactly as long as its longest-lived member.
if redis.call('PTTL', KEYS[3]) < ie - now then redis.call('PEXPIRE', KEYS[3], pttl) end
return {1, m['m:uid'], m['m:ca'], m['m:aa'], ARGV[3], m['m:ie'], m['m:ae'], m['m:ip'] or '',
  m['m:ua'] or '', table.concat(d, '\0')}
