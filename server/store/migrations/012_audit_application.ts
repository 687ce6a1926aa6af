import type { Knex } from 'knex';
import { COLUMN_LIMITS } from '../limits.ts';

/** The application (its name) that signed the request (X-Pushgate-App, issue 15); null for unsigned requests. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (t) => {
    t.string('application', COLUMN_LIMITS.audit.application).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (t) => {
    t.dropColumn('application');
  });
}
