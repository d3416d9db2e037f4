#!/usr/bin/env node
// The `latchkey` command (package.json `bin`). Kept out of the library's import graph: importing
// @latchkey/core never loads this directory.
import { run } from './run.js';

const stdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
};

process.exitCode = await run(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  env: process.env,
  errIsTTY: process.stderr.isTTY === true,
  readStdin: stdin,
});
