import type { Knex } from 'knex';
import { guarded, num, rowCount } from './rows.ts';

export interface AdminRecord {
  id: number;
  username: string;
  passwordHash: string;
  createdAt: number;
}

export interface AdminsRepo {
  insert(username: string, passwordHash: string, now: number): Promise<void>;
  byName(username: string): Promise<AdminRecord | null>;
  list(): Promise<AdminRecord[]>;
  delete(username: string): Promise<boolean>;
  setPassword(username: string, passwordHash: string): Promise<boolean>;
}

export function createAdminsRepo(knex: Knex): AdminsRepo {
  const toRecord = (r: Record<string, unknown>): AdminRecord => ({
    id: num(r.id),
    username: String(r.username),
    passwordHash: String(r.password_hash),
    createdAt: num(r.created_at),
  });
  return guarded<AdminsRepo>({
    async insert(username, passwordHash, now) {
      await knex('admins').insert({ username, password_hash: passwordHash, created_at: now });
    },
    async byName(username) {
      const r = await knex('admins').where({ username }).first();
      return r ? toRecord(r) : null;
    },
    async list() {
      return (await knex('admins').orderBy('username')).map(toRecord);
    },
    async delete(username) {
      return rowCount(await knex('admins').where({ username }).delete()) > 0;
    },
    async setPassword(username, passwordHash) {
      return rowCount(await knex('admins').where({ username }).update({ password_hash: passwordHash })) > 0;
    },
  });
}
