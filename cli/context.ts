/**
 * What every command handler gets: the I/O streams, the exit code, and `withDeps` (config → Deps → work → close).
 * Handlers stay thin: they parse nothing themselves, call server/ functions and print.
 */
import fs from 'node:fs';
import os from 'node:os';
import { loadConfig, configPathFrom, envOverrides, type Config, type ConfigOverride } from '../server/config.ts';
import type { BuildOptions, Deps } from '../server/deps.ts';
import { Events } from '../core/events.ts';
import { ConfigError } from '../core/errors.ts';
import type { AuditEntry } from '../server/store/audit_repo.ts';

export interface CliWriter {
  write(chunk: string): unknown;
  /** True for a terminal (colour codes and terminal QR codes only then). */
  readonly isTTY?: boolean;
}
export interface CliIo {
  readonly stdout: CliWriter;
  readonly stderr: CliWriter;
  /** Read only by `--password-stdin` / `--pin-stdin`. */
  readonly stdin: AsyncIterable<string | Buffer | Uint8Array>;
  /** Environment for PUSHGATE_CONFIG and the PUSHGATE_* overrides (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Ends a long-running command (`audit tail --follow`); the process uses Ctrl-C instead. */
  readonly signal?: AbortSignal;
}

/** A failure the user caused (bad input, not found, duplicate): printed as one line, exit 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

type AuditDraft = Omit<AuditEntry, 'time' | 'admin' | 'client' | 'success' | 'outcome'>;

export interface GlobalArgs {
  config?: string;
  _?: Array<string | number>;
}

/**
 * What a command may do to the installation its config points at. `create`: make the database (and its schema) and
 * the secrets key when missing — only `serve`, `db migrate`, `admin add`, `token enroll`, `apikey create`. `existing`
 * (every other command): both must already exist, else the command says what is missing and where, and exits 1.
 */
export type Access = 'create' | 'existing';

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
  config(argv: GlobalArgs, extra?: readonly ConfigOverride[]): Config;
  /** The config file in use (--config, else PUSHGATE_CONFIG), or null for the built-in defaults. */
  configFile(argv: GlobalArgs): string | null;
  /**
   * Builds Deps from the config, runs `fn`, always closes. `access` (default `existing`) says whether a missing
   * database or key may be created; pending migrations are applied unless `migrate: false`.
   */
  withDeps<T>(argv: GlobalArgs, fn: (deps: Deps) => Promise<T>, opts?: { migrate?: boolean; access?: Access }): Promise<T>;
  /** Writes an audit row for an admin action done from the CLI (`admin` = `cli:<os user>`). */
  audit(deps: Deps, entry: Omit<AuditEntry, 'time' | 'admin' | 'client'>): Promise<void>;
  /** Runs an admin action and audits it, success or failure; `complete` adds what only the result knows (a new serial). */
  audited<T>(deps: Deps, entry: AuditDraft, fn: () => Promise<T>, complete?: (result: T) => Partial<AuditDraft>): Promise<T>;
}

export function createContext(io: CliIo, report: (err: unknown) => void, buildOptions: BuildOptions = {}): CliContext {
  const env = io.env ?? process.env;
  const operator = `cli:${safeUserName()}`;
  const ctx: CliContext = {
    io,
    exitCode: 0,
    buildOptions,
    out: (line = '') => {
      io.stdout.write(line + '\n');
    },
    warn: (line) => {
      io.stderr.write(line + '\n');
    },
    async run(fn) {
      try {
        await fn();
      } catch (err) {
        report(err);
        ctx.exitCode = 1;
      }
    },
    configFile: (argv) => argv.config ?? configPathFrom(undefined, env),
    config: (argv, extra = []) => loadConfig(ctx.configFile(argv), [...envOverrides(env), ...extra]),
    async withDeps(argv, fn, opts = {}) {
      const config = ctx.config(argv);
      const access = opts.access ?? 'existing';
      const migrate = opts.migrate ?? buildOptions.migrate ?? true;
      const missingError = (missing: Array<[setting: string, text: string]>) =>
        new ConfigError([
          ...missing.map(([setting, text]) => {
            const viaEnv = envOverrides(env).find((o) => o.path === setting);
            return `${text} (${setting}${viaEnv ? ` from ${viaEnv.source}` : ''}), config: ${fromText(ctx.configFile(argv))}`;
          }),
          adviceText(commandName(argv)),
        ]);
      // Loaded on use: `pushgate --help` never loads the database drivers and argon2.
      const { allActions, buildDeps, collectPolicies } = await import('../server/deps.ts');
      if (access === 'existing') {
        collectPolicies(config, allActions()); // a broken config is the first thing to hear about
        const missing = missingFiles(config, buildOptions);
        if (missing.length) throw missingError(missing);
      }
      const events = buildOptions.events ?? new Events();
      const off = events.on('config.warning', ({ message }) => ctx.warn(`warning: ${message}`));
      let deps: Deps;
      try {
        deps = await buildDeps(config, { ...buildOptions, events, migrate: access === 'create' && migrate });
      } catch (err) {
        off();
        throw err;
      }
      try {
        if (access === 'existing') {
          if (!(await deps.store.knex.schema.hasTable(MIGRATIONS_TABLE))) {
            throw missingError([['database.url', `no pushgate tables in the database ${redactUrl(config.database.url)}`]]);
          }
          if (migrate) await deps.store.migrate(); // an upgraded installation: the schema the code expects
        }
        return await fn(deps);
      } finally {
        off();
        await deps.close();
      }
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
        await ctx.audit(deps, {
          ...entry,
          success: false,
          outcome: 'ERROR',
          info: { ...entry.info, error: err instanceof Error ? err.message : String(err) },
        });
        throw err;
      }
    },
  };
  return ctx;
}

/** The knex migrations table (server/store/migrate.ts): present once an installation's schema was created. */
const MIGRATIONS_TABLE = 'pushgate_migrations';

const redactUrl = (url: string): string => url.replace(/\/\/[^@/]*@/, '//***@');

function commandName(argv: GlobalArgs): string {
  const words = (argv._ ?? []).map(String);
  return words.length ? `pushgate ${words.join(' ')}` : 'this command';
}

/** Where the settings came from. */
const fromText = (file: string | null): string => file ?? `none (built-in defaults, relative to ${process.cwd()})`;

/** What to do about a missing database or key. */
const adviceText = (command: string): string =>
  `${command} creates neither a database nor a key: check --config / PUSHGATE_CONFIG (and PUSHGATE_DATABASE_URL, `
  + 'PUSHGATE_KEY_FILE); a new installation starts with `pushgate db migrate` (or `pushgate serve`).';

/** What an `existing`-access command finds missing before it opens anything: the key file, an SQLite file. */
function missingFiles(config: Config, opts: BuildOptions): Array<[setting: string, text: string]> {
  const missing: Array<[string, string]> = [];
  const url = config.database.url;
  if (url.startsWith('sqlite:') && url !== 'sqlite::memory:' && !fs.existsSync(url.slice('sqlite:'.length))) {
    missing.push(['database.url', `no database at ${url.slice('sqlite:'.length)}`]);
  }
  if (!opts.key && !fs.existsSync(config.secrets.keyFile))
    missing.push(['secrets.key_file', `no secrets key at ${config.secrets.keyFile}`]);
  return missing;
}

function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
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
