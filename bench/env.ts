/** Settings of the benchmarks: environment variables, command-line flags, paths. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** An integer setting (`_` separators allowed, e.g. 1_000_000); a bad value ends the run with exit code 2. */
export function envInt(name: string, def: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`${name} must be an integer >= ${min}\n`);
    process.exit(2);
  }
  return n;
}

/** The bench folder and the project root. */
export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');

/**
 * The command-line flags of the benches that have a quick mode: `--quick` (short, does not write the README unless
 * `--write`), `--no-write`.
 */
export function quickWriteFlags(): { args: string[]; quick: boolean; write: boolean } {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  return { args, quick, write: args.includes('--write') || (!quick && !args.includes('--no-write')) };
}
