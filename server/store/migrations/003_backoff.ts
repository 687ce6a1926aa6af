/**
 * Back-off and lockout (issue 9):
 * - tokens.locked_at: when the fail counter reached max_fail (eduMFA's tokeninfo `failcounter_exceeded`), for
 *   `tokens.failcounter_clear_timeout`. Set by the increment that locks, cleared by every reset.
 * - rate_limits: the table of rate-limiter-flexible's database stores (RateLimiterPostgres / RateLimiterMySQL), in
 *   the library's own layout (key, points, expire — the column order matters: it inserts positionally). Created
 *   here rather than by the library so that it is versioned, rolled back and created by `pushgate db migrate`
 *   like every other table, and so that on MariaDB the key compares exactly (binary collation; the library's own
 *   table would use a case- and accent-insensitive one). Only on PostgreSQL and MariaDB/MySQL: SQLite is one node
 *   and keeps its counters in memory.
 */
import type { Knex } from 'knex';

const dialect = (knex: Knex): string => String(knex.client.driverName);

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.bigInteger('locked_at').nullable();
  });
  const d = dialect(knex);
  if (d === 'pg' || d === 'mysql2') {
    await knex.schema.createTable('rate_limits', (t) => {
      const key = t.string('key', 255).notNullable().primary();
      if (d === 'mysql2') key.collate('utf8mb4_bin');
      t.integer('points').notNullable().defaultTo(0);
      const expire = t.bigInteger('expire').nullable();
      if (d === 'mysql2') expire.unsigned();
    });
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_limits');
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('locked_at');
  });
}
