/**
 * Applications (issue 15): services that sign their requests with an HMAC secret. The secret is stored encrypted
 * (secrets.ts, AES-256-GCM), not hashed: verifying an HMAC needs the secret itself. The replay cache is a table with
 * a primary key on (application, nonce): the INSERT is the check, one statement that decides on every node at once.
 */
import type { Knex } from 'knex';
import type { SecretBox } from './secrets.ts';
import { bool, guarded, num, rowCount } from './rows.ts';

export interface ApplicationRecord {
  readonly id: string;
  readonly name: string;
  /** Only users of this realm (push API, approvals, signed /validate requests); null: any realm. */
  readonly realm: string | null;
  readonly active: boolean;
  readonly webhookUrl: string | null;
  /** Event names the webhook receives; null: all. */
  readonly webhookEvents: readonly string[] | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NewApplication {
  id: string;
  name: string;
  realm: string | null;
  secret: string;
  webhookUrl: string | null;
  webhookEvents: readonly string[] | null;
  now: number;
}

export interface AppsRepo {
  insert(a: NewApplication): Promise<boolean>;
  list(): Promise<ApplicationRecord[]>;
  byName(name: string): Promise<ApplicationRecord | null>;
  byId(id: string): Promise<ApplicationRecord | null>;
  /** The decrypted secret of an application (null: unknown id). */
  secretOf(id: string): Promise<string | null>;
  /** The record and its decrypted secret in one read (request verification). */
  withSecret(id: string): Promise<{ app: ApplicationRecord; secret: string } | null>;
  setSecret(id: string, secret: string, now: number): Promise<boolean>;
  setActive(id: string, active: boolean, now: number): Promise<boolean>;
  setWebhook(id: string, url: string | null, events: readonly string[] | null, now: number): Promise<boolean>;
  delete(id: string): Promise<boolean>;
  /**
   * Remembers a nonce until `expiresAt`: true when it is new, false when this application used it before (a replay).
   * One INSERT against the primary key; a duplicate key is the answer, on every node and database.
   */
  useNonce(appId: string, nonce: string, expiresAt: number): Promise<boolean>;
  deleteExpiredNonces(now: number): Promise<number>;
}

/** A duplicate-key error of SQLite, PostgreSQL or MariaDB/MySQL. */
export function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  const code = String(e?.code ?? '');
  return code === '23505' || code === 'ER_DUP_ENTRY' || e?.errno === 1062 || code.startsWith('SQLITE_CONSTRAINT');
}

export function createAppsRepo(knex: Knex, box: SecretBox): AppsRepo {
  // biome-ignore lint/suspicious/noExplicitAny: a raw knex row
  const toRecord = (r: Record<string, any>): ApplicationRecord => ({
    id: String(r.id),
    name: String(r.name),
    realm: r.realm ?? null,
    active: bool(r.active),
    webhookUrl: r.webhook_url ?? null,
    webhookEvents: r.webhook_events ? String(r.webhook_events).split(',') : null,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  });
  const repo: AppsRepo = {
    async insert(a) {
      try {
        await knex('applications').insert({
          id: a.id,
          name: a.name,
          realm: a.realm,
          secret: box.encrypt(a.secret),
          active: true,
          webhook_url: a.webhookUrl,
          webhook_events: a.webhookEvents?.join(',') ?? null,
          created_at: a.now,
          updated_at: a.now,
        });
        return true;
      } catch (err) {
        if (isDuplicateKey(err)) return false;
        throw err;
      }
    },
    async list() {
      return (await knex('applications').orderBy('name')).map(toRecord);
    },
    async byName(name) {
      const r = await knex('applications').where({ name }).first();
      return r ? toRecord(r) : null;
    },
    async byId(id) {
      const r = await knex('applications').where({ id }).first();
      return r ? toRecord(r) : null;
    },
    async secretOf(id) {
      const r = await knex('applications').where({ id }).select('secret').first();
      return r ? box.decrypt(String(r.secret)) : null;
    },
    async withSecret(id) {
      const r = await knex('applications').where({ id }).first();
      return r ? { app: toRecord(r), secret: box.decrypt(String(r.secret)) } : null;
    },
    async setSecret(id, secret, now) {
      return (
        rowCount(
          await knex('applications')
            .where({ id })
            .update({ secret: box.encrypt(secret), updated_at: now }),
        ) > 0
      );
    },
    async setActive(id, active, now) {
      return rowCount(await knex('applications').where({ id }).update({ active, updated_at: now })) > 0;
    },
    async setWebhook(id, url, events, now) {
      return (
        rowCount(
          await knex('applications')
            .where({ id })
            .update({ webhook_url: url, webhook_events: events?.join(',') ?? null, updated_at: now }),
        ) > 0
      );
    },
    async delete(id) {
      await knex('app_nonces').where({ app_id: id }).delete();
      return rowCount(await knex('applications').where({ id }).delete()) > 0;
    },
    async useNonce(appId, nonce, expiresAt) {
      try {
        await knex('app_nonces').insert({ app_id: appId, nonce, expires_at: expiresAt });
        return true;
      } catch (err) {
        if (isDuplicateKey(err)) return false;
        throw err;
      }
    },
    async deleteExpiredNonces(now) {
      // One statement: the table holds at most the nonces of one replay window.
      return rowCount(await knex('app_nonces').where('expires_at', '<=', now).delete());
    },
  };
  return guarded(repo);
}
