/**
 * 008: where each user has logged in from (issue 11, number matching "on risk"). One row per user and end-user
 * address with the first and the last successful login from it; a push login from an address the user has no row
 * for is "from a new address". Bounded: each success touches one row (one upsert), a user keeps at most the newest
 * LOGIN_ADDRESSES_PER_USER rows (server/auth/push_risk.ts) and rows unused for LOGIN_ADDRESS_RETENTION_DAYS are
 * deleted by the cleanup. MariaDB/MySQL: exact comparison (binary NO PAD collation), as every other table (002).
 */
import type { Knex } from 'knex';
import { COLUMN_LIMITS } from '../limits.ts';
import { exactCollation } from './002_exact_identifiers.ts';

const client = (knex: Knex): string => String(knex.client.driverName);

export async function up(knex: Knex): Promise<void> {
  const w = COLUMN_LIMITS.login_addresses;
  await knex.schema.createTable('login_addresses', (t) => {
    t.increments('id').primary();
    t.string('realm', w.realm).notNullable();
    t.string('username', w.username).notNullable();
    t.string('address', w.address).notNullable();
    t.bigInteger('first_at').notNullable();
    t.bigInteger('last_at').notNullable();
    t.unique(['realm', 'username', 'address'], { indexName: 'login_addresses_user_address_uq' });
    t.index(['last_at'], 'login_addresses_last_idx');
  });
  const kind = client(knex);
  if (kind === 'mysql2' || kind === 'mysql') {
    await knex.raw(`ALTER TABLE login_addresses CONVERT TO CHARACTER SET utf8mb4 COLLATE ${await exactCollation(knex)}`);
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('login_addresses');
}
