-- Records a verified passkey credential of one user (the user's own record and list; the
-- credential-id index lives in another slot and is written by passkey-claim-1).
--
-- KEYS[1]  P:pk:{T}:<digest(credential id)>  hash: the credential (fields below)
-- KEYS[2]  P:pkx:{T}                         zset: credential-id digest -> createdAt
-- ARGV[1]  credential-id digest (the member of KEYS[2]; equals the suffix of KEYS[1])
-- ARGV[2]  credential id (base64url)     ARGV[3]  public key (COSE, base64url)
-- ARGV[4]  signature counter (decimal)   ARGV[5]  transports (comma list, may be empty)
-- ARGV[6]  createdAt, epoch ms           ARGV[7]  device type: 's' single-device, 'm' multi-device
-- ARGV[8]  backed up: '1' or '0'         ARGV[9]  most credentials per user
-- Returns 0 recorded, 1 already recorded (nothing changed), 2 the user has the most allowed.
-- No TTL: a credential lives until removed, like the account it belongs to.

if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[9]) then return 2 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'k', ARGV[3], 'n', ARGV[4], 't', ARGV[5], 'c', ARGV[6],
  'dt', ARGV[7], 'b', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
return 0
