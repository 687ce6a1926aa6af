/** Schema migrations as an in-code knex migration source (works the same under tsx and from a build). */
import type { Knex } from 'knex';
import * as m001 from './migrations/001_initial.ts';
import * as m002 from './migrations/002_exact_identifiers.ts';
import * as m003 from './migrations/003_backoff.ts';
import * as m004 from './migrations/004_audit_node.ts';
import * as m005 from './migrations/005_token_admin.ts';
import * as m006 from './migrations/006_audit_request_id.ts';
import * as m007 from './migrations/007_push_fatigue.ts';
import * as m008 from './migrations/008_login_addresses.ts';
import * as m010 from './migrations/010_selfservice_sessions.ts';
import * as m011 from './migrations/011_applications.ts';
import * as m012 from './migrations/012_audit_application.ts';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}
const MIGRATIONS: ReadonlyArray<[string, Migration]> = [
  ['001_initial', m001],
  ['002_exact_identifiers', m002],
  ['003_backoff', m003],
  ['004_audit_node', m004],
  ['005_token_admin', m005],
  ['006_audit_request_id', m006],
  ['007_push_fatigue', m007],
  ['008_login_addresses', m008],
  ['010_selfservice_sessions', m010],
  ['011_applications', m011],
  ['012_audit_application', m012],
];

const source: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => [...MIGRATIONS],
  getMigrationName: (m) => m[0],
  getMigration: async (m) => m[1],
};

const config = { migrationSource: source, tableName: 'pushgate_migrations' };

export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, names] = (await knex.migrate.latest(config)) as [number, string[]];
  return names;
}

export async function migrateRollbackAll(knex: Knex): Promise<void> {
  await knex.migrate.rollback(config, true);
}
