/**
 * A source database as eduMFA (and privacyIDEA, the same layout) creates it, for the import tests: the tables
 * `realm`, `token`, `tokeninfo`, `tokenowner`, `tokenrealm` with eduMFA's column names and types (written here from
 * the public schema facts, not copied), and tokens encrypted the way eduMFA encrypts them — AES-256-CBC with the
 * keys of a 96-byte key file (token key: OTP seeds and `@@` PINs; config key: tokeninfo of Type `password`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { createKnex } from '../../server/store/knex.ts';

export interface SourceKeyFile {
  readonly bytes: Buffer;
  readonly token: Buffer;
  readonly config: Buffer;
}

export function makeKeyFile(): SourceKeyFile {
  const bytes = crypto.randomBytes(96);
  return { bytes, token: bytes.subarray(0, 32), config: bytes.subarray(32, 64) };
}

/** AES-256-CBC. `legacy`: the older padding (hex of the value, 0x01 0x02, zeros) instead of PKCS#7. */
export function encrypt(key: Buffer, plain: Buffer, legacy = false): { iv: Buffer; data: Buffer } {
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv('aes-256-cbc', key, iv);
  if (!legacy) return { iv, data: Buffer.concat([c.update(plain), c.final()]) };
  c.setAutoPadding(false);
  let body = Buffer.concat([Buffer.from(plain.toString('hex'), 'latin1'), Buffer.from([1, 2])]);
  body = Buffer.concat([body, Buffer.alloc((16 - (body.length % 16)) % 16)]);
  return { iv, data: Buffer.concat([c.update(body), c.final()]) };
}

/** `ivhex:ciphertexthex`, as PINs (`@@` + this) and tokeninfo passwords are stored. */
export function sealed(key: Buffer, plain: string): string {
  const { iv, data } = encrypt(key, Buffer.from(plain, 'utf8'));
  return `${iv.toString('hex')}:${data.toString('hex')}`;
}

/** A password-protected key file: AES-256-CBC with SHA-256(password) over hex(keys) + 0x01 0x02 + zeros. */
export function encryptedKeyFile(keys: Buffer, password: string): string {
  const key = crypto.createHash('sha256').update(password).digest();
  const { iv, data } = encrypt(key, keys, true);
  return `${iv.toString('hex')}:${data.toString('hex')}`;
}

export interface SourceTokenSpec {
  serial: string;
  type: string;
  /** OTP seed (stored as its hex, encrypted with the token key). */
  seed?: Buffer;
  legacyPadding?: boolean;
  pinHash?: string;
  otplen?: number;
  count?: number;
  failcount?: number;
  maxfail?: number;
  active?: boolean;
  revoked?: boolean;
  rolloutState?: string;
  description?: string;
  info?: Record<string, string>;
  /** Tokeninfo stored with Type `password` (encrypted with the config key). */
  passwords?: Record<string, string>;
  owner?: { resolver: string; userId: string; realm: string };
  realms?: string[];
}

export class EduMfaSource {
  /** The source's URL for `--db`. */
  readonly url: string;
  readonly keys: SourceKeyFile;
  readonly knex: Knex;
  private readonly pg: boolean;
  private realmIds = new Map<string, number>();

  private constructor(url: string, keys: SourceKeyFile) {
    this.url = url;
    this.keys = keys;
    this.pg = url.startsWith('postgres');
    this.knex = url.startsWith('sqlite:')
      ? knexFactory({ client: 'better-sqlite3', connection: { filename: url.slice('sqlite:'.length) }, useNullAsDefault: true })
      : createKnex(url, { poolMax: 1 });
  }

