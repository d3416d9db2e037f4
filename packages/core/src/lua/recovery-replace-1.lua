-- Replaces the user's whole set of recovery codes in one step: the old codes stop working at once.
--
-- KEYS[1]  P:mr:{T}   set: keyed digests of unused recovery codes
-- ARGV[1]  TTL of the set, ms
-- ARGV[2…] the keyed digests of the new codes (at least one)
-- Returns the number of codes stored.

redis.call('DEL', KEYS[1])
for i = 2, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('SCARD', KEYS[1])
