/**
 * 005: what the admin API sets on a token (issue 10, "the admin API that existing tools call").
 * - count_window / sync_window: eduMFA's per-token windows (`POST /token/set`). NULL = not set: the checks use
 *   the policy (`hotp_window`, `totp_window`) or their defaults, and a resync looks 1000 values ahead.
 * - revoked: `POST /token/revoke` — disabled for good; no statement but a delete changes a revoked token.
 * - valid_from / valid_until: the validity period (`validity_period_start` / `_end`, epoch ms; NULL = open).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.integer('count_window').nullable();
    t.integer('sync_window').nullable();
    t.boolean('revoked').notNullable().defaultTo(false);
    t.bigInteger('valid_from').nullable();
    t.bigInteger('valid_until').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('valid_until');
    t.dropColumn('valid_from');
    t.dropColumn('revoked');
    t.dropColumn('sync_window');
    t.dropColumn('count_window');
  });
}
