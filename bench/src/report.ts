// docs/benchmarks.md, written by the bench from its results (the analysis comes from bench/analysis.md).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Machine } from './machine.js';
import type { Group, ScenarioDef } from './scenarios.js';
import type { StoreResults } from './stores-types.js';

export interface RunRecord {
  readonly id: string;
  readonly round: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly roundTripsPerRequest: number;
  readonly commandsPerRequest: number;
  /** CPU time of the scenario server process per request, µs. */
  readonly serverCpuMicros: number;
  /** CPU time of redis-server's main thread per request, µs. */
  readonly redisCpuMicros: number;
  readonly commandMix: string;
  readonly ratio: number;
  /** The round's baseline: the mean of the baseline runs opening this round and the next. */
  readonly baselineRps?: number;
  /** Cores' worth of CPU that processes other than the bench's spent during the run (NaN: unknown). */
  readonly foreignCores: number;
  /** Share of the machine's core time that stayed idle during the run. */
  readonly idleShare: number;
  /** How often this run was measured again because of foreign load (absent: never). */
  readonly retries?: number;
}

export interface ScenarioSummary {
  readonly def: ScenarioDef;
  readonly rounds: number;
  readonly rps: number;
  readonly ratio: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly roundTripsPerRequest: number;
  readonly commandsPerRequest: number;
  readonly serverCpuMicros: number;
  readonly redisCpuMicros: number;
  readonly commandMix: string;
  readonly failedRequests: number;
}

export interface BenchReport {
  readonly config: {
    readonly quick: boolean;
    readonly durationS: number;
    readonly warmupS: number;
    readonly rounds: number;
    readonly connections: number;
    readonly growthKeys: number;
    /** Foreign load a published run may see in every measured run, cores. */
    readonly maxForeignCores?: number;
  };
  readonly machine: Machine & { readonly loadAfter: readonly number[] };
  readonly note: string;
  readonly date: string;
  readonly elapsedS: number;
  readonly summaries: readonly ScenarioSummary[];
  readonly unavailable: ReadonlyArray<{ id: string; label: string; reason: string }>;
  readonly runs: readonly RunRecord[];
  readonly stores: StoreResults | { error: string } | null;
}

export interface Verdict {
  readonly what: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
  readonly gap: string;
}

const GROUP_TITLES: Record<Group, string> = {
  reference: 'Reference',
  session: 'Session load from a cookie, sliding renewal',
  bearer: 'Bearer check',
  limiter: 'Login limiter check',
};

