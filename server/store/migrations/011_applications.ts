/**
 * 011: applications (issue 15) — services that sign their requests with an HMAC secret (stored encrypted: the server
 * needs the secret itself to verify a signature), the replay cache of their nonces (unique per application: the
 * insert is the check, on every node), their pushes and approval chains (one row per push; an approval's steps are
 * pushes with `approval_id` and `step`), and the webhook outbox with its delivery log.
 * MariaDB/MySQL: exact comparison (binary NO PAD collation), as every other table (002).
 */
import type { Knex } from 'knex';
import { COLUMN_LIMITS } from '../limits.ts';
import { exactCollation } from './002_exact_identifiers.ts';

const L = COLUMN_LIMITS;
const TABLES = ['applications', 'app_nonces', 'approvals', 'app_pushes', 'webhook_outbox', 'webhook_attempts'];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('applications', (t) => {
    t.string('id', L.applications.id).primary();
    t.string('name', L.applications.name).notNullable().unique({ indexName: 'applications_name_uq' });
    t.string('realm', L.applications.realm).nullable();
    t.text('secret').notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('webhook_url', L.applications.webhook_url).nullable();
    t.string('webhook_events', L.applications.webhook_events).nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });
  await knex.schema.createTable('app_nonces', (t) => {
    t.string('app_id', L.app_nonces.app_id).notNullable();
    t.string('nonce', L.app_nonces.nonce).notNullable();
    t.bigInteger('expires_at').notNullable();
    t.primary(['app_id', 'nonce']);
    t.index(['expires_at'], 'app_nonces_expires_idx');
  });
  await knex.schema.createTable('approvals', (t) => {
    t.string('id', L.approvals.id).primary();
    t.string('app_id', L.approvals.app_id).notNullable();
    t.string('mode', L.approvals.mode).notNullable();
    t.string('status', L.approvals.status).notNullable();
    t.text('question').notNullable();
    t.string('title', L.approvals.title).notNullable();
    t.integer('timeout_ms').notNullable();
    t.integer('steps').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('finished_at').nullable();
    t.index(['app_id', 'created_at'], 'approvals_app_idx');
  });
  await knex.schema.createTable('app_pushes', (t) => {
    const w = L.app_pushes;
    t.string('id', w.id).primary();
    t.string('app_id', w.app_id).notNullable();
    t.string('approval_id', w.approval_id).nullable();
    t.integer('step').nullable();
    t.string('username', w.username).notNullable();
    t.string('realm', w.realm).notNullable();
    t.string('transaction_id', w.transaction_id).nullable();
    t.string('status', w.status).notNullable();
    t.text('question').notNullable();
    t.string('title', w.title).notNullable();
    t.text('context').nullable();
    t.string('matching', 16).nullable();
    t.integer('timeout_ms').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('sent_at').nullable();
    t.bigInteger('expires_at').nullable();
    t.bigInteger('answered_at').nullable();
    t.string('answered_serial', w.answered_serial).nullable();
    t.unique(['approval_id', 'step'], { indexName: 'app_pushes_step_uq' });
    t.index(['transaction_id'], 'app_pushes_tid_idx');
    t.index(['app_id', 'created_at'], 'app_pushes_app_idx');
    t.index(['status', 'expires_at'], 'app_pushes_open_idx');
  });
  await knex.schema.createTable('webhook_outbox', (t) => {
    const w = L.webhook_outbox;
    t.increments('id').primary();
    t.string('app_id', w.app_id).notNullable();
    t.string('event', w.event).notNullable();
    t.string('event_id', w.event_id).notNullable().unique({ indexName: 'webhook_outbox_event_uq' });
    t.text('body').notNullable();
    t.string('status', w.status).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.bigInteger('next_at').notNullable();
    t.bigInteger('lease_until').notNullable().defaultTo(0);
    t.string('lease_owner', w.lease_owner).nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('delivered_at').nullable();
    t.integer('last_status').nullable();
    t.string('last_error', w.last_error).nullable();
    t.index(['status', 'next_at'], 'webhook_outbox_due_idx');
    t.index(['app_id', 'id'], 'webhook_outbox_app_idx');
  });
  await knex.schema.createTable('webhook_attempts', (t) => {
    t.increments('id').primary();
    t.integer('outbox_id').notNullable();
    t.string('app_id', L.webhook_attempts.app_id).notNullable();
    t.integer('attempt').notNullable();
    t.bigInteger('at').notNullable();
    t.integer('status').nullable();
    t.string('error', L.webhook_attempts.error).nullable();
    t.integer('ms').notNullable();
    t.index(['outbox_id'], 'webhook_attempts_outbox_idx');
  });
  const kind = String(knex.client.driverName);
  if (kind === 'mysql2' || kind === 'mysql') {
    const collation = await exactCollation(knex);
    for (const table of TABLES) await knex.raw(`ALTER TABLE ?? CONVERT TO CHARACTER SET utf8mb4 COLLATE ${collation}`, [table]);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [...TABLES].reverse()) await knex.schema.dropTableIfExists(table);
}
