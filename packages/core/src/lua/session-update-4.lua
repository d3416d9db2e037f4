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
-- ARGV[6..] patch: field name, JSON text or '' to delete, ...
--
-- Returns 0 when there is no session for this digest; {2, user id} when it was dead (now deleted);
--         {-2} when the merged data would exceed the cap (nothing written);
--         {1, ...} as session-get, with the merged data.
local h = redis.call('HMGET', KEYS[1], 't', 'u', 'c', 'm:aa', 's', 'm:ie', 'm:ae',
  'ip', 'd', 'i', 'a1', 'a2', 'a3', 'a4')
if h[1] ~= ARGV[1] then return 0 end

local now = tonumber(ARGV[2])
local ae = tonumber(h[7])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(h[6]) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(h[4])) then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[4])
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {2, h[2]}
end

-- The data field 'd' is name NUL json NUL name NUL json ...: JSON text never holds a raw NUL and names
-- may not, so splitting on NUL is exact. Fields keep their order; new ones are appended.
local d = h[9]
if type(d) ~= 'string' then d = '' end
local names, values, at = {}, {}, {}
local n = 0
local pos = 1
while pos <= #d do
  local a = string.find(d, '\0', pos, true)
  local b = string.find(d, '\0', a + 1, true)
  n = n + 1
  names[n] = string.sub(d, pos, a - 1)
  at[names[n]] = n
  if b == nil then
    values[n] = string.sub(d, a + 1)
    pos = #d + 1
  else
    values[n] = string.sub(d, a + 1, b - 1)
    pos = b + 1
  end
end
for i = 6, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  local k = at[name]
  if k ~= nil then
    values[k] = value
  elseif value ~= '' then
    n = n + 1
    names[n], values[n], at[name] = name, value, n
  end
end
local out = {}
local size = 0
for k = 1, n do
  if values[k] ~= '' then
    out[#out + 1] = names[k]
    out[#out + 1] = values[k]
    size = size + #names[k] + #values[k]
  end
end
if size > tonumber(ARGV[5]) then return {-2} end
d = table.concat(out, '\0')

local sa, ies = h[5], h[6]
if now - tonumber(sa) >= tonumber(ARGV[3]) then
  -- %.0f, never tostring: instants exceed the fake's 32-bit integers (see session-get).
  local ie = now + tonumber(h[10])
  if ie > ae then ie = ae end
  ies = string.format('%.0f', ie)
  sa = ARGV[2]
  redis.call('HSET', KEYS[1], 'd', d, 's', sa, 'm:ie', ies)
  local ttl = ie - now
  local pttl = string.format('%.0f', ttl)
  redis.call('PEXPIRE', KEYS[1], pttl)
  redis.call('PEXPIRE', KEYS[2], pttl)
  -- The index lives exactly as long as its longest-lived member.
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], pttl) end
else
  redis.call('HSET', KEYS[1], 'd', d)
end
local ip = h[8]
if type(ip) ~= 'string' then ip = '' end
-- The user agent is stored in pieces of at most 63 bytes (see session-create).
local ua = ''
for k = 11, 14 do
  if type(h[k]) == 'string' then ua = ua .. h[k] end
end
return {1, h[2], h[3], h[4], sa, ies, h[7], ip, ua, d}
