/**
 * Migration 002_exact_identifiers on a database that ran only 001 (an existing installation): its rows survive,
 * it then compares exactly, and its schema is identical to a fresh database's (information_schema: type, width,
 * nullability, default, collation of every column). Runs on every database (on SQLite 002 changes nothing).
 */
import test from 'ava';
import type { Knex } from 'knex';
import { createKnex } from '../../../server/store/knex.ts';
import { migrateLatest, migrateRollbackAll } from '../../../server/store/migrate.ts';
import * as m001 from '../../../server/store/migrations/001_initial.ts';
import { freshDatabaseUrl, TEST_DB } from '../../helpers/databases.ts';
import { world } from '../../helpers/kit.ts';

/** Runs only 001, under the same migration table name as the server, as an installation before 002 did. */
async function migrate001(knex: Knex): Promise<void> {
  await knex.migrate.latest({
    tableName: 'pushgate_migrations',
    migrationSource: { getMigrations: async () => ['001_initial'], getMigrationName: (m: string) => m, getMigration: async () => m001 },
  });
}

async function database(t: { teardown(fn: () => Promise<void>): void }): Promise<Knex> {
  const db = await freshDatabaseUrl();
  const knex = createKnex(db.url, { poolMax: 1 });
  t.teardown(async () => {
    await knex.destroy();
    await db.drop();
  });
  return knex;
}

async function columns(knex: Knex): Promise<unknown[]> {
  if (TEST_DB === 'sqlite') {
    const out: unknown[] = [];
    for (const table of ['tokens', 'challenges', 'admins', 'audit'])
      out.push(...((await knex.raw(`PRAGMA table_info(${table})`)) as unknown[]));
    return out;
  }
  const schema = TEST_DB === 'postgres' ? knex.raw('current_schema()') : knex.raw('database()');
  const rows = await knex('information_schema.columns')
    .where('table_schema', schema)
    .whereIn('table_name', ['tokens', 'challenges', 'admins', 'audit'])
    .select(
      'table_name',
      'column_name',
      'data_type',
      'character_maximum_length',
      'is_nullable',
      'column_default',
      'collation_name',
      'ordinal_position',
    )
    .orderBy(['table_name', 'ordinal_position']);
  return rows.map((r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v])));
}

test('an existing database (001 only, with rows) migrates to exactly the fresh schema and keeps its rows', async (t) => {
  const fresh = await database(t);
  t.deepEqual(await migrateLatest(fresh), [
    '001_initial',
    '002_exact_identifiers',
    '003_backoff',
    '004_audit_node',
    '005_token_admin',
    '006_audit_request_id',
    '007_push_fatigue',
    '008_login_addresses',
    '010_selfservice_sessions',
    '011_applications',
    '012_audit_application',
  ]);

  const old = await database(t);
  await migrate001(old);
  await old('tokens').insert({
    serial: 'HOTP1',
    type: 'hotp',
    username: 'Ålice',
    realm: 'default',
    info: '{}',
    created_at: 1,
    updated_at: 1,
  });
  await old('audit').insert({
    time: 1,
    action: 'X',
    success: true,
    outcome: 'OK',
    username: 'Ålice',
    transaction_id: '1'.repeat(32),
    info: '{}',
  });
  if (TEST_DB === 'mysql') t.is((await old('tokens').where({ serial: 'hotp1' })).length, 1, 'before 002: MariaDB matches without case');
  t.deepEqual(await migrateLatest(old), [
    '002_exact_identifiers',
    '003_backoff',
    '004_audit_node',
    '005_token_admin',
    '006_audit_request_id',
    '007_push_fatigue',
    '008_login_addresses',
    '010_selfservice_sessions',
    '011_applications',
    '012_audit_application',
  ]);

  t.deepEqual(await columns(old), await columns(fresh));
  t.is((await old('tokens').where({ serial: 'HOTP1' }).first()).username, 'Ålice');
  t.is((await old('tokens').where({ serial: 'hotp1' })).length, 0);
  t.is((await old('tokens').where({ username: 'ålice' })).length, 0);
  t.is((await old('audit').first()).transaction_id, '1'.repeat(32));
  await old('audit').insert({ time: 2, action: 'X', success: true, outcome: 'OK', transaction_id: '2'.repeat(64), info: '{}' });
  t.is((await old('audit').where({ transaction_id: '2'.repeat(64) })).length, 1);
});

test('002 rolls back (down) and forward again', async (t) => {
  const knex = await database(t);
  await migrateLatest(knex);
  await migrateRollbackAll(knex);
  t.deepEqual(await migrateLatest(knex), [
    '001_initial',
    '002_exact_identifiers',
    '003_backoff',
    '004_audit_node',
    '005_token_admin',
    '006_audit_request_id',
    '007_push_fatigue',
    '008_login_addresses',
    '010_selfservice_sessions',
    '011_applications',
    '012_audit_application',
  ]);
});

