// Foreign load: CPU time the machine spent during a measured run that none of the bench's own
// processes (the runner with its load generator, the measured scenario server, redis-server) spent.
// On a shared machine it is what makes req/s drift; a published run must show it was near zero.
//
// The machine's busy time comes from /proc/stat (user + nice + system + steal: steal is a neighbour
// on the same host taking the CPU). Interrupt and softirq time are left out: on loopback they are the
// bench's own packets. Linux only; elsewhere the figures are NaN ("not measured").
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** /proc/stat counts in USER_HZ ticks, 100 per second on every Linux build that matters. */
const TICK_MICROS = 10_000;

export interface MachineSample {
  /** performance.now() when taken, ms. */
  readonly at: number;
  /** CPU time the machine spent busy so far, µs (all cores). */
  readonly busyMicros: number;
  /** CPU time the machine spent idle so far, µs (all cores). */
  readonly idleMicros: number;
  /** CPU time this process (the runner and its load generator) spent so far, µs. */
  readonly runnerMicros: number;
}

export interface MachineLoad {
  /** Cores' worth of CPU spent by something other than the bench during the run. */
  readonly foreignCores: number;
  /** Share of all cores' time that stayed idle during the run (0..1). */
  readonly idleShare: number;
}

export function sampleMachine(): MachineSample {
  const usage = process.cpuUsage();
  const runnerMicros = usage.user + usage.system;
  const at = performance.now();
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, , , steal = 0] = f;
    if (!line.startsWith('cpu ') || f.some((v) => !Number.isFinite(v))) throw new Error('unreadable');
    return {
      at,
      busyMicros: (user + nice + system + steal) * TICK_MICROS,
      idleMicros: (idle + iowait) * TICK_MICROS,
      runnerMicros,
    };
  } catch {
    return { at, busyMicros: Number.NaN, idleMicros: Number.NaN, runnerMicros };
  }
}

/**
 * The foreign load between two samples, given the CPU time (µs) the measured server and redis-server
 * spent between them.
 */
export function machineLoad(before: MachineSample, after: MachineSample, ownMicros: number): MachineLoad {
  const wallMicros = (after.at - before.at) * 1000;
  const busy = after.busyMicros - before.busyMicros;
  const idle = after.idleMicros - before.idleMicros;
  const own = ownMicros + (after.runnerMicros - before.runnerMicros);
  return {
    foreignCores: Math.max(0, busy - own) / wallMicros,
    idleShare: idle / (wallMicros * cpus().length),
  };
}
