/**
 * Realms and user stores. A `file` store is a YAML list of users (loaded once; an unreadable file is a start-up
 * error); an `any` store accepts every user name (the IdP already checked the user) and has no passwords; an `ldap`
 * store asks a directory (server/auth/ldap_store.ts). Lookups are async for the directory's sake.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import type { RealmConfig } from '../config.ts';
import { ConfigError, UserError, missingParameter } from '../../core/errors.ts';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import { Events } from '../../core/events.ts';
import type { PinHasher } from './pin.ts';
import type { PinJob } from './pin.ts';
import { createLdapDirectory } from './ldap_store.ts';

export interface UserInfo {
  readonly name: string;
  readonly realm: string;
  readonly resolver: string;
  readonly givenname?: string;
  readonly surname?: string;
  readonly email?: string;
  readonly phone?: string;
  readonly mobile?: string;
  /** The store's own id of the user (LDAP: entryUUID, AD: objectGUID), when it has one. */
  readonly userid?: string;
}

interface FileUser {
  username: string;
  password_hash?: string;
  givenname?: string;
  surname?: string;
  email?: string;
  phone?: string;
}

export interface Realm {
  readonly name: string;
  readonly resolver: string;
  /** The user store: `file` (its path in `path`), `any` or `ldap`. */
  readonly kind: 'file' | 'any' | 'ldap';
  readonly path?: string;
  /** What GET /resolver/ shows of the store (no secret). */
  readonly data: Readonly<Record<string, unknown>>;
  /** The user, or null when the store has none of that name. Rejects with UserStoreError when the store is down. */
  lookup(username: string): Promise<UserInfo | null>;
  /** Every user of the store, in file order (LDAP: at most `size_limit`); an `any` store cannot list its users and answers []. */
  listUsers(): Promise<UserInfo[]>;
  /**
   * Checks the user store password (for `otppin: userstore` and `passthru`). False when the store has none.
   * `job` is the PIN queue's key and abort signal (see PinHasher.verify).
   */
  verifyPassword(username: string, password: string, job?: PinJob): Promise<boolean>;
  /** Readiness of a store that can fail (LDAP); absent for the others. */
  readonly check?: () => Promise<void>;
}

export interface Realms {
  readonly defaultRealm: string;
  get(name: string): Realm | undefined;
  names(): string[];
  /**
   * Trims the name, splits `user@realm` or `realm\\user` when that realm exists and no realm was given, falls back
   * to the default realm.
   * Throws UserError (904) for an unknown realm or user — before any token is touched; UserStoreError (503) when
   * the realm's store cannot answer.
   */
  resolveUser(user: string, realm: string | undefined): Promise<UserInfo>;
  /** Closes the stores' connections (LDAP). */
  close(): Promise<void>;
}

