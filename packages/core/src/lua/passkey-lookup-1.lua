-- Reads the credential-id index: whose credential it is and its public key (read-only).
--
-- KEYS[1]  P:pkc:{<digest(credential id)>}  hash: u = user id, k = public key (base64url)
-- Returns {user id, public key}, or {} when the credential id is unknown.

local h = redis.call('HMGET', KEYS[1], 'u', 'k')
if type(h[1]) ~= 'string' or type(h[2]) ~= 'string' then return {} end
return {h[1], h[2]}
