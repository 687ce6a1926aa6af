/** Settings of the benchmarks: environment variables, command-line flags, paths. */
import fs from 'node:fs';
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

/**
 * The V8 flags of a benched server child: those of `npm start` (package.json), so that a bench measures the heap that
 * ships; BENCH_SERVER_NODE_FLAGS replaces them (`BENCH_SERVER_NODE_FLAGS=' '` for plain node, or extra flags such as
 * `--cpu-prof` to profile the server).
 */
export function serverNodeFlags(): string[] {
  const given = process.env.BENCH_SERVER_NODE_FLAGS;
  if (given !== undefined) return given.split(' ').filter(Boolean);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  return pkg.scripts.start.split(' ').filter((w) => w.startsWith('--'));
}
