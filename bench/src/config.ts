// Run settings: environment variables and flags, resolved once.
//
//   pnpm bench                     full run (≈ 8 min on 2 cores); writes docs/benchmarks.{md,svg}
//   pnpm bench --quick             smoke run (≈ 2 min); writes bench/.results/quick/ instead of docs/
//   BENCH_DURATION_S=5             seconds of load per scenario per round
//   BENCH_WARMUP_S=3               seconds of warm-up per scenario before round 1
//   BENCH_ROUNDS=5                 interleaved rounds (at least 3)
//   BENCH_CONNECTIONS=32           autocannon connections (the same for every scenario)
//   BENCH_GROWTH_KEYS=1000000      sessions stored for the growth test (against 10,000)
//   BENCH_ONLY=regex               run only the HTTP scenarios whose id matches (baseline always runs)
//   BENCH_SKIP_STORES=1            skip the store micro-benchmarks, growth, memory and lifetimes
//   BENCH_CPU_PROF=regex           V8 CPU profiles of the matching scenario servers, one per measured run
//                                  (bench/.results/prof/<scenario>-round<n>.cpuprofile)
//   BENCH_OUT=dir                  write the report there instead
//   BENCH_NOTE=text                a line about the machine's load, printed in the report
//   BENCH_MAX_FOREIGN_CORES=0.2    foreign load (CPU of processes other than the bench's) a measured
//                                  run may see; a run above it is measured again, and a docs run that
//                                  still has one is refused (written to bench/.results/refused/)
//   BENCH_LOAD_RETRIES=2           how often a run above that limit is measured again
import { join } from 'node:path';

export interface BenchConfig {
  readonly quick: boolean;
  readonly durationS: number;
  readonly warmupS: number;
  readonly rounds: number;
  readonly connections: number;
  readonly growthKeys: number;
  readonly storeOpMs: number;
  readonly only: RegExp | null;
  readonly skipStores: boolean;
  readonly cpuProf: RegExp | null;
  readonly outDir: string;
  readonly docs: boolean;
  readonly note: string;
  /** Foreign load (cores) a measured run may see before it is measured again / the run is refused. */
  readonly maxForeignCores: number;
  /** How often a run above `maxForeignCores` is measured again. */
  readonly loadRetries: number;
  /** Hard limit of the whole run: it stops by itself. */
  readonly deadlineMs: number;
  readonly root: string;
}

function num(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`${name} must be a number between ${min} and ${max}, got ${raw}`);
  }
  return value;
}

function regex(name: string): RegExp | null {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? null : new RegExp(raw);
}

export function loadConfig(argv: readonly string[]): BenchConfig {
  const unknown = argv.filter((a) => a !== '--quick' && a !== '--');
  if (unknown.length > 0) throw new Error(`unknown argument(s): ${unknown.join(' ')} (only --quick)`);
  const quick = argv.includes('--quick');
  const root = join(import.meta.dirname, '..', '..');
  const out = process.env['BENCH_OUT'];
  const outDir =
    out !== undefined && out !== ''
      ? out
      : quick
        ? join(root, 'bench', '.results', 'quick')
        : join(root, 'docs');
  return Object.freeze({
    quick,
    durationS: num('BENCH_DURATION_S', quick ? 1.5 : 5, 0.5, 120),
    warmupS: num('BENCH_WARMUP_S', quick ? 0.5 : 3, 0, 60),
    rounds: Math.round(num('BENCH_ROUNDS', quick ? 3 : 5, 3, 20)),
    connections: Math.round(num('BENCH_CONNECTIONS', 32, 1, 1000)),
    growthKeys: Math.round(num('BENCH_GROWTH_KEYS', quick ? 50_000 : 1_000_000, 10_000, 5_000_000)),
    storeOpMs: num('BENCH_STORE_OP_MS', quick ? 300 : 2000, 100, 60_000),
    only: regex('BENCH_ONLY'),
    skipStores: process.env['BENCH_SKIP_STORES'] === '1',
    cpuProf: regex('BENCH_CPU_PROF'),
    outDir,
    docs: outDir === join(root, 'docs'),
    note: process.env['BENCH_NOTE'] ?? '',
    maxForeignCores: num('BENCH_MAX_FOREIGN_CORES', 0.2, 0, 64),
    loadRetries: Math.round(num('BENCH_LOAD_RETRIES', 2, 0, 10)),
    deadlineMs: num('BENCH_DEADLINE_MIN', quick ? 6 : 20, 1, 120) * 60_000,
    root,
  });
}
