-- Deletes the current one-time code of one subject and purpose (the failure budget stays).
--
-- KEYS[1]  P:c:{S}:<purpose>  hash: the code record
-- Returns 0 always (whether a code existed is not revealed).

redis.call('DEL', KEYS[1])
return 0