/**
 * Everything a database's schema is made of, comparable across two databases (the schema's own name left out):
 * every table, column (type, width, nullability, default, collation), index, foreign key, trigger and view.
 */
async function schemaOf(knex: Knex): Promise<Record<string, unknown>> {
  if (TEST_DB === 'sqlite') {
    return { master: await knex('sqlite_master').select('type', 'name', 'tbl_name', 'sql').orderBy(['type', 'name']) };
  }
  const lower = (rows: Array<Record<string, unknown>>) =>
    rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v])));
  if (TEST_DB === 'postgres') {
    const q = async (sql: string) => lower(((await knex.raw(sql)) as { rows: Array<Record<string, unknown>> }).rows);
    return {
      columns: await q(
        `select table_name, column_name, data_type, character_maximum_length, is_nullable, column_default, collation_name, ordinal_position
         from information_schema.columns where table_schema = current_schema() order by table_name, ordinal_position`,
      ),
      indexes: await q('select tablename, indexname, indexdef from pg_indexes where schemaname = current_schema() order by indexname'),
      constraints: await q(
        `select c.conrelid::regclass::text as tbl, c.conname, pg_get_constraintdef(c.oid) as def from pg_constraint c
         join pg_namespace n on n.oid = c.connamespace where n.nspname = current_schema() order by tbl, c.conname`,
      ),
      triggers: await q('select event_object_table, trigger_name, action_statement from information_schema.triggers order by trigger_name'),
      views: await q('select table_name, view_definition from information_schema.views where table_schema = current_schema()'),
    };
  }
  const q = async (sql: string) => lower(((await knex.raw(sql)) as [Array<Record<string, unknown>>])[0]);
  return {
    tables: await q(
      `select table_name, table_type, engine, table_collation, create_options from information_schema.tables
       where table_schema = database() order by table_name`,
    ),
    columns: await q(
      `select table_name, column_name, column_type, is_nullable, column_default, collation_name, extra, ordinal_position
       from information_schema.columns where table_schema = database() order by table_name, ordinal_position`,
    ),
    indexes: await q(
      `select table_name, index_name, non_unique, seq_in_index, column_name, sub_part, index_type from information_schema.statistics
       where table_schema = database() order by table_name, index_name, seq_in_index`,
    ),
    foreignKeys: await q(
      `select k.table_name, k.constraint_name, k.column_name, k.referenced_table_schema = database() as same_schema,
         k.referenced_table_name, k.referenced_column_name, r.update_rule, r.delete_rule
       from information_schema.key_column_usage k join information_schema.referential_constraints r
         on r.constraint_schema = k.constraint_schema and r.constraint_name = k.constraint_name
       where k.table_schema = database() order by k.table_name, k.constraint_name, k.ordinal_position`,
    ),
    triggers: await q('select trigger_name, event_object_table from information_schema.triggers where trigger_schema = database()'),
    views: await q('select table_name from information_schema.views where table_schema = database()'),
  };
}

test("a test world's database (on PostgreSQL/MariaDB copied from the migrated template, tests/helpers/databases.ts) has exactly the schema the migrations make", async (t) => {
  const fresh = await database(t);
  await migrateLatest(fresh);
  const w = await world(t, { noHttp: true });
  const copy = w.deps.store.knex;
  t.deepEqual(await migrateLatest(copy), [], 'the copy is up to date: the server applied nothing at start');
  t.deepEqual(
    await copy('pushgate_migrations').orderBy('id').pluck('name'),
    await fresh('pushgate_migrations').orderBy('id').pluck('name'),
  );
  const [a, b] = [await schemaOf(copy), await schemaOf(fresh)];
  t.true(((a.columns ?? a.master) as unknown[]).length > 20, 'the schema was read');
  t.deepEqual(a, b);
  if (TEST_DB === 'mysql') t.true((a.foreignKeys as unknown[]).length > 0, 'foreign keys were compared');
});

test('dialect checks read knex.client.driverName: on SQLite knex.client.config.client is the statement-caching client class', async (t) => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const root = path.resolve(import.meta.dirname, '../../../server');
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && fs.readFileSync(p, 'utf8').includes('client.config.client')) offenders.push(path.relative(root, p));
    }
  };
  walk(root);
  t.deepEqual(offenders, []);
  const w = await world(t);
  t.true(['better-sqlite3', 'pg', 'mysql2'].includes(String(w.deps.store.knex.client.driverName)));
});
