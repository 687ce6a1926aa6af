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
    '011_applications',
    '012_audit_application',
  ]);
});
