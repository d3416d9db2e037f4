-- refresh-rotate: replaces a session's current refresh token by its successor in one step, with reuse
-- detection. The successor's digest is derived by the caller (HMAC of the presented token), so a retry
-- inside the grace window gets the same successor back and there is never a second live one.
--
-- KEYS[1]  P:s:{T}:<sid>   the session
-- KEYS[2]  P:rr:{T}:<sid>  its retired refresh digests (zset digest -> generation)
-- KEYS[3]  P:ix:{T}        the user's index
-- KEYS[4]  P:rb:{T}        the user's revoke-before mark
--
-- ARGV[1]  sid                        ARGV[2]  now (epoch ms)
-- ARGV[3]  presented token digest     ARGV[4]  successor token digest
-- ARGV[5]  grace window (ms)          ARGV[6]  most retired digests kept
--
-- Returns 0 when the token is invalid: unknown session, dead session, or a digest never issued for it
--           (a forged token changes nothing);
--         {-1, user id} on reuse of a retired token: the session is deleted;
--         {1, ...} rotated, {3, ...} the same successor again inside the grace window, where ... is
--           the session as in session-get (user id, createdAt, ..., data).
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

local now = tonumber(ARGV[2])
local ae = tonumber(m['m:ae'])
local mark = redis.call('GET', KEYS[4])
if now >= tonumber(m['m:ie']) or now >= ae
    or (type(mark) == 'string' and tonumber(mark) > tonumber(m['m:aa'])) then
  return 0
end

local presented = ARGV[3]
if m['r:cur'] == presented then
  local gen = redis.call('HINCRBY', KEYS[1], 'r:gen', 1)
  redis.call('ZADD', KEYS[2], gen, presented)
  local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
  if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1) end
  -- %.0f, never tostring: instants exceed the fake's 32-bit integers (see session-get).
  local ie = now + tonumber(m['m:it'])
  if ie > ae then ie = ae end
  m['m:ie'] = string.format('%.0f', ie)
  redis.call('HSET', KEYS[1], 'r:cur', ARGV[4], 'r:prv', presented, 'r:rat', ARGV[2],
    'm:sa', ARGV[2], 'm:ie', m['m:ie'])
  local ttl = ie - now
  local pttl = string.format('%.0f', ttl)
  redis.call('PEXPIRE', KEYS[1], pttl)
  redis.call('PEXPIRE', KEYS[2], pttl)
  -- The index lives exactly as long as its longest-lived member.
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], pttl) end
  return {1, m['m:uid'], m['m:ca'], m['m:aa'], ARGV[2], m['m:ie'], m['m:ae'], m['m:ip'] or '',
    m['m:ua'] or '', table.concat(d, '\0')}
end

if m['r:prv'] == presented and m['r:cur'] == ARGV[4]
    and now - tonumber(m['r:rat']) < tonumber(ARGV[5]) then
  return {3, m['m:uid'], m['m:ca'], m['m:aa'], m['m:sa'], m['m:ie'], m['m:ae'], m['m:ip'] or '',
    m['m:ua'] or '', table.concat(d, '\0')}
end

if m['r:prv'] == presented or type(redis.call('ZSCORE', KEYS[2], presented)) == 'string' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  return {-1, m['m:uid']}
end
return 0
