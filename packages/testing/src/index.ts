export {
  ALL_BACKENDS,
  type Backend,
  type BackendContext,
  type BackendKind,
  openBackend,
  testBackends,
} from './backend-context.js';
export { type ClusterControl, keySlot } from './cluster-control.js';
export { createFakeRedis, type FakeRedisOptions } from './fake-redis.js';
export {
  freePort,
  hasRedisServer,
  type RedisClusterHandle,
  type RedisClusterOptions,
  type RedisServerHandle,
  type RedisServerOptions,
  rawCommand,
  startRedisCluster,
  startRedisServer,
} from './redis-server.js';
export { countRoundTrips, type RoundTripCounter } from './round-trips.js';
export { seededRandom } from './seeded-random.js';
export { type RedisSentinelHandle, type RedisSentinelOptions, startRedisSentinel } from './sentinel.js';
export { realNow, TestClock, type TestClockOptions } from './test-clock.js';
