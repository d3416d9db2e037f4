// `pnpm bench`: latchkey beside its peers on a redis-server of its own, in interleaved rounds.
//
// 1. start redis-server on a free port of 127.0.0.1 (never a Redis it did not start);
// 2. start every HTTP scenario as its own server process, fetch its fixture (cookie / bearer token),
//    check that one request succeeds, warm it up;
// 3. rounds: every scenario in turn (A B C … A B C …) under the same autocannon load; per run, the
//    req/s, p50/p99, round trips per request (counted by the server's client) and Redis commands per
//    request (INFO commandstats, script-inner calls included), and the ratio to the baseline of the
//    same round;
// 4. the store micro-benchmarks, growth, memory and lifetimes in a child process (bench/src/stores.ts);
// 5. stop everything by pid, write the report (markdown + SVG chart + JSON).
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedisServer } from '@latchkey/testing';
import { Redis } from 'ioredis';
import { renderChart } from './chart.js';
import { type BenchConfig, loadConfig } from './config.js';
import { cookieHeader, fetchOnce, runLoad } from './load.js';
import { describeMachine } from './machine.js';
import { machineLoad, sampleMachine } from './machine-load.js';
import { type Child, startChild } from './processes.js';
import { commandStats, diffStats, mix, total } from './redis-stats.js';
import { type BenchReport, type RunRecord, renderReport, type ScenarioSummary } from './report.js';
import { SCENARIOS, type ScenarioDef } from './scenarios.js';
import type { StoreResults } from './stores-types.js';

const config = loadConfig(process.argv.slice(2));
const startedAt = Date.now();
const log = (line: string): void => {
  const s = ((Date.now() - startedAt) / 1000).toFixed(0).padStart(4);
  console.log(`[${s}s] ${line}`);
};

// The run stops by itself, whatever happens.
const watchdog = setTimeout(() => {
  console.error(`bench: still running after ${config.deadlineMs / 60_000} min; stopping`);
  process.exit(2);
}, config.deadlineMs);
watchdog.unref();

interface Running {
  readonly def: ScenarioDef;
  readonly child: Child;
  readonly port: number;
  readonly headers: Record<string, string>;
}

