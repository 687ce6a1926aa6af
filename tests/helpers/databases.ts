/**
 * Which database the suite runs on: PUSHGATE_TEST_DB = sqlite (default) | postgres | mysql.
 * For PostgreSQL and MariaDB every world gets its own database, dropped afterwards: an empty one
 * (`freshDatabaseUrl`, for the tests of the migrations themselves) or one that already has the whole schema
 * (`migratedDatabaseUrl`, for everything else), copied from a template that the real migrations built once.
 *
 * Why a template: running the eight migrations took ~0.5-1 s per world on PostgreSQL and 2.5-4 s on MariaDB (every
 * DDL statement commits and syncs there), for some 600 worlds per suite. The copy is the schema the migrations
 * made, not a second description of it: PostgreSQL copies the template database (CREATE DATABASE … TEMPLATE);
 * MariaDB has no such thing, so each table's own `SHOW CREATE TABLE` (columns, collations, indexes, foreign keys,
 * as mysqldump copies a schema) is replayed into the new database and the migration bookkeeping rows are copied,
 * so that the server's migrateLatest at start finds the database up to date. The template's name carries a hash of
 * the migration sources, so a changed migration builds a new template (old ones are left alone: other checkouts on
 * the same database servers may still be copying theirs; each is a few empty tables). The migrations still run for real: once per
 * template here, and on an empty database in tests/server/store/migrations.test.ts and tests/cli/admin_db.test.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';
import pg from 'pg';
import { createKnex } from '../../server/store/knex.ts';
import { migrateLatest } from '../../server/store/migrate.ts';

export const TEST_DB = (process.env.PUSHGATE_TEST_DB ?? 'sqlite') as 'sqlite' | 'postgres' | 'mysql';
export const PG_ADMIN_URL = process.env.PUSHGATE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_ADMIN_URL = process.env.PUSHGATE_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

interface TestDatabase {
  url: string;
  drop: () => Promise<void>;
}

const adminPg = () => knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
const adminMysql = () => knexFactory({ client: 'mysql2', connection: MYSQL_ADMIN_URL, pool: { min: 0, max: 1 } });
const urlOf = (admin: string, name: string) => admin.replace(/\/[^/]*$/, `/${name}`);

/**
 * PostgreSQL's CREATE/DROP DATABASE of the worlds go through one admin connection per test process, opened on
 * first use and kept: opening one per statement (a backend forked, a knex pool built and destroyed) cost ~0.3 s of
 * wall time each on a loaded 2-core machine, twice per world, against ~0.2 s for the copy itself (measured
 * 2026-12-02). Its socket is unref'd, so it never keeps a test process alive once ava is done with it; statements on
 * it run one after another (pg queues them), the socket ref'd while one is on it, which the server would do anyway (CREATE DATABASE … TEMPLATE takes
 * a lock on the template). The connection budget (db_budget.ts) counts an admin connection per test at once; this is
 * at most one per process.
 */
let pgAdminClient: Promise<pg.Client> | undefined;
function pgAdmin(): Promise<pg.Client> {
  pgAdminClient ??= (async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL, application_name: 'pushgate-test-admin' });
    c.on('error', () => {
      pgAdminClient = undefined; // a lost connection: the next statement opens a new one
    });
    c.on('end', () => {
      pgAdminClient = undefined;
    });
    await c.connect();
    socketOf(c).unref();
    return c;
  })().catch((err: unknown) => {
    pgAdminClient = undefined;
    throw err;
  });
  return pgAdminClient;
}
const socketOf = (c: pg.Client) => (c as unknown as { connection: { stream: { ref(): void; unref(): void } } }).connection.stream;
let pgAdminBusy = 0;
/** One statement on the admin connection, which keeps the process alive (ref'd) while any statement is on it. */
async function pgAdminQuery(sql: string): Promise<void> {
  const c = await pgAdmin();
  if (pgAdminBusy++ === 0) socketOf(c).ref();
  try {
    await c.query(sql);
  } finally {
    if (--pgAdminBusy === 0) socketOf(c).unref();
  }
}

function dropper(kind: 'postgres' | 'mysql', name: string): () => Promise<void> {
  return async () => {
    if (kind === 'postgres') return pgAdminQuery(`drop database if exists ${name} with (force)`);
    const a = adminMysql();
    try {
      await a.raw(`drop database if exists ${name}`);
    } finally {
      await a.destroy();
    }
  };
}

/** An empty database (no tables) of `kind`. */
export async function freshDatabaseUrl(kind = TEST_DB): Promise<TestDatabase> {
  if (kind === 'sqlite') return { url: 'sqlite::memory:', drop: async () => {} };
  const name = `pushgate_test_${crypto.randomBytes(6).toString('hex')}`;
  if (kind === 'postgres') await pgAdminQuery(`create database ${name}`);
  else {
    const admin = adminMysql();
    try {
      await admin.raw(`create database ${name} character set utf8mb4`);
    } finally {
      await admin.destroy();
    }
  }
  return { url: urlOf(kind === 'postgres' ? PG_ADMIN_URL : MYSQL_ADMIN_URL, name), drop: dropper(kind, name) };
}

/**
 * A database of `kind` with the whole schema at the newest migration (see the file comment). SQLite: an in-memory
 * database, which the server migrates itself when it opens it (a few ms).
 */
