export { createFakeRedis, type FakeRedisOptions } from './fake-redis.js';
export {
  freePort,
  hasRedisServer,
  type RedisClusterHandle,
  type RedisServerHandle,
  rawCommand,
  startRedisCluster,
  startRedisServer,
} from './redis-server.js';
export { countRoundTrips, type RoundTripCounter } from './round-trips.js';
export { realNow, TestClock, type TestClockOptions } from './test-clock.js';