  /**
   * A new source database with eduMFA's tables and a fresh key file (`dir/enckey`): SQLite in `dir`, or the (empty)
   * PostgreSQL/MariaDB database `url`.
   */
  static async create(dir: string, url = `sqlite:${path.join(dir, 'edumfa.sqlite')}`): Promise<EduMfaSource> {
    const s = new EduMfaSource(url, makeKeyFile());
    fs.writeFileSync(path.join(dir, 'enckey'), s.keys.bytes);
    const k = s.knex;
    // Foreign keys are unsigned only because knex's MariaDB `increments` is (eduMFA's are signed INT): the reader does not care.
    await k.schema.createTable('realm', (t) => {
      t.increments('id');
      t.string('name', 255).notNullable().unique();
      t.boolean('default').defaultTo(false);
      t.string('option', 40).defaultTo('');
    });
    await k.schema.createTable('token', (t) => {
      t.increments('id');
      t.string('description', 80).defaultTo('');
      t.string('serial', 40).notNullable().unique();
      t.string('tokentype', 30).defaultTo('HOTP');
      t.string('user_pin', 512).defaultTo('');
      t.string('user_pin_iv', 32).defaultTo('');
      t.string('so_pin', 512).defaultTo('');
      t.string('so_pin_iv', 32).defaultTo('');
      t.string('pin_seed', 32).defaultTo('');
      t.integer('otplen').defaultTo(6);
      t.string('pin_hash', 512).defaultTo('');
      t.string('key_enc', 2800).defaultTo('');
      t.string('key_iv', 32).defaultTo('');
      t.integer('maxfail').defaultTo(10);
      t.boolean('active').notNullable().defaultTo(true);
      t.boolean('revoked').defaultTo(false);
      t.boolean('locked').defaultTo(false);
      t.integer('failcount').defaultTo(0);
      t.integer('count').defaultTo(0);
      t.integer('count_window').defaultTo(10);
      t.integer('sync_window').defaultTo(1000);
      t.string('rollout_state', 10).defaultTo('');
    });
    await k.schema.createTable('tokeninfo', (t) => {
      t.increments('id');
      t.string('Key', 255).notNullable();
      t.text('Value').defaultTo('');
      t.string('Type', 100).defaultTo('');
      t.string('Description', 2000).defaultTo('');
      t.integer('token_id').unsigned().references('token.id');
      t.unique(['token_id', 'Key']);
    });
    await k.schema.createTable('tokenowner', (t) => {
      t.increments('id');
      t.integer('token_id').unsigned().references('token.id');
      t.string('resolver', 120).defaultTo('');
      t.string('user_id', 320).defaultTo('');
      t.integer('realm_id').unsigned().references('realm.id');
    });
    await k.schema.createTable('tokenrealm', (t) => {
      t.increments('id');
      t.integer('token_id').unsigned().references('token.id');
      t.integer('realm_id').unsigned().references('realm.id');
      t.unique(['token_id', 'realm_id']);
    });
    return s;
  }

  async realm(name: string): Promise<number> {
    let id = this.realmIds.get(name);
    if (id === undefined) {
      id = await this.insertId('realm', { name, default: this.realmIds.size === 0 });
      this.realmIds.set(name, id);
    }
    return id!;
  }

  async addToken(s: SourceTokenSpec): Promise<number> {
    const row: Record<string, unknown> = {
      serial: s.serial,
      tokentype: s.type,
      description: s.description ?? '',
      otplen: s.otplen ?? 6,
      pin_hash: s.pinHash ?? '',
      count: s.count ?? 0,
      failcount: s.failcount ?? 0,
      maxfail: s.maxfail ?? 10,
      active: s.active ?? true,
      revoked: s.revoked ?? false,
      locked: s.revoked ?? false,
      rollout_state: s.rolloutState ?? '',
    };
    if (s.seed) {
      // eduMFA encrypts the seed's hex digits, and stores cipher text and IV as hex.
      const { iv, data } = encrypt(this.keys.token, Buffer.from(s.seed.toString('hex'), 'latin1'), s.legacyPadding);
      row.key_enc = data.toString('hex');
      row.key_iv = iv.toString('hex');
    }
    const id = await this.insertId('token', row);
    const infos = [
      ...Object.entries(s.info ?? {}).map(([Key, Value]) => ({ token_id: id, Key, Value, Type: '' })),
      ...Object.entries(s.passwords ?? {}).map(([Key, v]) => ({ token_id: id, Key, Value: sealed(this.keys.config, v), Type: 'password' })),
    ];
    if (infos.length) await this.knex('tokeninfo').insert(infos);
    if (s.owner)
      await this.knex('tokenowner').insert({
        token_id: id,
        resolver: s.owner.resolver,
        user_id: s.owner.userId,
        realm_id: await this.realm(s.owner.realm),
      });
    for (const r of s.realms ?? (s.owner ? [s.owner.realm] : []))
      await this.knex('tokenrealm').insert({ token_id: id, realm_id: await this.realm(r) });
    return id;
  }

  private async insertId(table: string, row: Record<string, unknown>): Promise<number> {
    const q = this.knex(table).insert(row);
    const [r] = (await (this.pg ? q.returning('id') : q)) as Array<number | { id: number }>;
    return Number(typeof r === 'object' ? r.id : r);
  }

  close(): Promise<void> {
    return this.knex.destroy();
  }
}
