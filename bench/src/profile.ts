// Summarizes a V8 .cpuprofile (from BENCH_CPU_PROF): the functions with the most self time, and the
// inclusive time of frames whose name or file matches an optional filter.
//
//   node --import tsx bench/src/profile.ts bench/.results/prof/<scenario>-round<n>.cpuprofile [filter] [top]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const [file, filter, topArg] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: profile.ts <file.cpuprofile> [filter] [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const top = Number(topArg ?? 30);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
let totalUs = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  totalUs += dt;
});

const label = (n: ProfileNode): string => {
  const url = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules\/\.pnpm\/|work\/main\/)/, '');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
};

const selfByLabel = new Map<string, number>();
for (const [id, us] of self) {
  const key = label(byId.get(id)!);
  selfByLabel.set(key, (selfByLabel.get(key) ?? 0) + us);
}
const pct = (us: number): string => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %`;
console.log(`total ${(totalUs / 1e6).toFixed(2)} s sampled`);
console.log('\nself time:');
for (const [key, us] of [...selfByLabel].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${pct(us)}  ${key}`);
}

if (filter !== undefined) {
  // Inclusive: a sample counts once for each distinct matching label on its stack.
  const re = new RegExp(filter);
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = label(byId.get(at)!);
      if (re.test(key) && !seen.has(key)) {
        seen.add(key);
        inclusive.set(key, (inclusive.get(key) ?? 0) + us);
      }
    }
  }
  console.log(`\ninclusive time of frames matching /${filter}/:`);
  for (const [key, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(us)}  ${key}`);
  }
}
