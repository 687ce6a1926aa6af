/**
 * Which database the suite runs on: PUSHGATE_TEST_DB = sqlite (default) | postgres | mysql.
 * For PostgreSQL and MariaDB every world gets its own fresh database, dropped afterwards.
 */
import crypto from 'node:crypto';
import knexFactory from 'knex';

export const TEST_DB = (process.env.PUSHGATE_TEST_DB ?? 'sqlite') as 'sqlite' | 'postgres' | 'mysql';
export const PG_ADMIN_URL = process.env.PUSHGATE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_ADMIN_URL = process.env.PUSHGATE_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export async function freshDatabaseUrl(kind = TEST_DB): Promise<{ url: string; drop: () => Promise<void> }> {
  if (kind === 'sqlite') return { url: 'sqlite::memory:', drop: async () => {} };
  const name = `pushgate_test_${crypto.randomBytes(6).toString('hex')}`;
  if (kind === 'postgres') {
    const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
    await admin.raw(`create database ${name}`);
    await admin.destroy();
    const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
    return {
      url,
      drop: async () => {
        const a = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
        await a.raw(`drop database if exists ${name} with (force)`);
        await a.destroy();
      },
    };
  }
  const admin = knexFactory({ client: 'mysql2', connection: MYSQL_ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name} character set utf8mb4`);
  await admin.destroy();
  return {
    url: MYSQL_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`),
    drop: async () => {
      const a = knexFactory({ client: 'mysql2', connection: MYSQL_ADMIN_URL, pool: { min: 0, max: 1 } });
      await a.raw(`drop database if exists ${name}`);
      await a.destroy();
    },
  };
}
