import type { Knex } from 'knex';

/** The node (server.node_name) that wrote each audit row: several nodes share one audit table. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (t) => {
    t.string('node', 120).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (t) => {
    t.dropColumn('node');
  });
}
