/**
 * 002: one behaviour on every database.
 *
 * 1. Exact comparison on MariaDB/MySQL. Their default collations (utf8mb4_general_ci, utf8mb4_0900_ai_ci) match
 *    without case and accents (`ÀLÍCE` = `alice`, `hotp1` = `HOTP1`) and utf8mb4_bin still ignores trailing spaces
 *    (PAD SPACE: `alice` = `alice `). SQLite and PostgreSQL compare exactly. Every table is converted to utf8mb4 with
 *    a binary NO PAD collation: MariaDB's utf8mb4_nopad_bin, MySQL 8's utf8mb4_0900_bin (utf8mb4_bin where neither
 *    exists). All string columns of these tables hold identifiers, hashes, states or JSON: none wants a fuzzy match.
 * 2. transaction_id is 64 characters wide (challenges and audit), the width /validate/check accepts (eduMFA's
 *    transaction ids are 20 digits, its column is 64 wide); it was 32.
 *
 * Fresh databases run 001 and then this, exactly like an existing one, so both end up identical. SQLite: nothing
 * to do (exact comparison; declared widths are not enforced).
 */
import type { Knex } from 'knex';
import { COLUMN_LIMITS } from '../limits.ts';

const TABLES = ['tokens', 'challenges', 'admins', 'audit'] as const;

/** The binary NO PAD collation of this server (falls back to utf8mb4_bin on servers without one). */
export async function exactCollation(knex: Knex): Promise<string> {
  for (const name of ['utf8mb4_nopad_bin', 'utf8mb4_0900_bin']) {
    const [rows] = (await knex.raw('SHOW COLLATION WHERE Collation = ?', [name])) as [unknown[]];
    if (rows.length) return name;
  }
  return 'utf8mb4_bin';
}

const client = (knex: Knex): string => String(knex.client.driverName);

export async function up(knex: Knex): Promise<void> {
  const kind = client(knex);
  const tx = COLUMN_LIMITS.challenges.transaction_id;
  if (kind === 'pg') {
    await knex.raw(`ALTER TABLE challenges ALTER COLUMN transaction_id TYPE varchar(${tx})`);
    await knex.raw(`ALTER TABLE audit ALTER COLUMN transaction_id TYPE varchar(${COLUMN_LIMITS.audit.transaction_id})`);
  } else if (kind === 'mysql2' || kind === 'mysql') {
    const collation = await exactCollation(knex);
    for (const table of TABLES) await knex.raw(`ALTER TABLE ?? CONVERT TO CHARACTER SET utf8mb4 COLLATE ${collation}`, [table]);
    await knex.raw(`ALTER TABLE challenges MODIFY transaction_id varchar(${tx}) NOT NULL`);
    await knex.raw(`ALTER TABLE audit MODIFY transaction_id varchar(${COLUMN_LIMITS.audit.transaction_id}) NULL`);
  }
}

export async function down(knex: Knex): Promise<void> {
  const kind = client(knex);
  if (kind === 'pg') {
    await knex.raw('ALTER TABLE challenges ALTER COLUMN transaction_id TYPE varchar(32)');
    await knex.raw('ALTER TABLE audit ALTER COLUMN transaction_id TYPE varchar(32)');
  } else if (kind === 'mysql2' || kind === 'mysql') {
    for (const table of TABLES) await knex.raw('ALTER TABLE ?? CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci', [table]);
    await knex.raw('ALTER TABLE challenges MODIFY transaction_id varchar(32) NOT NULL');
    await knex.raw('ALTER TABLE audit MODIFY transaction_id varchar(32) NULL');
  }
}
