/**
 * 007: push-fatigue state (issue 11), in the database so that every node sees it.
 * - push_logins: the open push logins of a user — one row per (subject, slot), slot 0 … cap-1. A trigger claims a
 *   free slot with one conditional UPDATE (the row count decides), so two nodes can never hand out one slot twice.
 *   `client` is the end-user address the login came from ('' when no trusted proxy named one), `challenges` the
 *   CHALLENGE answer (JSON) handed again to a repeated trigger from the same address, `pass_mac` an HMAC (key
 *   derived from the secrets key, salted with the transaction id) of the pass that opened it: a repeat with the same
 *   pass from the same address is answered without hashing the PIN again.
 * - push_backoff: the back-off per (subject, client) and per subject (client ''): unanswered or declined pushes in a
 *   row (`strikes`, `last_strike_at`), declines in a row, and the decline lock (`locked_at`).
 * `subject` is the user key of server/auth/throttle.ts (`user:<realm>:<name>`, `serial:<serial>`, a hash when long).
 * Identifier columns compare exactly on MariaDB/MySQL (binary NO PAD collation, as migration 002).
 */
import type { Knex } from 'knex';
import { COLUMN_LIMITS } from '../limits.ts';
import { exactCollation } from './002_exact_identifiers.ts';

const L = COLUMN_LIMITS;

export async function up(knex: Knex): Promise<void> {
  const mysql = ['mysql', 'mysql2'].includes(String(knex.client.driverName));
  const collation = mysql ? await exactCollation(knex) : null;
  const exact = (c: Knex.ColumnBuilder) => (collation ? c.collate(collation) : c);
  await knex.schema.createTable('push_logins', (t) => {
    exact(t.string('subject', L.push_logins.subject).notNullable());
    t.integer('slot').notNullable();
    exact(t.string('client', L.push_logins.client).notNullable().defaultTo(''));
    exact(t.string('transaction_id', L.push_logins.transaction_id).nullable());
    t.text('challenges').nullable();
    t.string('pass_mac', 64).nullable();
    exact(t.string('state', L.push_logins.state).notNullable().defaultTo('free'));
    t.bigInteger('opened_at').notNullable().defaultTo(0);
    t.bigInteger('expires_at').notNullable().defaultTo(0);
    t.primary(['subject', 'slot']);
    t.index(['transaction_id']);
  });
  await knex.schema.createTable('push_backoff', (t) => {
    exact(t.string('subject', L.push_backoff.subject).notNullable());
    exact(t.string('client', L.push_backoff.client).notNullable().defaultTo(''));
    t.integer('strikes').notNullable().defaultTo(0);
    t.bigInteger('last_strike_at').notNullable().defaultTo(0);
    t.integer('declines').notNullable().defaultTo(0);
    t.bigInteger('last_decline_at').nullable();
    t.bigInteger('locked_at').nullable();
    t.bigInteger('updated_at').notNullable().defaultTo(0);
    t.primary(['subject', 'client']);
  });
  if (collation) {
    for (const table of ['push_logins', 'push_backoff'])
      await knex.raw(`ALTER TABLE ?? CONVERT TO CHARACTER SET utf8mb4 COLLATE ${collation}`, [table]);
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('push_backoff');
  await knex.schema.dropTableIfExists('push_logins');
}
