// What bench/src/stores.ts reports back to the runner.

export interface StoreOpResult {
  readonly op: string;
  readonly what: string;
  /** Operations per second with `concurrency` calls in flight on one client. */
  readonly opsPerSecond: number;
  readonly concurrency: number;
  /** Mean latency of one call alone, in µs. */
  readonly soloMicros: number;
  /** Round trips of one call, counted on the client. */
  readonly roundTrips: number;
  /** Redis commands of one call, script-inner included (INFO commandstats). */
  readonly commands: number;
  readonly target?: number;
}

export interface GrowthResult {
  readonly small: number;
  readonly large: number;
  readonly seedSeconds: number;
  readonly smallOpsPerSecond: number;
  readonly largeOpsPerSecond: number;
  readonly smallSoloMicros: number;
  readonly largeSoloMicros: number;
  /** redis-server main-thread CPU per get, µs: the cost of the lookup itself, steady under load. */
  readonly smallRedisMicros: number;
  readonly largeRedisMicros: number;
  /** Median over paired rounds of (large ÷ small) Redis CPU per lookup. */
  readonly costRatio: number;
  /** Median over paired rounds of (large ÷ small) get/s. */
  readonly opsRatio: number;
  readonly usedMemoryLargeMiB: number;
}

export interface MemoryRow {
  readonly what: string;
  readonly key: string;
  readonly bytes: number;
  /** OBJECT ENCODING (listpack vs hashtable decides most of the size). */
  readonly encoding: string;
}

export interface LifetimeRow {
  readonly what: string;
  readonly keysWhileAlive: number;
  readonly keysAfter: number;
  readonly waitedMs: number;
  readonly keysWithoutTtl: number;
}

export interface StoreResults {
  readonly ops: readonly StoreOpResult[];
  readonly growth: GrowthResult | null;
  /** LoginLimiter.check with 10k vs many attempt keys stored (absent in older results). */
  readonly limiterGrowth?: GrowthResult | null;
  readonly memory: readonly MemoryRow[];
  readonly lifetimes: readonly LifetimeRow[];
  readonly notes: readonly string[];
}
