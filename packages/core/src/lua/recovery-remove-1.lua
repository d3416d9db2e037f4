-- Removes all of the user's recovery codes (second factor disabled).
--
-- KEYS[1]  P:mr:{T}   set: keyed digests of unused recovery codes
-- Returns 1 when a set was deleted, else 0.

return redis.call('DEL', KEYS[1])
