-- Counts the user's unused recovery codes (read only).
--
-- KEYS[1]  P:mr:{T}   set: keyed digests of unused recovery codes
-- Returns the number of codes left (0 when none were ever issued, all were used, or they expired).

return redis.call('SCARD', KEYS[1])
