-- session-update: merges a patch into a live session's data atomically (per field: set, or delete
-- when the JSON text is empty), enforcing the data size cap, and counts as activity (the idle
-- deadline slides as in session-get). A dead or unknown session is never written to.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  token digest    ARGV[2]  now (epoch ms)
-- ARGV[3]  lastSeen resolution (ms)    ARGV[4]  sid
-- ARGV[5]  max data size (bytes: names plus JSON texts)
-- ARGV[6..] patch: field name (without 'd:'), JSON text or '' to delete, ...
--
-- Returns 0 when there is no session for this digest; {2, user id} when it was dead (now deleted);
--         {-2} when the merged data would exceed the cap (nothing written);
--         {1, ...} as session-get, with the merged data.
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return 0 end
local m = {}
local d = {}
for i = 1, #h, 2 do
  local f = h[i]
  if string.byte(f, 1) == 100 and string.byte(f, 2) == 58 then
    d[string.sub(f, 3)] = h[i + 1]
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

local size = tonumber(m['m:ds'] or '0')
for i = 6, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  local old = d[name]
  if old then size = size - #name - #old end
  if value ~= '' then size = size + #name + #value end
  if value == '' then d[name] = nil else d[name] = value end
end
if size > tonumber(ARGV[5]) then return {-2} end

for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], 'd:' .. ARGV[i])
  else
    redis.call('HSET', KEYS[1], 'd:' .. ARGV[i], ARGV[i + 1])
  end
end
m['m:ds'] = string.format('%.0f', size)
redis.call('HSET', KEYS[1], 'm:ds', m['m:ds'])

if now - tonumber(m['m:sa']) >= tonumber(ARGV[3]) then
  -- %.0f, never tostring: instants exceed the fake's 32-bit integers (see session-get).
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

local out = {}
for name, value in pairs(d) do
  out[#out + 1] = name
  out[#out + 1] = value
end
return {1, m['m:uid'], m['m:ca'], m['m:aa'], m['m:sa'], m['m:ie'], m['m:ae'], m['m:ip'] or '',
  m['m:ua'] or '', table.concat(out, '\0')}
