/**
 * 010: the self-service page's sessions (server/auth/selfservice.ts). One row per browser session, keyed by the
 * SHA-256 of the opaque random id in the cookie (a database read yields no usable cookie). `stage` is how far the
 * login got: `password` (the realm password was right; the second factor is outstanding), `full` (logged in), or
 * `first` (password only, by the first-enrollment policy, for a user without any token); `enrolled` lists (comma
separated) the serials a `first` session enrolled — the only tokens it may change. Idle and absolute expiry
 * are computed from `last_seen_at` and `created_at` on the injected clock; the cleanup deletes expired rows.
 * MariaDB/MySQL: exact comparison (binary NO PAD collation), as every other table (002).
 */
import type { Knex } from 'knex';
import { COLUMN_LIMITS } from '../limits.ts';
import { exactCollation } from './002_exact_identifiers.ts';

const client = (knex: Knex): string => String(knex.client.driverName);

export async function up(knex: Knex): Promise<void> {
  const w = COLUMN_LIMITS.selfservice_sessions;
  await knex.schema.createTable('selfservice_sessions', (t) => {
    t.string('id_hash', w.id_hash).primary();
    t.string('realm', w.realm).notNullable();
    t.string('username', w.username).notNullable();
    t.string('stage', w.stage).notNullable();
    t.string('csrf', w.csrf).notNullable();
    t.string('transaction_id', w.transaction_id).nullable();
    t.string('enrolled', w.enrolled).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_seen_at').notNullable();
    t.index(['last_seen_at'], 'selfservice_sessions_seen_idx');
    t.index(['realm', 'username'], 'selfservice_sessions_user_idx');
  });
  const kind = client(knex);
  if (kind === 'mysql2' || kind === 'mysql') {
    await knex.raw(`ALTER TABLE selfservice_sessions CONVERT TO CHARACTER SET utf8mb4 COLLATE ${await exactCollation(knex)}`);
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('selfservice_sessions');
}
