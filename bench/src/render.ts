// Re-renders docs/benchmarks.{md,svg} from the raw results of the last full run
// (bench/.results/full/benchmarks.json),
// e.g. after editing bench/analysis.md — no need to measure again.
//
//   pnpm --filter @latchkey/bench render [results.json] [out-dir]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderChart } from './chart.js';
import { type BenchReport, renderReport } from './report.js';

const root = join(import.meta.dirname, '..', '..');
const [input = join(root, 'bench', '.results', 'full', 'benchmarks.json'), out = join(root, 'docs')] =
  process.argv.slice(2);
const report = JSON.parse(readFileSync(input, 'utf8')) as BenchReport;
writeFileSync(join(out, 'benchmarks.md'), renderReport(report, root));
writeFileSync(join(out, 'benchmarks.svg'), renderChart(report.summaries));
console.log(`rendered ${input} into ${out}/benchmarks.{md,svg}`);
