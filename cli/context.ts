/**
 * What every command handler gets: the I/O streams, the exit code, and `withDeps` (config → Deps → work → close).
 * Handlers stay thin: they parse nothing themselves, call server/ functions and print.
 */
import os from 'node:os';
import { loadConfig, configPathFrom, type Config } from '../server/config.ts';
import { buildDeps, type BuildOptions, type Deps } from '../server/deps.ts';
import { Events } from '../server/events.ts';
import type { AuditEntry } from '../server/store/audit_repo.ts';

export interface CliWriter { write(chunk: string): unknown }
export interface CliIo {
  readonly stdout: CliWriter;
  readonly stderr: CliWriter;
  /** Read only by `--password-stdin` / `--pin-stdin`. */
  readonly stdin: AsyncIterable<string | Buffer | Uint8Array>;
}

/** A failure the user caused (bad input, not found, duplicate): printed as one line, exit 1. */
export class CliError extends Error {
  constructor(message: string) { super(message); this.name = 'CliError'; }
}

type AuditDraft = Omit<AuditEntry, 'time' | 'admin' | 'client' | 'success' | 'outcome'>;

export interface GlobalArgs { config?: string }

export interface CliContext {
  readonly io: CliIo;
  /** Exit code of the command that ran (0 unless it failed). */
  exitCode: number;
  /** Overrides for tests (clock, key). */
  readonly buildOptions: BuildOptions;
  out(line?: string): void;
  warn(line: string): void;
  /** Runs `fn`; any error is printed by `report` and sets the exit code to 1. */
  run(fn: () => Promise<void>): Promise<void>;
  config(argv: GlobalArgs): Config;
  /** Builds Deps from the config (migrating unless `migrate: false`), runs `fn`, always closes. */
  withDeps<T>(argv: GlobalArgs, fn: (deps: Deps) => Promise<T>, opts?: { migrate?: boolean }): Promise<T>;
  /** Writes an audit row for an admin action done from the CLI (`admin` = `cli:<os user>`). */
  audit(deps: Deps, entry: Omit<AuditEntry, 'time' | 'admin' | 'client'>): Promise<void>;
  /** Runs an admin action and audits it, success or failure; `complete` adds what only the result knows (a new serial). */
  audited<T>(deps: Deps, entry: AuditDraft, fn: () => Promise<T>, complete?: (result: T) => Partial<AuditDraft>): Promise<T>;
}

export function createContext(io: CliIo, report: (err: unknown) => void, buildOptions: BuildOptions = {}): CliContext {
  const operator = `cli:${safeUserName()}`;
  const ctx: CliContext = {
    io,
    exitCode: 0,
    buildOptions,
    out: (line = '') => { io.stdout.write(line + '\n'); },
    warn: (line) => { io.stderr.write(line + '\n'); },
    async run(fn) {
      try { await fn(); } catch (err) {
        report(err);
        ctx.exitCode = 1;
      }
    },
    config: (argv) => loadConfig(configPathFrom(argv.config)),
    async withDeps(argv, fn, opts = {}) {
      const config = ctx.config(argv);
      const events = buildOptions.events ?? new Events();
      events.on('config.warning', ({ message }) => ctx.warn(`warning: ${message}`));
      const deps = await buildDeps(config, { ...buildOptions, events, migrate: opts.migrate ?? buildOptions.migrate });
      try { return await fn(deps); } finally { await deps.close(); }
    },
    async audit(deps, entry) {
      try {
        await deps.store.audit.insert({ ...entry, time: deps.clock.now(), admin: operator, client: null });
      } catch (err) {
        ctx.warn(`warning: audit write failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
    async audited(deps, entry, fn, complete) {
      try {
        const result = await fn();
        await ctx.audit(deps, { ...entry, ...complete?.(result), success: true, outcome: 'OK' });
        return result;
      } catch (err) {
        await ctx.audit(deps, { ...entry, success: false, outcome: 'ERROR', info: { ...entry.info, error: err instanceof Error ? err.message : String(err) } });
        throw err;
      }
    },
  };
  return ctx;
}

function safeUserName(): string {
  try { return os.userInfo().username; } catch { return 'unknown'; }
}

/** Reads all of stdin and drops one trailing newline (`\n` or `\r\n`). */
export async function readSecret(io: CliIo, what: string): Promise<string> {
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of io.stdin) text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  text += decoder.decode();
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new CliError(`empty ${what} on stdin`);
  return secret;
}
