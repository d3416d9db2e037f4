import type { Cluster, Redis } from 'ioredis';

/** Any ioredis client latchkey runs on: a single node, a Cluster, or `@latchkey/testing`'s fake. */
export type RedisClient = Redis | Cluster;