const x = (ratio: number): string => (Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a');
const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
const pct = (v: number): string => `${(v * 100).toFixed(0)} %`;
const cores = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? v.toFixed(2) : 'n/a';
const share = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? `${(v * 100).toFixed(0)} %` : 'n/a';

/** How quiet the machine was: the worst foreign load of any measured run and the median idle share. */
function quietLine(report: BenchReport): string {
  const foreign = report.runs.map((r) => r.foreignCores).filter((v) => v !== undefined && Number.isFinite(v));
  const idle = report.runs
    .map((r) => r.idleShare)
    .filter((v) => v !== undefined && Number.isFinite(v))
    .sort((a, b) => a - b);
  const limit = report.config.maxForeignCores ?? 0.2;
  if (foreign.length === 0)
    return 'Machine load: not measured (no /proc/stat), so this run proves nothing about quiet.';
  const worst = Math.max(...foreign);
  const retried = report.runs.filter((r) => r.retries !== undefined).length;
  return (
    `Machine load: foreign load (CPU of processes other than the bench's) at most **${worst.toFixed(2)} cores** ` +
    `in any measured run (limit for publishing: ${limit}; ${retried} run(s) measured again), median idle share ` +
    `${share(idle[idle.length >> 1])} — ${worst <= limit ? 'a quiet machine' : '**NOT a quiet machine: not publishable**'}.`
  );
}

/** Every target of issue 9 with its verdict. */
export function verdicts(report: BenchReport): Verdict[] {
  const out: Verdict[] = [];
  const byId = new Map(report.summaries.map((s) => [s.def.id, s]));
  for (const s of report.summaries) {
    const t = s.def.target;
    if (t === undefined) continue;
    if (t.minRatio !== undefined) {
      const met = s.ratio >= t.minRatio;
      out.push({
        what: s.def.label,
        target: `≥ ${t.minRatio.toFixed(2)}× baseline`,
        measured: x(s.ratio),
        met,
        gap: met ? '' : `missed by ${pct((t.minRatio - s.ratio) / t.minRatio)} (${x(t.minRatio - s.ratio)})`,
      });
    }
    if (t.atLeast !== undefined) {
      const peer = byId.get(t.atLeast);
      const met = peer === undefined ? null : s.ratio >= peer.ratio;
      out.push({
        what: s.def.label,
        target: `≥ ${peer?.def.label ?? t.atLeast}`,
        measured: `${x(s.ratio)} vs ${peer === undefined ? 'n/a' : x(peer.ratio)}`,
        met,
        gap:
          met === false && peer !== undefined ? `missed by ${pct((peer.ratio - s.ratio) / peer.ratio)}` : '',
      });
    }
    for (const id of t.ahead ?? []) {
      const peer = byId.get(id);
      const met = peer === undefined ? null : s.ratio > peer.ratio;
      out.push({
        what: s.def.label,
        target: `ahead of ${peer?.def.label ?? id}`,
        measured: `${x(s.ratio)} vs ${peer === undefined ? 'n/a' : x(peer.ratio)}`,
        met,
        gap:
          met === false && peer !== undefined ? `behind by ${pct((peer.ratio - s.ratio) / peer.ratio)}` : '',
      });
    }
    if (t.near !== undefined) {
      const floor = byId.get(t.near.id);
      const want = floor === undefined ? Number.NaN : floor.ratio * t.near.fraction;
      const met = floor === undefined ? null : s.ratio >= want;
      out.push({
        what: s.def.label,
        target: `≥ ${t.near.fraction.toFixed(2)} × ${floor?.def.label ?? t.near.id}`,
        measured: `${x(s.ratio)} vs ${floor === undefined ? 'n/a' : `${x(floor.ratio)} (${x(s.ratio / floor.ratio)} of it)`}`,
        met,
        gap: met === false ? `missed by ${pct((want - s.ratio) / want)}` : '',
      });
    }
    if (t.cpuBelow !== undefined) {
      const peer = byId.get(t.cpuBelow);
      for (const [what, mine, theirs] of [
        ['server CPU µs / req', s.serverCpuMicros, peer?.serverCpuMicros],
        ['Redis CPU µs / req', s.redisCpuMicros, peer?.redisCpuMicros],
      ] as const) {
        const met = theirs === undefined ? null : mine < theirs;
        out.push({
          what: `${s.def.label}: ${what}`,
          target: `below ${peer?.def.label ?? t.cpuBelow}`,
          measured: `${mine.toFixed(1)} vs ${theirs === undefined ? 'n/a' : theirs.toFixed(1)}`,
          met,
          gap: met === false && theirs !== undefined ? `over by ${pct((mine - theirs) / theirs)}` : '',
        });
      }
    }
  }
  for (const def of report.unavailable) {
    out.push({
      what: def.label,
      target: 'measured',
      measured: 'not run',
      met: null,
      gap: 'scenario unavailable',
    });
  }
  const stores = report.stores;
  if (stores !== null && !('error' in stores)) {
    const session = stores.memory.find((m) => m.what.startsWith('session hash'));
    if (session !== undefined) {
      out.push({
        what: 'a typical session in Redis',
        target: '< 512 bytes',
        measured: `${session.bytes} bytes (index entry aside)`,
        met: session.bytes < 512,
        gap: session.bytes < 512 ? '' : `over by ${session.bytes - 511} bytes`,
      });
    }
    const g = stores.growth;
    if (g !== null) {
      // The lookup's own cost (redis-server CPU per get) decides; req/s of the client is shown beside it.
      const ratio = g.costRatio;
      out.push({
        what: `session lookup, ${int(g.large)} vs ${int(g.small)} sessions stored`,
        target: 'no slowdown: Redis CPU per lookup ≤ 1.15× the small store’s (noise margin)',
        measured:
          `${g.largeRedisMicros.toFixed(1)} vs ${g.smallRedisMicros.toFixed(1)} µs (${x(ratio)}); ` +
          `${x(g.opsRatio)} the get/s`,
        met: ratio <= 1.15,
        gap: ratio <= 1.15 ? '' : `costlier by ${pct(ratio - 1)}`,
      });
    }
    const lg = stores.limiterGrowth;
    if (lg !== undefined && lg !== null) {
      const ratio = lg.costRatio;
      out.push({
        what: `login limiter check, ${int(lg.large)} vs ${int(lg.small)} attempt keys stored`,
        target: 'flat: Redis CPU per check ≤ 1.15× the small store’s (noise margin)',
        measured:
          `${lg.largeRedisMicros.toFixed(1)} vs ${lg.smallRedisMicros.toFixed(1)} µs (${x(ratio)}); ` +
          `${x(lg.opsRatio)} the checks/s`,
        met: ratio <= 1.15,
        gap: ratio <= 1.15 ? '' : `costlier by ${pct(ratio - 1)}`,
      });
    }
    for (const op of stores.ops) {
      if (op.target === undefined) continue;
      out.push({
        what: `${op.op}: round trips`,
        target: `${op.target}`,
        measured: `${op.roundTrips}`,
        met: op.roundTrips <= op.target,
        gap: op.roundTrips <= op.target ? '' : `${op.roundTrips - op.target} too many`,
      });
    }
    if (stores.lifetimes.length > 0) {
      const left = stores.lifetimes.reduce((n, l) => n + l.keysAfter, 0);
      const noTtl = stores.lifetimes.reduce((n, l) => n + l.keysWithoutTtl, 0);
      out.push({
        what: 'keys after every lifetime has passed',
        target: '0, and every key with a TTL',
        measured: `${left} left, ${noTtl} without TTL`,
        met: left === 0 && noTtl === 0,
        gap: left === 0 && noTtl === 0 ? '' : 'see the lifetimes table',
      });
    }
  }
  return out;
}

function mark(met: boolean | null): string {
  if (met === null) return '–';
  return met ? '✅ met' : '❌ missed';
}

export function renderReport(report: BenchReport, root: string): string {
  const c = report.config;
  const m = report.machine;
  const lines: string[] = [];
  const push = (...l: string[]): void => {
    lines.push(...l);
  };
  push(
    '# Benchmarks',
    '',
    '<!-- Generated by `pnpm bench` (bench/src/report.ts); edit bench/analysis.md, not this file. -->',
    '',
    'latchkey beside the libraries a team would otherwise pick, measured side by side in one run on a ' +
      '`redis-server` the bench starts for itself. Every scenario is a small HTTP server process driven ' +
      'by autocannon with the same load; scenarios run **interleaved in rounds** and each is compared ' +
      'with the **baseline of the same round**: a Koa app doing exactly one raw ioredis `GET` per ' +
      'request, the physical floor of any Redis-backed check.',
    '',
    `Run: ${report.date.slice(0, 16).replace('T', ' ')} UTC, ${c.quick ? '**quick smoke run** (numbers are indicative only), ' : ''}` +
      `${c.rounds} rounds × ${c.durationS} s per scenario, ${c.connections} connections, ` +
      `${c.warmupS} s warm-up, ${Math.round(report.elapsedS / 60)} min in all.`,
    '',
    quietLine(report),
    '',
    '![Throughput relative to the baseline](benchmarks.svg)',
    '',
    '## Targets',
    '',
    '| what | target | measured | verdict |',
    '|---|---|---|---|',
  );
  for (const v of verdicts(report)) {
    push(`| ${v.what} | ${v.target} | ${v.measured} | ${mark(v.met)}${v.gap === '' ? '' : `: ${v.gap}`} |`);
  }
  push(
    '',
    'Ratios are medians over the rounds of (scenario req/s ÷ baseline req/s of the same round), where a ' +
      "round's baseline is the mean of the baseline runs that open it and the next round (a closing " +
      'baseline run follows the last round). Where a target is missed, the analysis below says why.',
    '',
    '## HTTP scenarios',
    '',
    '| scenario | what each request does | req/s | × baseline (min–max) | p50 ms | p99 ms | round trips / req | Redis cmds / req | server CPU µs / req | Redis CPU µs / req |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  const groups: Group[] = ['reference', 'session', 'bearer', 'limiter'];
  for (const group of groups) {
    const rows = report.summaries.filter((s) => s.def.group === group);
    if (rows.length === 0) continue;
    push(`| **${GROUP_TITLES[group]}** | | | | | | | | | |`);
    for (const s of rows) {
      const name = s.def.latchkey === true ? `**${s.def.label}**` : s.def.label;
      const failed = s.failedRequests > 0 ? ` ⚠️ ${int(s.failedRequests)} failed requests` : '';
      push(
        `| ${name} | ${s.def.work}${failed} | ${int(s.rps)} | ${x(s.ratio)} (${x(s.ratioMin)}–${x(s.ratioMax)}) | ` +
          `${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${s.roundTripsPerRequest.toFixed(2)} | ${s.commandsPerRequest.toFixed(2)} | ` +
          `${int(s.serverCpuMicros)} | ${s.redisCpuMicros.toFixed(1)} |`,
      );
    }
  }
  push(
    '',
    '"Round trips" are counted by the server\'s ioredis client (a script call is one); "Redis cmds" come ' +
      'from `INFO commandstats` on the server and include the commands a script runs. "Server CPU" is ' +
      'the CPU time (user + system) of the scenario\'s Node.js process per request, "Redis CPU" that of ' +
      "redis-server's main thread: on a shared machine they are steadier than req/s and show where the " +
      'time goes. The command mix per request:',
    '',
    '| scenario | commands per request |',
    '|---|---|',
  );
  for (const s of report.summaries) push(`| ${s.def.label} | ${s.commandMix === '' ? '–' : s.commandMix} |`);
  if (report.unavailable.length > 0) {
    push('', 'Not measured in this run:', '');
    for (const u of report.unavailable) push(`- ${u.label}: ${u.reason.split('\n')[0]}`);
  }

  const stores = report.stores;
  push('', '## Store operations (direct calls, no HTTP)', '');
  if (stores === null) push('Skipped in this run (`BENCH_SKIP_STORES=1`).');
  else if ('error' in stores) push(`Not measured: ${stores.error}`);
  else {
    if (stores.ops.length > 0) {
      push(
        `Each operation on the bench's redis-server through one ioredis client: throughput with ` +
          `${stores.ops[0]?.concurrency ?? '?'} calls in flight, the latency of one call alone, its round ` +
          'trips (counted on the client) and the Redis commands it runs (script-inner included).',
        '',
        '| operation | setup | ops/s | one call alone, µs | round trips | Redis cmds |',
        '|---|---|---:|---:|---:|---:|',
      );
      for (const op of stores.ops) {
        push(
          `| ${op.op} | ${op.what} | ${int(op.opsPerSecond)} | ${int(op.soloMicros)} | ${op.roundTrips} | ${op.commands} |`,
        );
      }
    }
    const g = stores.growth;
    if (g !== null) {
      push(
        '',
        '### Cost with the number of sessions stored',
        '',
        `\`SessionStore.get\` over 1,000 sessions spread across a store of ${int(g.small)} and one of ` +
          `${int(g.large)} sessions (two databases of the same server, each session with its index; seeded ` +
          `in ${g.seedSeconds.toFixed(1)} s by a Lua loop copying a real session record; ` +
          `${g.usedMemoryLargeMiB.toFixed(0)} MiB used), measured in 10 paired rounds (order alternating); ` +
          'medians, and the verdict on the median of the per-round ratios.',
        '',
        '| sessions stored | get ops/s | one get alone, µs | Redis CPU µs / get |',
        '|---:|---:|---:|---:|',
        `| ${int(g.small)} | ${int(g.smallOpsPerSecond)} | ${int(g.smallSoloMicros)} | ${g.smallRedisMicros.toFixed(1)} |`,
        `| ${int(g.large)} | ${int(g.largeOpsPerSecond)} | ${int(g.largeSoloMicros)} | ${g.largeRedisMicros.toFixed(1)} |`,
      );
    }
    const lg = stores.limiterGrowth;
    if (lg !== undefined && lg !== null) {
      push(
        '',
        '### Login limiter cost with the number of attempt keys stored',
        '',
        `\`LoginLimiter.check\` (both default policies, limits raised so every check reserves; the logs soon hold ` +
          '16 entries, so most checks take the costliest path, parse and merge) for 1,000 ' +
          `clients spread across a store of ${int(lg.small)} and one of ${int(lg.large)} account+IP logs ` +
          `(plus one IP log per 256; two databases of the same server; seeded in ${lg.seedSeconds.toFixed(1)} s ` +
          `by pipelined SETs in the limiter's format, each with a one-hour TTL; ${lg.usedMemoryLargeMiB.toFixed(0)} MiB ` +
          'used), measured in 10 paired rounds (order alternating); medians, the verdict on the median of the ' +
          'per-round ratios. Every seeded key is flushed afterwards.',
        '',
        '| attempt keys stored | checks/s | one check alone, µs | Redis CPU µs / check |',
        '|---:|---:|---:|---:|',
        `| ${int(lg.small)} | ${int(lg.smallOpsPerSecond)} | ${int(lg.smallSoloMicros)} | ${lg.smallRedisMicros.toFixed(1)} |`,
        `| ${int(lg.large)} | ${int(lg.largeOpsPerSecond)} | ${int(lg.largeSoloMicros)} | ${lg.largeRedisMicros.toFixed(1)} |`,
      );
    }
    if (stores.memory.length > 0) {
      push(
        '',
        '### Memory',
        '',
        '`MEMORY USAGE` (bytes, Redis 7 jemalloc accounting) of what one login stores, and of the login limiter’s keys.',
        '',
      );
      push('| what | key | encoding | bytes |', '|---|---|---|---:|');
      for (const row of stores.memory) {
        push(`| ${row.what} | \`${row.key}\` | ${row.encoding} | ${row.bytes} |`);
      }
    }
    if (stores.lifetimes.length > 0) {
      push(
        '',
        '### Nothing left behind',
        '',
        'Each store used with short lifetimes, then real waiting (bounded) until its keys are gone.',
        '',
        '| what | keys while alive | keys without TTL | keys after | waited |',
        '|---|---:|---:|---:|---:|',
      );
      for (const l of stores.lifetimes) {
        push(
          `| ${l.what} | ${l.keysWhileAlive} | ${l.keysWithoutTtl} | ${l.keysAfter} | ${(l.waitedMs / 1000).toFixed(1)} s |`,
        );
      }
    }
    if (stores.notes.length > 0) {
      push('');
      for (const n of stores.notes) push(`- ${n}`);
    }
  }

  push(
    '',
    '## Machine and command',
    '',
    '| | |',
    '|---|---|',
    `| CPU | ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB |`,
    `| OS | ${m.os} |`,
    `| Node.js | ${m.node} |`,
    `| Redis | ${m.redis}, started by the bench (no persistence, \`noeviction\`) |`,
    `| libraries | ${m.packages.join(', ')} |`,
    `| load average before / after | ${m.loadBefore.join(' ')} / ${m.loadAfter.join(' ')} |`,
  );
  if (report.note !== '') push(`| note | ${report.note} |`);
  push(
    '',
    '```sh',
    c.quick ? 'pnpm bench --quick' : 'pnpm bench',
    '```',
    '',
    'Everything (the load generator, the scenario server, redis-server) shares the same cores, so ' +
      'absolute numbers depend on the machine; the ratios to the baseline of the same round are what ' +
      'carries over. Settings: `BENCH_DURATION_S`, `BENCH_ROUNDS`, `BENCH_CONNECTIONS`, `BENCH_WARMUP_S`, ' +
      '`BENCH_GROWTH_KEYS`, `BENCH_ONLY` (see bench/README.md).',
  );

  const analysis = join(root, 'bench', 'analysis.md');
  if (existsSync(analysis)) push('', readFileSync(analysis, 'utf8').trim());

  push('', '## Every run', '', '<details><summary>per round</summary>', '');
  push(
    '| round | scenario | req/s | round baseline req/s | × baseline | p50 ms | p99 ms | server CPU µs / req | Redis CPU µs / req | foreign load, cores | idle | failed |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.runs) {
    const again = r.retries === undefined ? '' : ` (measured ${r.retries + 1}×)`;
    push(
      `| ${r.round} | ${r.id} | ${int(r.rps)} | ${int(r.baselineRps ?? Number.NaN)} | ${x(r.ratio)} | ` +
        `${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${int(r.serverCpuMicros)} | ${r.redisCpuMicros.toFixed(1)} | ` +
        `${cores(r.foreignCores)}${again} | ${share(r.idleShare)} | ${r.non2xx + r.errors} |`,
    );
  }
  push('', '</details>', '');
  return lines.join('\n');
}
