/**
 * Realms and user stores. A `file` store is a YAML list of users (loaded once; an unreadable file is a start-up
 * error); an `any` store accepts every user name (the IdP already checked the user) and has no passwords.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import type { RealmConfig } from '../config.ts';
import { ConfigError, UserError, missingParameter } from '../../core/errors.ts';
import type { PinHasher } from './pin.ts';

import type { PinJob } from './pin.ts';

export interface UserInfo {
  readonly name: string;
  readonly realm: string;
  readonly resolver: string;
  readonly givenname?: string;
  readonly surname?: string;
  readonly email?: string;
  readonly phone?: string;
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
  /** The user store: `file` (its path in `path`) or `any`. */
  readonly kind: 'file' | 'any';
  readonly path?: string;
  lookup(username: string): UserInfo | null;
  /** Every user of the store, in file order; an `any` store cannot list its users and answers []. */
  listUsers(): UserInfo[];
  /**
   * Checks the user store password (for `otppin: userstore` and `passthru`). False when the store has none.
   * `job` is the PIN queue's key and abort signal (see PinHasher.verify).
   */
  verifyPassword(username: string, password: string, job?: PinJob): Promise<boolean>;
}

export interface Realms {
  readonly defaultRealm: string;
  get(name: string): Realm | undefined;
  names(): string[];
  /**
   * Trims the name, splits `user@realm` or `realm\\user` when that realm exists and no realm was given, falls back
   * to the default realm.
   * Throws UserError (904) for an unknown realm or user — before any token is touched.
   */
  resolveUser(user: string, realm: string | undefined): UserInfo;
}

export function createRealms(configs: readonly RealmConfig[], hasher: PinHasher): Realms {
  const realms = new Map<string, Realm>();
  for (const rc of configs) {
    if (rc.users.type === 'any') {
      realms.set(rc.name, {
        name: rc.name,
        resolver: `${rc.name}_any`,
        kind: 'any',
        lookup: (username) => ({ name: username, realm: rc.name, resolver: `${rc.name}_any` }),
        listUsers: () => [],
        verifyPassword: async () => false,
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
      lookup(username) {
        const u = users.get(username);
        return u ? info(u) : null;
      },
      listUsers: () => [...users.values()].map(info),
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
    resolveUser(user, realm) {
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
      const info = r?.lookup(name) ?? null;
      if (!info) throw new UserError(`User <${name}@${realmName}> does not exist.`);
      return info;
    },
  };
}
