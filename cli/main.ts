/**
 * The `pushgate` command line. Exit codes: 0 ok, 1 failure (one line on stderr; a ConfigError prints each problem
 * on its own line), 2 usage. `runCli` runs in-process (tests); `main` is the process entry (bin/pushgate.js, and
 * `node --import tsx cli/main.ts …`).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { BuildOptions } from '../server/deps.ts';
import { ConfigError, DatabaseError, MfaError } from '../core/errors.ts';
import { createContext, type CliIo, type GlobalArgs } from './context.ts';
import { serveCommand } from './commands/serve.ts';
import { dbCommands } from './commands/db.ts';
import { adminCommands } from './commands/admin.ts';
import { tokenCommands } from './commands/token.ts';
import { policyCommands } from './commands/policy.ts';
import { auditCommands } from './commands/audit.ts';
import { apikeyCommands } from './commands/apikey.ts';
import { importCommands } from './commands/import.ts';
import { appCommands } from './commands/app.ts';
import { deviceCommands } from './commands/device.ts';

export type { CliIo } from './context.ts';

const GROUPS = ['serve', 'db', 'admin', 'token', 'policy', 'audit', 'import', 'device'];

/** Bad command line: exit 2. Thrown from yargs' fail hook so that no handler runs after a failed check. */
class UsageError extends Error {}

function helpHint(argv: readonly string[]): string {
  const words = argv.filter((a, i) => !a.startsWith('-') && !(i > 0 && /^--config$/.test(argv[i - 1]!)));
  return words[0] && GROUPS.includes(words[0]) ? `pushgate ${words[0]} --help` : 'pushgate --help';
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();

/** The stderr lines for a failed command. */
export function errorLines(err: unknown): string[] {
  if (err instanceof ConfigError) return err.problems.map((p) => `error: ${oneLine(p)}`);
  if (err instanceof MfaError) {
    // Operators see the driver's reason that API clients never see.
    const where = err instanceof DatabaseError && err.database ? `database ${err.database}: ` : '';
    const cause = err.status >= 500 && err.cause instanceof Error ? ` (${where}${err.cause.message})` : '';
    return [`error: ${oneLine(err.wireMessage + cause)}`];
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return [`error: ${oneLine(err.message)}${code && !err.message.includes(code) ? ` (${code})` : ''}`];
  }
  return [`error: ${oneLine(String(err))}`];
}

/** The version in package.json: one level up from cli/ in the sources, two from build/cli/ in the build. */
function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pushgate') return pkg.version ?? 'unknown';
    } catch {
      /* try the next */
    }
  }
  return 'unknown';
}

/** Runs one command line (without `node` and the script) and returns the exit code. Never exits the process. */
export async function runCli(argv: string[], io: CliIo, opts: { buildOptions?: BuildOptions } = {}): Promise<number> {
  const ctx = createContext(
    io,
    (err) => {
      for (const line of errorLines(err)) ctx.warn(line);
    },
    opts.buildOptions,
  );
  let y: Argv<GlobalArgs> = yargs(argv)
    .scriptName('pushgate')
    .usage('$0 <command> [options]')
    .option('config', { type: 'string', global: true, describe: 'Config file (default: $PUSHGATE_CONFIG, else built-in defaults)' });
  for (const add of [
    serveCommand,
    dbCommands,
    adminCommands,
    apikeyCommands,
    appCommands,
    tokenCommands,
    policyCommands,
    auditCommands,
    importCommands,
    deviceCommands,
  ])
    y = add(y, ctx);
  y = y
    .strict()
    .demandCommand(1, 'Specify a command')
    .recommendCommands()
    .showHelpOnFail(false)
    .exitProcess(false)
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .wrap(Math.min(110, y.terminalWidth() || 110));

  let output = '';
  try {
    await y
      .fail((msg: string | undefined, err: Error | undefined) => {
        throw new UsageError(msg || err?.message || 'invalid usage');
      })
      .parseAsync(argv, {}, (_err: Error | undefined, _parsed: unknown, out: string) => {
        output = out;
      });
  } catch (err) {
    if (!(err instanceof UsageError)) {
      for (const line of errorLines(err)) ctx.warn(line);
      return 1;
    }
    io.stderr.write(`pushgate: ${err.message.trim()}\nRun '${helpHint(argv)}' for usage.\n`);
    return 2;
  }
  if (output) io.stdout.write(output.trimEnd() + '\n');
  return ctx.exitCode;
}

/** Process entry: sets `process.exitCode` and lets the event loop drain (stdout is flushed, nothing is cut off). */
export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  process.exitCode = await runCli(argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
}

const invokedDirectly = (() => {
  try {
    return !!process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();
if (invokedDirectly) await main();
