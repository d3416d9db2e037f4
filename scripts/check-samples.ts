// The samples check: every ```ts block of the READMEs (root, packages/*, examples/*) and docs/*.md is
// written to a temporary project outside the workspace and type-checked strictly (the repository's
// compiler options, NodeNext, the workspace packages by their source) — so a sample that uses a name it
// never defines, an API that changed, or a type that no longer fits fails CI, at its file:line.
//
//   pnpm samples:check                  every block
//   pnpm samples:check --keep           keep the temporary project and print its path
//   pnpm samples:check path/to/FILE.md  these files only
//   pnpm samples:check --self-test      proves the check fails on a broken sample, at its file:line
//
// A block whose first line is a comment starting `// not type-checked` is skipped (and counted): the
// opt-out is visible to readers, who then know the sample is partial. A block whose first line starts
// `// continues the sample above` is checked together with the previous checked block of its file (it
// may use that block's names). Every other block is its own module (an `export {}` is appended), so two
// samples may declare the same names.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const root = join(import.meta.dirname, '..');
const OPT_OUT = /^\s*\/\/\s*not type-checked\b/i;
const CONTINUES = /^\s*\/\/\s*continues the sample above\b/i;
const FENCE_OPEN = /^(\s*)```(ts|typescript)\s*$/;
const FENCE_CLOSE = /^\s*```\s*$/;

/** The markdown files whose samples are checked. */
function markdownFiles(): string[] {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (args.length > 0) return args.map((a) => resolve(root, a));
  const files = [join(root, 'README.md')];
  for (const base of ['packages', 'examples']) {
    for (const dir of readdirSync(join(root, base)).sort()) {
      const readme = join(root, base, dir, 'README.md');
      if (existsSync(readme)) files.push(readme);
    }
  }
  for (const doc of readdirSync(join(root, 'docs')).sort()) {
    if (doc.endsWith('.md')) files.push(join(root, 'docs', doc));
  }
  return files;
}

interface Sample {
  /** The markdown file, relative to the repository root. */
  readonly file: string;
  /** The 1-based line of the sample's first code line in that file. */
  readonly line: number;
  readonly code: string;
  readonly skipped: boolean;
  readonly continues: boolean;
}

/** What one checked module holds: a sample and the blocks that continue it. */
interface Module {
  readonly file: string;
  readonly parts: Sample[];
}

function extractSamples(file: string, text: string): Sample[] {
  const lines = text.split('\n');
  const samples: Sample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE_OPEN.exec(lines[i] as string);
    if (open === null) continue;
    const indent = (open[1] as string).length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !FENCE_CLOSE.test(lines[j] as string); j++) {
      body.push((lines[j] as string).slice(indent));
    }
    if (j === lines.length) throw new Error(`${file}:${i + 1}: a \`\`\`ts block is never closed`);
    samples.push({
      file,
      line: i + 2,
      code: body.join('\n'),
      skipped: OPT_OUT.test(body[0] ?? ''),
      continues: CONTINUES.test(body[0] ?? ''),
    });
    i = j;
  }
  return samples;
}

/** The markdown `file:line:col` of a line (1-based) and column of a module. */
function locate(module: Module, line: number, col: string): string {
  let first = 1;
  for (const part of module.parts) {
    const count = part.code.split('\n').length;
    if (line < first + count) return `${module.file}:${part.line + line - first}:${col}`;
    first += count;
  }
  return `${module.file}:${module.parts[0]?.line ?? 0}:${col}`;
}

/** The vitest API the samples use, as vitest declares it (simplified), for the type check only. */
const VITEST_STUB = `type Awaitable<T> = T | PromiseLike<T>;
type Hook = () => Awaitable<unknown>;
interface Describe {
  (name: string, fn: () => void): void;
  each<T>(cases: readonly T[]): (name: string, fn: (value: T) => void) => void;
}
export declare const describe: Describe;
export declare function it(name: string, fn: () => Awaitable<void>, timeout?: number): void;
export declare const test: typeof it;
export declare function beforeAll(fn: Hook): void;
export declare function afterAll(fn: Hook): void;
export declare function beforeEach(fn: Hook): void;
export declare function afterEach(fn: Hook): void;
interface Assertion {
  toBe(value: unknown): void;
  toEqual(value: unknown): void;
  toBeNull(): void;
  toBeTruthy(): void;
  toHaveLength(length: number): void;
  readonly not: Assertion;
}
export declare function expect(value: unknown): Assertion;
`;

