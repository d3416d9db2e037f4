// Scenario servers: `node --conditions=latchkey-source --import tsx bench/scenarios/<file>.ts`, one
// process each, on 127.0.0.1. Every process started here is stopped by its pid: politely over IPC,
// then SIGKILL; and synchronously by pid if the runner itself exits early.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

const started = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of started) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

export interface ChildStats {
  /** Round trips the child's Redis client has sent so far. */
  readonly roundTrips: number;
  /** CPU time (user + system) the child has used so far, µs. */
  readonly cpuMicros: number;
}

export interface Child {
  readonly pid: number;
  stats(): Promise<ChildStats>;
  /** Profiles the child (V8 sampler) until the returned function is called, which writes `file`. */
  profile(file: string): Promise<() => Promise<void>>;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly root: string;
  readonly script: string;
  readonly env: Record<string, string>;
  readonly readyTimeoutMs?: number;
}

/** Starts a TypeScript entry point as a child with an IPC channel and waits for its `ready`. */
export async function startChild(options: StartOptions): Promise<Child & { messages: ChildMessages }> {
  const execArgv = ['--conditions=latchkey-source', '--import', 'tsx'];
  const child = spawn(process.execPath, [...execArgv, join(options.root, options.script)], {
    cwd: options.root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  started.add(child);
  child.once('exit', () => started.delete(child));
  const messages = new ChildMessages(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${options.script}`);

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ type: 'stop' });
    else process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await messages.next('ready', options.readyTimeoutMs ?? 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pid,
    messages,
    async stats() {
      child.send({ type: 'stats' });
      const reply = await messages.next('stats', 5000);
      return { roundTrips: Number(reply['roundTrips']), cpuMicros: Number(reply['cpuMicros']) };
    },
    async profile(file) {
      child.send({ type: 'profile-start' });
      await messages.next('profile-started', 10_000);
      return async () => {
        child.send({ type: 'profile-stop', file });
        await messages.next('profile-stopped', 30_000);
      };
    },
    stop,
  };
}

/** Waits for typed IPC messages from one child. */
export class ChildMessages {
  readonly #queue: Array<{ type: string } & Record<string, unknown>> = [];
  readonly #waiters: Array<{ type: string; resolve: (m: unknown) => void }> = [];
  #exit: string | null = null;

  constructor(child: ChildProcess) {
    child.on('message', (message: unknown) => {
      const m = message as { type?: unknown } & Record<string, unknown>;
      if (typeof m?.type !== 'string') return;
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      if (i === -1) this.#queue.push(m as { type: string } & Record<string, unknown>);
      else this.#waiters.splice(i, 1)[0]?.resolve(m);
    });
    child.once('exit', (code, signal) => {
      this.#exit = `exited (${signal ?? code})`;
      for (const w of this.#waiters.splice(0)) w.resolve({ type: 'exit' });
    });
  }

  next(type: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const i = this.#queue.findIndex((m) => m.type === type);
    if (i !== -1) return Promise.resolve(this.#queue.splice(i, 1)[0]!);
    if (this.#exit !== null) return Promise.reject(new Error(`child ${this.#exit} before '${type}'`));
    return new Promise((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: unknown) => {
          clearTimeout(timer);
          const msg = m as { type: string } & Record<string, unknown>;
          if (msg.type === 'exit') reject(new Error(`child ${this.#exit} before '${type}'`));
          else resolve(msg);
        },
      };
      const timer = setTimeout(() => {
        const at = this.#waiters.indexOf(waiter);
        if (at !== -1) this.#waiters.splice(at, 1);
        reject(new Error(`no '${type}' from child within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }
}
