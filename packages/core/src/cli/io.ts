/** What a command writes to and reads from; `main.ts` passes the process's, tests may pass their own. */
export interface CliIo {
  /** Standard output: the data (a table, env lines, JSON). */
  out(text: string): void;
  /** Standard error: usage, errors, progress. */
  err(text: string): void;
  readonly env: NodeJS.ProcessEnv;
  /** Whether standard error is a terminal (progress then rewrites one line). */
  readonly errIsTTY: boolean;
  /** Reads standard input to its end (`keys public -`). */
  readStdin(): Promise<string>;
}

/** Bad arguments: the usage goes to stderr and the exit status is 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A command that ran and failed (Redis unreachable, nothing to revoke): one line, exit status 1. */
export class CommandFailed extends Error {
  override readonly name = 'CommandFailed';
}

/** Exit statuses. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/**
 * Text that came from Redis or a user (a user agent, a user id) as it may reach a terminal: control
 * characters (an escape sequence could rewrite the operator's screen) become `?`. JSON output needs no
 * such care: `JSON.stringify` escapes them.
 */
export function printable(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, '?');
}

/** A fixed-width table: one header row, then the rows, columns separated by two spaces. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** JSON output: one document, two-space indented, newline-terminated. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
