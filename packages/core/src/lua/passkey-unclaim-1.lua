-- Drops a credential id from the credential-id index if it belongs to the given user.
--
-- KEYS[1]  P:pkc:{<digest(credential id)>}  hash: u = user id, k = public key
-- ARGV[1]  user id
-- Returns 1 dropped, 0 absent or another user's (nothing changed).

if redis.call('HGET', KEYS[1], 'u') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
