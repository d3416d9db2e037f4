-- Lists the passkey credentials of one user, oldest first (read-only; the list is capped at write).
--
-- KEYS[1]  P:pk:{T}:   credential base (a credential is this plus its id digest)
-- KEYS[2]  P:pkx:{T}   zset: credential-id digest -> createdAt
-- Returns {id, public key, counter, transports, createdAt, lastUsedAt or '', device type, backed up,
--   ...} eight values per credential.

local out = {}
local digests = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #digests do
  local h = redis.call('HMGET', KEYS[1] .. digests[i], 'id', 'k', 'n', 't', 'c', 'l', 'dt', 'b')
  if type(h[1]) == 'string' then
    for j = 1, 8 do
      local v = h[j]
      if type(v) ~= 'string' then v = '' end
      out[#out + 1] = v
    end
  end
end
return {unpack(out)}