export async function migratedDatabaseUrl(kind = TEST_DB): Promise<TestDatabase> {
  if (kind === 'sqlite') return freshDatabaseUrl(kind);
  const template = await ensureTemplate(kind);
  const name = `pushgate_test_${crypto.randomBytes(6).toString('hex')}`;
  if (kind === 'postgres') {
    await pgAdminQuery(`create database ${name} template ${template}`);
    return { url: urlOf(PG_ADMIN_URL, name), drop: dropper(kind, name) };
  }
  const schema = await mysqlSchema(template);
  const admin = adminMysql();
  try {
    await admin.raw(`create database ${name} character set utf8mb4`);
    // One connection (pool max 1): `use` makes the tables' unqualified foreign key references point into the copy.
    await admin.raw(`use ${name}`);
    await admin.raw('set foreign_key_checks = 0');
    for (const t of schema) await admin.raw(t.create);
    for (const t of schema) if (t.hasRows) await admin.raw(`insert into ${name}.?? select * from ${template}.??`, [t.table, t.table]);
  } catch (err) {
    await admin.raw(`drop database if exists ${name}`).catch(() => {});
    throw err;
  } finally {
    await admin.destroy();
  }
  return { url: urlOf(MYSQL_ADMIN_URL, name), drop: dropper(kind, name) };
}

/** Hash of everything the schema is made from: the migrations, their list, the column widths. */
function migrationsHash(): string {
  const store = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../server/store');
  const files = [
    path.join(store, 'migrate.ts'),
    path.join(store, 'limits.ts'),
    ...fs
      .readdirSync(path.join(store, 'migrations'))
      .sort()
      .map((f) => path.join(store, 'migrations', f)),
  ];
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(fs.readFileSync(f)).update('\0');
  return h.digest('hex').slice(0, 16);
}

const templates = new Map<string, Promise<string>>();

/** The template database's name for `kind`, built (under a server-side lock, so concurrent test files build it once) when missing. */
function ensureTemplate(kind: 'postgres' | 'mysql'): Promise<string> {
  let p = templates.get(kind);
  if (!p) {
    p = (kind === 'postgres' ? pgTemplate() : mysqlTemplate()).catch((err: unknown) => {
      templates.delete(kind);
      throw err;
    });
    templates.set(kind, p);
  }
  return p;
}

const LOCK = 'pushgate_test_template';

async function pgTemplate(): Promise<string> {
  const name = `pushgate_tpl_${migrationsHash()}`;
  const admin = adminPg();
  try {
    await admin.raw('select pg_advisory_lock(hashtext(?))', [LOCK]);
    try {
      const found = await admin.raw('select 1 from pg_database where datname = ?', [name]);
      if (found.rows.length > 0) return name;
      // Built under another name and renamed when complete: a build that died halfway leaves no template behind.
      const building = `${name}_building`;
      await admin.raw(`drop database if exists ${building} with (force)`);
      await admin.raw(`create database ${building}`);
      const knex = createKnex(urlOf(PG_ADMIN_URL, building), { poolMax: 1 });
      try {
        await migrateLatest(knex);
      } finally {
        await knex.destroy();
      }
      await admin.raw(`alter database ${building} rename to ${name}`);
      // Nobody connects to it (not even autovacuum, except against wraparound): a connection would make every
      // CREATE DATABASE … TEMPLATE fail ("being accessed by other users"), as template0 is kept.
      await admin.raw(`alter database ${name} with allow_connections false`);
      return name;
    } finally {
      await admin.raw('select pg_advisory_unlock(hashtext(?))', [LOCK]);
    }
  } finally {
    await admin.destroy();
  }
}

async function mysqlTemplate(): Promise<string> {
  const name = `pushgate_tpl_${migrationsHash()}`;
  const admin = adminMysql();
  try {
    const [[{ got }]] = (await admin.raw('select get_lock(?, 600) as got', [LOCK])) as [[{ got: number }]];
    if (got !== 1) throw new Error('could not take the test template lock on MariaDB');
    try {
      // The real migrations, on the template: nothing to do when it is complete. MariaDB's DDL is not transactional:
      // a build that died halfway leaves a migration half done, which fails when run again — then build it anew.
      const migrate = async () => {
        await admin.raw(`create database if not exists ${name} character set utf8mb4`);
        const knex = createKnex(urlOf(MYSQL_ADMIN_URL, name), { poolMax: 1 });
        try {
          await migrateLatest(knex);
        } finally {
          await knex.destroy();
        }
      };
      try {
        await migrate();
      } catch {
        await admin.raw(`drop database if exists ${name}`);
        await migrate();
      }
      return name;
    } finally {
      await admin.raw('select release_lock(?)', [LOCK]);
    }
  } finally {
    await admin.destroy();
  }
}

interface MysqlTable {
  table: string;
  create: string;
  hasRows: boolean;
}
let mysqlSchemaCache: Promise<MysqlTable[]> | undefined;

/** The template's tables as `SHOW CREATE TABLE` gives them, and whether they have rows to copy (read once per process). */
function mysqlSchema(template: string): Promise<MysqlTable[]> {
  mysqlSchemaCache ??= (async () => {
    const admin = adminMysql();
    try {
      const [tables] = (await admin.raw(
        "select table_name as t from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
        [template],
      )) as [Array<{ t: string }>];
      const out: MysqlTable[] = [];
      for (const { t } of tables) {
        const [[created]] = (await admin.raw(`show create table ${template}.??`, [t])) as [[Record<string, string>]];
        const [[count]] = (await admin.raw(`select count(*) as n from ${template}.??`, [t])) as [[{ n: number }]];
        out.push({ table: t, create: created['Create Table']!, hasRows: Number(count.n) > 0 });
      }
      if (!out.some((x) => x.table === 'pushgate_migrations')) throw new Error(`template ${template} has no migration table`);
      return out;
    } finally {
      await admin.destroy();
    }
  })().catch((err: unknown) => {
    mysqlSchemaCache = undefined;
    throw err;
  });
  return mysqlSchemaCache;
}