export interface RealmsEnv {
  readonly clock?: Clock;
  readonly events?: Events;
  /** Where an LDAP realm's `bind_password_env` is read (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function createRealms(configs: readonly RealmConfig[], hasher: PinHasher, renv: RealmsEnv = {}): Realms {
  const realms = new Map<string, Realm>();
  const closers: Array<() => Promise<void>> = [];
  for (const rc of configs) {
    if (rc.users.type === 'any') {
      realms.set(rc.name, {
        name: rc.name,
        resolver: `${rc.name}_any`,
        kind: 'any',
        data: {},
        lookup: async (username) => ({ name: username, realm: rc.name, resolver: `${rc.name}_any` }),
        listUsers: async () => [],
        verifyPassword: async () => false,
      });
      continue;
    }
    if (rc.users.type === 'ldap') {
      const cfg = rc.users;
      const resolver = `${rc.name}_ldap`;
      const dir = createLdapDirectory(rc.name, resolver, cfg, {
        clock: renv.clock ?? systemClock,
        events: renv.events ?? new Events(),
        env: renv.env ?? process.env,
        queue: hasher.limiter,
      });
      closers.push(() => dir.close());
      realms.set(rc.name, {
        name: rc.name,
        resolver,
        kind: 'ldap',
        // eduMFA's LDAP resolver keys, the password censored.
        data: {
          LDAPURI: cfg.urls.join(', '),
          LDAPBASE: cfg.baseDn,
          BINDDN: cfg.bindDn ?? '',
          BINDPW: cfg.bindPassword ? '__CENSORED__' : '',
          LOGINNAMEATTRIBUTE: cfg.loginAttributes.join(', '),
          LDAPSEARCHFILTER: cfg.searchFilter,
          UIDTYPE: cfg.attributes.uid ?? 'DN',
          START_TLS: cfg.startTls,
          TIMEOUT: cfg.timeoutMs / 1000,
          SIZELIMIT: cfg.sizeLimit,
          CACHE_TIMEOUT: cfg.cacheSeconds,
        },
        lookup: (username) => dir.lookup(username),
        listUsers: () => dir.listUsers(),
        verifyPassword: (username, password, job) => dir.verifyPassword(username, password, job),
        check: () => dir.check(),
      });
      continue;
    }
    const file = rc.users.path;
    let list: unknown;
    try {
      list = YAML.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError([`realms ${rc.name}: cannot read user file ${file}: ${(err as Error).message.split('\n')[0]}`]);
    }
    const entries = Array.isArray(list) ? list : (list as { users?: unknown })?.users;
    if (!Array.isArray(entries)) throw new ConfigError([`realms ${rc.name}: ${file} must be a YAML list of users`]);
    const users = new Map<string, FileUser>();
    entries.forEach((u, i) => {
      if (typeof u !== 'object' || u === null || typeof (u as FileUser).username !== 'string') {
        throw new ConfigError([`realms ${rc.name}: ${file}[${i}].username is required`]);
      }
      users.set((u as FileUser).username, u as FileUser);
    });
    const resolver = `${rc.name}_file`;
    const info = (u: FileUser): UserInfo => ({
      name: u.username,
      realm: rc.name,
      resolver,
      givenname: u.givenname,
      surname: u.surname,
      email: u.email,
      phone: u.phone,
    });
    realms.set(rc.name, {
      name: rc.name,
      resolver,
      kind: 'file',
      path: file,
      data: { fileName: file },
      async lookup(username) {
        const u = users.get(username);
        return u ? info(u) : null;
      },
      listUsers: async () => [...users.values()].map(info),
      async verifyPassword(username, password, job) {
        const u = users.get(username);
        if (!u?.password_hash) return false;
        return hasher.verify(u.password_hash, password, job);
      },
    });
  }
  const defaultRealm = configs.find((r) => r.default)?.name ?? configs[0]?.name ?? 'default';
  return {
    defaultRealm,
    get: (name) => realms.get(name),
    names: () => [...realms.keys()],
    async close() {
      await Promise.all(closers.map((c) => c()));
    },
    async resolveUser(user, realm) {
      let name = user.trim();
      let realmName = realm && realm.trim() !== '' ? realm.trim() : undefined;
      if (realmName === undefined && name.includes('@')) {
        const at = name.lastIndexOf('@');
        const maybe = name.slice(at + 1);
        if (realms.has(maybe)) {
          realmName = maybe;
          name = name.slice(0, at);
        }
      } else if (realmName === undefined && name.includes('\\')) {
        const slash = name.indexOf('\\');
        const maybe = name.slice(0, slash);
        if (realms.has(maybe)) {
          realmName = maybe;
          name = name.slice(slash + 1);
        }
      }
      if (name === '') throw missingParameter('user'); // ' ', '@corp': never the empty user
      realmName ??= defaultRealm;
      const r = realms.get(realmName);
      const info = r ? await r.lookup(name) : null;
      if (!info) throw new UserError(`User <${name}@${realmName}> does not exist.`);
      return info;
    },
  };
}