/** A temporary project whose node_modules links what the samples may import. */
function makeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-samples-'));
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  // The example app depends on every workspace package and the libraries samples use (koa, @koa/router,
  // ioredis, otpauth, …); the root adds the dev tools (uvu, @types/node). The first one found wins.
  for (const source of [join(root, 'examples/koa-auth-server/node_modules'), join(root, 'node_modules')]) {
    for (const entry of readdirSync(source)) {
      if (entry.startsWith('.')) continue;
      if (entry.startsWith('@')) {
        mkdirSync(join(modules, entry), { recursive: true });
        for (const sub of readdirSync(join(source, entry))) {
          const link = join(modules, entry, sub);
          if (!existsSync(link)) symlinkSync(join(source, entry, sub), link);
        }
      } else if (!existsSync(join(modules, entry))) {
        symlinkSync(join(source, entry), join(modules, entry));
      }
    }
  }
  if (!existsSync(join(modules, 'vitest'))) {
    // vitest is not installed in this repository (its current majors need a newer Node than CI's): the
    // testing README's vitest sample is checked against the few functions it uses, declared above.
    mkdirSync(join(modules, 'vitest'));
    writeFileSync(
      join(modules, 'vitest', 'package.json'),
      JSON.stringify({ name: 'vitest', version: '0.0.0-samples-stub', type: 'module', types: 'index.d.ts' }),
    );
    writeFileSync(join(modules, 'vitest', 'index.d.ts'), VITEST_STUB);
  }
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'latchkey-samples', private: true, type: 'module' }),
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        extends: join(root, 'tsconfig.base.json'),
        compilerOptions: {
          noEmit: true,
          rootDir: '.',
          customConditions: ['latchkey-source'],
          types: ['node'],
          // Samples show one thing each: an import or a variable kept for context is not an error.
          noUnusedLocals: false,
          noUnusedParameters: false,
        },
        include: ['samples/*.ts'],
      },
      null,
      2,
    ),
  );
  mkdirSync(join(dir, 'samples'));
  return dir;
}

function main(): number {
  const samples = markdownFiles().flatMap((file) =>
    extractSamples(relative(root, file), readFileSync(file, 'utf8')),
  );
  const checked = samples.filter((s) => !s.skipped);
  const modules: Module[] = [];
  for (const sample of checked) {
    const previous = modules.at(-1);
    if (!sample.continues) modules.push({ file: sample.file, parts: [sample] });
    else if (previous !== undefined && previous.file === sample.file) previous.parts.push(sample);
    else {
      console.error(
        `${sample.file}:${sample.line}: "continues the sample above", but no checked sample is above`,
      );
      return 1;
    }
  }
  const dir = makeProject();
  const byName = new Map<string, Module>();
  modules.forEach((module, index) => {
    const first = module.parts[0] as Sample;
    const slug = module.file.replace(/[^A-Za-z0-9]+/g, '_');
    const name = `samples/${String(index + 1).padStart(3, '0')}-${slug}-L${first.line}.ts`;
    byName.set(name, module);
    writeFileSync(join(dir, name), `${module.parts.map((p) => p.code).join('\n')}\nexport {};\n`);
  });
  const tsc = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir, '--pretty', 'false'],
    { cwd: dir, encoding: 'utf8' },
  );
  let errors = 0;
  const report: string[] = [];
  for (const line of `${tsc.stdout}${tsc.stderr}`.split('\n')) {
    const match = /^(samples\/[^()]+)\((\d+),(\d+)\): (.*)$/.exec(line);
    if (match === null) {
      if (line.trim() !== '') report.push(line);
      continue;
    }
    const module = byName.get(match[1] as string);
    const at = module === undefined ? match[1] : locate(module, Number(match[2]), match[3] as string);
    report.push(`${at}: ${match[4]}`);
    errors++;
  }
  const keep = process.argv.includes('--keep');
  if (!keep) rmSync(dir, { recursive: true, force: true });
  const files = new Set(samples.map((s) => s.file)).size;
  const summary =
    `samples: ${checked.length} checked, ${samples.length - checked.length} marked "not type-checked", ` +
    `in ${files} files${keep ? ` (project kept in ${dir})` : ''}`;
  if (tsc.status !== 0 || errors > 0) {
    for (const line of report) console.error(line);
    console.error(`${summary}: ${errors} error(s) — fix the samples at the file:line above`);
    return 1;
  }
  console.log(summary);
  return 0;
}

/**
 * Runs the check on a markdown file with one good sample, one opted out, and one broken on a known line
 * (a name it never defines, a wrong argument type), and demands that it fails and names those lines.
 */
function selfTest(): number {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-samples-self-test-'));
  const file = join(dir, 'BROKEN.md');
  writeFileSync(
    file,
    [
      '# a README',
      '',
      '```ts',
      "import { SessionStore } from '@latchkey/core';",
      'export const ok: typeof SessionStore = SessionStore;',
      '```',
      '',
      '```ts',
      '// not type-checked: never compiled',
      'this is not TypeScript',
      '```',
      '',
      '```ts',
      "import { TestClock } from '@latchkey/testing';",
      'const clock = new TestClock();',
      'clock.advance(notDefinedAnywhere);', // line 16
      "clock.advance('60 s');", // line 17
      '```',
      '',
    ].join('\n'),
  );
  try {
    const run = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, file], {
      cwd: root,
      encoding: 'utf8',
    });
    const output = `${run.stdout}${run.stderr}`;
    const expected = [
      /BROKEN\.md:16:15: error TS2304: Cannot find name 'notDefinedAnywhere'/,
      /BROKEN\.md:17:15: error TS2345/,
      /2 error\(s\)/,
    ];
    const missing = expected.filter((pattern) => !pattern.test(output));
    if (run.status === 0 || missing.length > 0) {
      console.error(`samples self-test FAILED: exit ${run.status}, missing ${missing.join(', ')}\n${output}`);
      return 1;
    }
    console.log('samples self-test: a broken sample fails the check at its file:line');
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = process.argv.includes('--self-test') ? selfTest() : main();
