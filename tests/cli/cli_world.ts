/**
 * A temp directory with a config file (SQLite file database — or a fresh database of PUSHGATE_TEST_DB —, key file,
 * cheap argon2) and `run(...)`, which calls runCli in-process with captured stdout/stderr and a given stdin.
 * The installation (schema and key) is created up front unless `init: false`; the CLI sees only the environment
 * given in `env` (never the developer's PUSHGATE_* variables).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import YAML from 'yaml';
import { runCli } from '../../cli/main.ts';
import type { BuildOptions } from '../../server/deps.ts';
import { loadConfig } from '../../server/config.ts';
import { buildDeps, type Deps } from '../../server/deps.ts';
import { freshDatabaseUrl, migratedDatabaseUrl, TEST_DB } from '../helpers/databases.ts';
import { leaseWorld, WORLD_POOL_MAX } from '../helpers/db_budget.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Environment of the command (default: none at all). */
  env?: Record<string, string>;
  /** Ends `audit tail --follow`. */
  signal?: AbortSignal;
  /** stdout is a terminal. */
  tty?: boolean;
  buildOptions?: BuildOptions;
  /** Leave out `--config FILE` (default: given). */
  noConfig?: boolean;
  /** Receives stdout as it is written (for --follow). */
  onStdout?: (all: string) => void;
}

export interface WorldOptions {
  /** Create the database schema and the key file before the test (default true). */
  init?: boolean;
  /** Whose world this is, for the connection budget: a test holding two CLI worlds at once passes its `t` to both. */
  owner?: object;
}

export interface CliWorld {
  tmp: string;
  configPath: string;
  run(args: readonly string[], stdin?: string, opts?: RunOptions): Promise<CliResult>;
  /** Runs, asserts exit 0 and parses stdout as JSON. */
  json<T = any>(args: readonly string[], stdin?: string): Promise<T>;
  /** Deps on the same config (closed at teardown) for checks the CLI does not print. */
  deps(): Promise<Deps>;
  write(name: string, content: string): string;
  close(): Promise<void>;
}

/**
 * For the connection budget (tests/helpers/db_budget.ts) a CLI world is one world (its CLI commands run one at a
 * time, each opening and closing its own Deps) plus one more for each `deps()`; a test holding two CLI worlds at
 * once passes its `t` as `owner` to both.
 */
export async function createCliWorld(config: Record<string, unknown> = {}, wopts: WorldOptions = {}): Promise<CliWorld> {
  const owner = wopts.owner ?? {};
  const releases = [await leaseWorld(owner)];
  try {
    return await buildCliWorld(config, wopts, owner, releases);
  } catch (err) {
    for (const r of releases) r();
    throw err;
  }
}

async function buildCliWorld(
  config: Record<string, unknown>,
  wopts: WorldOptions,
  owner: object,
  releases: Array<() => void>,
): Promise<CliWorld> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-cli-'));
  // With init, a database that already has the schema (copied from the migrated template; the CLI's own start still
  // runs the migrations, which find nothing to do); without, an empty one.
  const db =
    TEST_DB === 'sqlite'
      ? { url: `sqlite:${path.join(tmp, 'pushgate.db')}`, drop: async () => {} }
      : await ((wopts.init ?? true) ? migratedDatabaseUrl() : freshDatabaseUrl());
  const configPath = path.join(tmp, 'pushgate.yaml');
  fs.writeFileSync(
    configPath,
    YAML.stringify({
      database: { url: db.url, pool_max: WORLD_POOL_MAX },
      secrets: { key_file: path.join(tmp, 'pushgate.key') },
      pin: { memory_kib: 1024, time_cost: 1 },
      server: { public_url: 'https://mfa.example.org' },
      ...config,
    }),
  );
  const opened: Deps[] = [];
  const world: CliWorld = {
    tmp,
    configPath,
    async run(args, stdin = '', o = {}) {
      let stdout = '';
      let stderr = '';
      const code = await runCli(
        o.noConfig ? [...args] : ['--config', configPath, ...args],
        {
          stdout: {
            write: (s: string) => {
              stdout += s;
              o.onStdout?.(stdout);
            },
            isTTY: o.tty ?? false,
          },
          stderr: {
            write: (s: string) => {
              stderr += s;
            },
          },
          stdin: Readable.from(stdin ? [Buffer.from(stdin)] : []),
          env: o.env ?? {},
          signal: o.signal,
        },
        { buildOptions: o.buildOptions },
      );
      return { code, stdout, stderr };
    },
    async json(args, stdin) {
      const r = await world.run(args, stdin);
      if (r.code !== 0) throw new Error(`pushgate ${args.join(' ')} → ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async deps() {
      const release = await leaseWorld(owner);
      releases.push(release);
      const d = await buildDeps(loadConfig(configPath)).catch((err: unknown) => {
        release();
        throw err;
      });
      opened.push(d);
      return d;
    },
    write(name, content) {
      const p = path.join(tmp, name);
      fs.writeFileSync(p, content);
      return p;
    },
    async close() {
      try {
        for (const d of opened) await d.close();
        await db.drop();
        fs.rmSync(tmp, { recursive: true, force: true });
      } finally {
        for (const r of releases) r();
      }
    },
  };
  if (wopts.init ?? true) {
    try {
      await (await buildDeps(loadConfig(configPath))).close();
    } catch {
      /* a test of a broken config */
    }
  }
  return world;
}
