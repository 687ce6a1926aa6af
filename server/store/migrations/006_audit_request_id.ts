import type { Knex } from 'knex';

/** The request id (X-Request-Id) of the request that wrote each audit row: the same id is on its log lines. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (t) => {
    t.string('request_id', 64).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (t) => {
    t.dropColumn('request_id');
  });
}