async function startScenario(def: ScenarioDef, redisUrl: string): Promise<Running> {
  const port = await freePort();
  const child = await startChild({
    root: config.root,
    script: `bench/scenarios/${def.file}.ts`,
    env: {
      BENCH_PORT: String(port),
      BENCH_REDIS_URL: redisUrl,
      BENCH_PREFIX: `b-${def.id}`,
      BENCH_MODE: def.mode ?? '',
    },
  });
  try {
    const setup = await fetchOnce(port, '/__setup', {});
    const headers: Record<string, string> = {};
    if (setup.status === 200 && setup.body.startsWith('{')) {
      const parsed = JSON.parse(setup.body) as { headers?: Record<string, string> };
      Object.assign(headers, parsed.headers ?? {});
    }
    if (setup.setCookies.length > 0) headers['cookie'] = cookieHeader(setup.setCookies);
    const check = await fetchOnce(port, '/', headers);
    if (check.status !== 200) throw new Error(`GET / answered ${check.status}: ${check.body.slice(0, 200)}`);
    return { def, child, port, headers };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** redis-server's CPU so far, µs: its main thread (the cost of the commands) and the whole process. */
async function redisCpuMicros(admin: Redis): Promise<{ main: number; all: number }> {
  const info = await admin.info('cpu');
  const read = (name: string): number =>
    Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return {
    main: (read('used_cpu_user_main_thread') + read('used_cpu_sys_main_thread')) * 1e6,
    all: (read('used_cpu_user') + read('used_cpu_sys')) * 1e6,
  };
}

async function measure(
  run: Running,
  admin: Redis,
  durationS: number,
  round: number,
): Promise<Omit<RunRecord, 'round'>> {
  let stopProfile: (() => Promise<void>) | null = null;
  if (config.cpuProf?.test(run.def.id) === true) {
    const dir = join(config.root, 'bench', '.results', 'prof');
    mkdirSync(dir, { recursive: true });
    stopProfile = await run.child.profile(join(dir, `${run.def.id}-round${round}.cpuprofile`));
  }
  const machineBefore = sampleMachine();
  const childBefore = await run.child.stats();
  const before = await commandStats(admin);
  const redisBefore = await redisCpuMicros(admin);
  const load = await runLoad({
    port: run.port,
    headers: run.headers,
    connections: config.connections,
    durationS,
  });
  const redisAfter = await redisCpuMicros(admin);
  const after = await commandStats(admin);
  const childAfter = await run.child.stats();
  const machineAfter = sampleMachine();
  if (stopProfile !== null) await stopProfile();
  const childCpu = childAfter.cpuMicros - childBefore.cpuMicros;
  const { foreignCores, idleShare } = machineLoad(
    machineBefore,
    machineAfter,
    childCpu + (redisAfter.all - redisBefore.all),
  );
  const commands = diffStats(before, after);
  const requests = Math.max(load.requests, 1);
  return {
    id: run.def.id,
    rps: load.rps,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    requests: load.requests,
    non2xx: load.non2xx,
    errors: load.errors,
    roundTripsPerRequest: (childAfter.roundTrips - childBefore.roundTrips) / requests,
    commandsPerRequest: total(commands) / requests,
    serverCpuMicros: childCpu / requests,
    redisCpuMicros: (redisAfter.main - redisBefore.main) / requests,
    foreignCores,
    idleShare,
    commandMix: mix(commands, requests),
    ratio: Number.NaN,
  };
}

/** A run that foreign load disturbed beyond the limit (unmeasurable load counts as none). */
function loaded(record: { readonly foreignCores: number }): boolean {
  return record.foreignCores > config.maxForeignCores;
}

function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summarize(def: ScenarioDef, runs: readonly RunRecord[]): ScenarioSummary {
  const mine = runs.filter((r) => r.id === def.id);
  return {
    def,
    rounds: mine.length,
    rps: median(mine.map((r) => r.rps)),
    ratio: median(mine.map((r) => r.ratio)),
    ratioMin: Math.min(...mine.map((r) => r.ratio)),
    ratioMax: Math.max(...mine.map((r) => r.ratio)),
    p50Ms: median(mine.map((r) => r.p50Ms)),
    p99Ms: median(mine.map((r) => r.p99Ms)),
    roundTripsPerRequest: median(mine.map((r) => r.roundTripsPerRequest)),
    commandsPerRequest: median(mine.map((r) => r.commandsPerRequest)),
    serverCpuMicros: median(mine.map((r) => r.serverCpuMicros)),
    redisCpuMicros: median(mine.map((r) => r.redisCpuMicros)),
    commandMix: mine.at(-1)?.commandMix ?? '',
    failedRequests: mine.reduce((n, r) => n + r.non2xx + r.errors, 0),
  };
}

async function runStores(cfg: BenchConfig, redisUrl: string): Promise<StoreResults | { error: string }> {
  try {
    const child = await startChild({
      root: cfg.root,
      script: 'bench/src/stores.ts',
      env: {
        BENCH_REDIS_URL: redisUrl,
        BENCH_STORE_OP_MS: String(cfg.storeOpMs),
        BENCH_GROWTH_KEYS: String(cfg.growthKeys),
        BENCH_QUICK: cfg.quick ? '1' : '0',
      },
    });
    try {
      const reply = await child.messages.next('result', 8 * 60_000);
      return reply['result'] as StoreResults;
    } finally {
      await child.stop();
    }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

async function main(): Promise<void> {
  log(
    `bench: ${config.quick ? 'quick' : 'full'} run, ${config.rounds} rounds × ${config.durationS} s, ` +
      `${config.connections} connections, warm-up ${config.warmupS} s`,
  );
  const server = await startRedisServer();
  log(`redis-server pid ${server.pid} on 127.0.0.1:${server.port}`);
  const admin = new Redis(server.url);
  const machine = await describeMachine(admin, config.root);
  const running: Running[] = [];
  const unavailable: Array<{ def: ScenarioDef; reason: string }> = [];
  const runs: RunRecord[] = [];
  let stores: StoreResults | { error: string } | null = null;
  /** A docs run gives up once a run keeps its foreign load after the retries (it would be refused). */
  let gaveUp = false;
  try {
    const defs = SCENARIOS.filter(
      (d) => d.id === 'baseline' || config.only === null || config.only.test(d.id),
    );
    for (const def of defs) {
      try {
        const run = await startScenario(def, server.url);
        if (config.warmupS > 0)
          await runLoad({ ...run, connections: config.connections, durationS: config.warmupS });
        running.push(run);
        log(`started ${def.id} (pid ${run.child.pid}, port ${run.port})`);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        unavailable.push({ def, reason });
        log(`SKIPPED ${def.id}: ${reason.split('\n')[0]}`);
      }
    }
    if (!running.some((r) => r.def.id === 'baseline')) throw new Error('the baseline did not start');

    // Round r runs A B C …; its baseline is the mean of the baseline runs that open round r and round
    // r + 1 (one closing baseline run after the last round), so that each round is bracketed by
    // baseline measurements and a change of the machine's load within the round shows on both sides.
    const baselineRun = running.find((r) => r.def.id === 'baseline')!;
    const rounds: RunRecord[][] = [];
    const report = (round: number | string, record: RunRecord | Omit<RunRecord, 'round'>, id: string): void =>
      log(
        `round ${round} ${id.padEnd(24)} ${record.rps.toFixed(0).padStart(6)} req/s  ` +
          `p50 ${record.p50Ms.toFixed(2)} ms  p99 ${record.p99Ms.toFixed(2)} ms  ` +
          `${record.roundTripsPerRequest.toFixed(2)} trips  ${record.commandsPerRequest.toFixed(2)} cmds  ` +
          `cpu ${record.serverCpuMicros.toFixed(0)}+${record.redisCpuMicros.toFixed(0)} µs  ` +
          `foreign ${record.foreignCores.toFixed(2)} cores` +
          (record.non2xx + record.errors > 0 ? `  FAILED ${record.non2xx + record.errors}` : ''),
      );
    measuring: for (let round = 1; round <= config.rounds; round++) {
      const inRound: RunRecord[] = [];
      rounds.push(inRound);
      for (const run of running) {
        let record: RunRecord = { ...(await measure(run, admin, config.durationS, round)), round };
        for (let retry = 1; retry <= config.loadRetries && loaded(record); retry++) {
          log(
            `round ${round} ${run.def.id}: foreign load ${record.foreignCores.toFixed(2)} cores, measuring again`,
          );
          record = { ...(await measure(run, admin, config.durationS, round)), round, retries: retry };
        }
        inRound.push(record);
        report(round, record, run.def.id);
        if (config.docs && loaded(record)) {
          // This run cannot be published: stop now rather than spend minutes on a refused report.
          log(`foreign load stayed above ${config.maxForeignCores} cores: giving up the run`);
          gaveUp = true;
          break measuring;
        }
      }
    }
    let closing = gaveUp
      ? (rounds[0]?.find((r) => r.id === 'baseline') as RunRecord)
      : await measure(baselineRun, admin, config.durationS, config.rounds + 1);
    for (let retry = 1; !gaveUp && retry <= config.loadRetries && loaded(closing); retry++) {
      log(`closing baseline: foreign load ${closing.foreignCores.toFixed(2)} cores, measuring again`);
      closing = await measure(baselineRun, admin, config.durationS, config.rounds + 1);
    }
    report('end', closing, 'baseline');
    rounds.forEach((inRound, i) => {
      const opening = inRound.find((r) => r.id === 'baseline')!;
      const next = rounds[i + 1]?.find((r) => r.id === 'baseline') ?? closing;
      const bracket = (opening.rps + next.rps) / 2;
      for (const r of inRound) {
        runs.push({ ...r, ratio: r.id === 'baseline' ? 1 : r.rps / bracket, baselineRps: bracket });
      }
    });
  } finally {
    for (const run of running) await run.child.stop();
    log('scenario servers stopped');
  }

  if (!config.skipStores && !gaveUp) {
    await admin.flushall();
    log('store micro-benchmarks, growth, memory and lifetimes');
    stores = await runStores(config, server.url);
    if ('error' in stores) log(`stores: ${stores.error}`);
  }
  await admin.quit();
  await server.stop();
  log('redis-server stopped');

  const summaries = running.map((r) => summarize(r.def, runs));
  const report: BenchReport = {
    config: {
      quick: config.quick,
      durationS: config.durationS,
      warmupS: config.warmupS,
      rounds: config.rounds,
      connections: config.connections,
      growthKeys: config.growthKeys,
      maxForeignCores: config.maxForeignCores,
    },
    machine: { ...machine, loadAfter: loadavg().map((l) => Math.round(l * 100) / 100) },
    note: config.note,
    date: new Date(startedAt).toISOString(),
    elapsedS: Math.round((Date.now() - startedAt) / 1000),
    summaries,
    unavailable: unavailable.map((u) => ({ id: u.def.id, label: u.def.label, reason: u.reason })),
    runs,
    stores,
  };
  // A published report must come from a quiet machine: refuse one with a run that foreign load still
  // disturbed after its retries (it goes to bench/.results/refused/ for inspection instead).
  const disturbed = runs.filter(loaded);
  const refused = config.docs && disturbed.length > 0;
  const outDir = refused ? join(config.root, 'bench', '.results', 'refused') : config.outDir;
  if (refused) {
    log(
      `REFUSED to publish: ${disturbed.length} run(s) saw more than ${config.maxForeignCores} cores of ` +
        `foreign load (${disturbed.map((r) => `${r.id}#${r.round} ${r.foreignCores.toFixed(2)}`).join(', ')}); ` +
        'docs/ is unchanged. Run again on a quiet machine.',
    );
  }
  mkdirSync(outDir, { recursive: true });
  // The raw results stay out of docs/ (bench/.results is git-ignored); the report holds every run.
  const jsonDir = config.docs && !refused ? join(config.root, 'bench', '.results', 'full') : outDir;
  mkdirSync(jsonDir, { recursive: true });
  writeFileSync(join(jsonDir, 'benchmarks.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'benchmarks.svg'), renderChart(summaries));
  writeFileSync(join(outDir, 'benchmarks.md'), renderReport(report, config.root));
  log(`report written to ${outDir}/benchmarks.{md,svg} (raw: ${jsonDir}/benchmarks.json)`);
  if (refused) process.exitCode = 3;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
