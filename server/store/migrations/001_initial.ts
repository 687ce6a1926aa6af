import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tokens', (t) => {
    t.increments('id').primary();
    t.string('serial', 40).notNullable().unique();
    t.string('type', 30).notNullable();
    t.string('username', 255).nullable();
    t.string('realm', 120).nullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('rollout_state', 20).notNullable().defaultTo('');
    t.string('pin_hash', 255).nullable();
    t.integer('otp_len').notNullable().defaultTo(6);
    t.bigInteger('counter').notNullable().defaultTo(0);
    t.integer('fail_count').notNullable().defaultTo(0);
    t.integer('max_fail').notNullable().defaultTo(10);
    t.string('description', 255).notNullable().defaultTo('');
    t.text('info').notNullable();
    t.text('secrets_enc').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.bigInteger('last_auth_at').nullable();
    t.bigInteger('rollout_expires_at').nullable();
    t.index(['username', 'realm'], 'tokens_owner_idx');
    t.index(['rollout_expires_at'], 'tokens_rollout_expiry_idx');
  });
  await knex.schema.createTable('challenges', (t) => {
    t.increments('id').primary();
    t.string('transaction_id', 32).notNullable();
    t.string('serial', 40).notNullable();
    t.integer('token_id').unsigned().notNullable().references('id').inTable('tokens').onDelete('CASCADE');
    t.string('nonce', 64).notNullable();
    t.string('status', 16).notNullable().defaultTo('pending');
    t.string('session', 30).notNullable().defaultTo('');
    t.text('data').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').notNullable();
    t.bigInteger('answered_at').nullable();
    t.index(['transaction_id'], 'challenges_tx_idx');
    t.index(['serial', 'nonce'], 'challenges_serial_nonce_idx');
    t.index(['expires_at'], 'challenges_expiry_idx');
  });
  await knex.schema.createTable('admins', (t) => {
    t.increments('id').primary();
    t.string('username', 120).notNullable().unique();
    t.string('password_hash', 255).notNullable();
    t.bigInteger('created_at').notNullable();
  });
  await knex.schema.createTable('audit', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('time').notNullable();
    t.string('action', 60).notNullable();
    t.boolean('success').notNullable();
    t.string('outcome', 20).notNullable().defaultTo('');
    t.string('username', 255).nullable();
    t.string('realm', 120).nullable();
    t.string('serials', 1000).notNullable().defaultTo('');
    t.string('client', 64).nullable();
    t.string('admin', 120).nullable();
    t.string('transaction_id', 32).nullable();
    t.string('policies', 1000).notNullable().defaultTo('');
    t.text('info').notNullable();
    t.index(['time'], 'audit_time_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('audit');
  await knex.schema.dropTableIfExists('admins');
  await knex.schema.dropTableIfExists('challenges');
  await knex.schema.dropTableIfExists('tokens');
}
