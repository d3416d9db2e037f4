-- session-get: loads a live session by its token digest and slides its idle deadline. The deadline,
-- lastSeenAt and the TTLs are written at most once per resolution, never past the absolute deadline.
-- A session found dead (idle or absolute deadline passed, or authenticated before the user's mark) is
-- deleted. A wrong digest changes nothing.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  token digest    ARGV[2]  now (epoch ms)
-- ARGV[3]  lastSeen resolution (ms)    ARGV[4]  sid
--
-- Returns 0 when there is no session for this digest;
--         {2, user id} when it was dead (and is now deleted);
--         {1, user id, createdAt, authenticatedAt, lastSeenAt, idle deadline, absolute deadline,
--            ip or '', user agent or '', data} where data is name NUL json NUL name NUL json ...
local h = redis.call('HGETALL', KEYS[1])
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
if m['m:tok'] ~= ARGV[1] then return 0 end

local now = tonumber(ARGV[2])
local ae = tonumber(m['m:ae'])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(m['m:ie']) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(m['m:aa'])) then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[4])
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {2, m['m:uid']}
end

if now - tonumber(m['m:sa']) >= tonumber(ARGV[3]) then
  -- Instants exceed 2^31: the fake's Lua has 32-bit integers, so format with %.0f (exact below
  -- 2^53 on Redis and on the fake alike), never tostring.
  local ie = now + tonumber(m['m:it'])
  if ie > ae then ie = ae end
  m['m:ie'] = string.format('%.0f', ie)
  m['m:sa'] = ARGV[2]
  redis.call('HSET', KEYS[1], 'm:sa', ARGV[2], 'm:ie', m['m:ie'])
  local ttl = ie - now
  local pttl = string.format('%.0f', ttl)
  redis.call('PEXPIRE', KEYS[1], pttl)
  redis.call('PEXPIRE', KEYS[2], pttl)
  -- The index lives exactly as long as its longest-lived member.
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], pttl) end
end
return {1, m['m:uid'], m['m:ca'], m['m:aa'], m['m:sa'], m['m:ie'], m['m:ae'], m['m:ip'] or '',
  m['m:ua'] or '', table.concat(d, '\0')}
