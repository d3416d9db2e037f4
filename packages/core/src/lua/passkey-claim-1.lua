-- Claims a credential id for one user in the credential-id index (what a passwordless login looks
-- up first). A credential id belongs to at most one user.
--
-- KEYS[1]  P:pkc:{<digest(credential id)>}  hash: u = user id, k = public key (base64url)
-- ARGV[1]  user id    ARGV[2]  public key (COSE, base64url)
-- Returns 0 claimed now, 1 already this user's (kept as it was), 2 another user's (nothing changed).
-- No TTL: it lives as long as the credential it indexes.

local owner = redis.call('HGET', KEYS[1], 'u')
if type(owner) == 'string' then
  if owner == ARGV[1] then return 1 end
  return 2
end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'k', ARGV[2])
return 0
