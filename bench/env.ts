/** Settings of the benchmarks from environment variables. */

/** An integer setting (`_` separators allowed, e.g. 1_000_000); a bad value ends the run with exit code 2. */
export function envInt(name: string, def: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) { process.stderr.write(`${name} must be an integer >= ${min}\n`); process.exit(2); }
  return n;
}
