/**
 * Reads an eduMFA or privacyIDEA database (tables `token`, `tokeninfo`, `tokenowner`, `tokenrealm`, `realm`; the
 * same layout in both) and turns every token row into an import plan: the pushgate token to insert, or why it
 * cannot be. Read only: nothing is written to the source. Facts about the source's schema and encryption:
 * server/import/edumfa_crypto.ts and source_pins.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { createKnex, dialectOf } from '../store/knex.ts';
import { bool, num } from '../store/rows.ts';
import { COLUMN_LIMITS } from '../store/limits.ts';
import type { NewToken } from '../store/tokens_repo.ts';
import { OTP_DIGITS, OTP_HASHES } from '../../tokens/otp.ts';
import { parsePhoneKey } from '../../tokens/push/signatures.ts';
import { SECRET_KEYS } from '../../tokens/push/variants.ts';
import { POLL_ONLY } from '../../core/push_channel.ts';
import { decryptColonValue, decryptTokenKey, type SourceKeys } from './edumfa_crypto.ts';
import { classifyPin } from './source_pins.ts';
import type { ImportPlan } from './plan.ts';

export type SourceProduct = 'edumfa' | 'privacyidea';

/**
 * A database URL as pushgate writes it (`sqlite:PATH`, `postgres://…`, `mysql://…`) or as the source's config
 * file does (SQLAlchemy: `sqlite:////abs/path`, `postgresql+psycopg2://…`, `mysql+pymysql://…`).
 */
export function normaliseSourceUrl(url: string): string {
  const u = url.trim();
  const sqlite = /^sqlite:\/\/\/(.*)$/.exec(u);
  if (sqlite) return `sqlite:${sqlite[1]}`;
  const m = /^(postgresql|postgres|mysql|mariadb)(\+[a-z0-9_]+)?:\/\//i.exec(u);
  if (m) return `${m[1]!.toLowerCase() === 'postgresql' ? 'postgres' : m[1]!.toLowerCase()}://${u.slice(m[0].length)}`;
  return u;
}

/** A read-only connection to the source (SQLite: opened read-only, must exist). */
export function openSource(url: string): Knex {
  const normal = normaliseSourceUrl(url);
  if (dialectOf(normal) === 'sqlite') {
    const filename = normal.slice('sqlite:'.length);
    if (!fs.existsSync(filename)) throw new Error(`the source database ${filename} does not exist`);
    return knexFactory({
      client: 'better-sqlite3',
      connection: { filename, options: { readonly: true } },
      useNullAsDefault: true,
      pool: { min: 1, max: 1 },
    });
  }
  return createKnex(normal, { poolMax: 1 }); // one reader, one query at a time
}

export interface SourceToken {
  readonly row: Record<string, unknown>;
  readonly info: ReadonlyArray<{ key: string; value: string; type: string }>;
  readonly owners: ReadonlyArray<{ resolver: string; userId: string; realm: string | null }>;
  readonly realms: readonly string[];
}

/** The tables read (tokenowner exists since privacyIDEA 3.0; before, owners were columns of token). */
export const SOURCE_TABLES = ['realm', 'token', 'tokeninfo', 'tokenowner', 'tokenrealm'] as const;

const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));

/** Every token of the source with its info, owners and realms, in batches of `batch` rows by id. */
export async function* readSourceTokens(knex: Knex, batch = 500): AsyncGenerator<SourceToken[]> {
  for (const table of SOURCE_TABLES) {
    if (!(await knex.schema.hasTable(table)))
      throw new Error(`the source database has no table ${table}: not an eduMFA or privacyIDEA (3.0 or newer) database`);
  }
  const realmNames = new Map<number, string>();
  for (const r of await knex('realm').select('id', 'name')) realmNames.set(num(r.id), str(r.name));
  let after = -1;
  for (;;) {
    const rows = await knex('token').select('*').where('id', '>', after).orderBy('id').limit(batch);
    if (rows.length === 0) return;
    after = num(rows[rows.length - 1].id);
    const ids = rows.map((r) => num(r.id));
    const infos = await knex('tokeninfo').select('token_id', 'Key', 'Value', 'Type').whereIn('token_id', ids).orderBy('id');
    const owners = await knex('tokenowner').select('token_id', 'resolver', 'user_id', 'realm_id').whereIn('token_id', ids).orderBy('id');
    const trealms = await knex('tokenrealm').select('token_id', 'realm_id').whereIn('token_id', ids).orderBy('id');
    yield rows.map((row) => {
      const id = num(row.id);
      return {
        row,
        info: infos.filter((i) => num(i.token_id) === id).map((i) => ({ key: str(i.Key), value: str(i.Value), type: str(i.Type) })),
        owners: owners
          .filter((o) => num(o.token_id) === id)
          .map((o) => ({
            resolver: str(o.resolver),
            userId: str(o.user_id),
            realm: o.realm_id === null || o.realm_id === undefined ? null : (realmNames.get(num(o.realm_id)) ?? null),
          })),
        realms: trealms.filter((t) => num(t.token_id) === id).map((t) => realmNames.get(num(t.realm_id)) ?? `#${t.realm_id}`),
      };
    });
  }
}

/** How owners and realms of the source become pushgate owners. */
export interface OwnerMapping {
  /** `resolver` + NUL + `user_id` → login name (from --user-map). */
  readonly users: ReadonlyMap<string, string> | null;
  /** The resolver's user id is the login name (an LDAP resolver whose UIDTYPE is the login attribute). */
  readonly uidIsLogin: boolean;
  /** Source realm → pushgate realm (default: the same name). */
  readonly realms: ReadonlyMap<string, string>;
}

export interface PlanOptions {
  readonly product: SourceProduct;
  readonly keys: SourceKeys;
  readonly owners: OwnerMapping;
  /** The URL the phones were enrolled with (their answers and polls go there), per push type. */
  readonly registrationUrl: (type: 'edupush' | 'push') => string;
  /** Push channel for imported push tokens; undefined: keep the source's name when pushgate has that channel. */
  readonly pushChannel?: string;
  readonly hasChannel: (name: string) => boolean;
  /**
   * A PIN hash pushgate cannot check: import the token disabled (default), not at all, or without a PIN (for
   * installations whose logins never use token PINs, e.g. `otppin: userstore`).
   */
  readonly unsupportedPin?: 'disable' | 'skip' | 'clear';
  readonly now: number;
}

/** `2026-12-01T10:00+0100` (the source's DATE_FORMAT) or `01/12/26 10:00` (its older one) → epoch ms; null otherwise. */
export function parseSourceDate(text: string): number | null {
  const t = text.trim();
  const iso = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?([+-]\d{2}):?(\d{2})$/.exec(t);
  if (iso) {
    const [, y, mo, d, h, mi, s, oh, om] = iso;
    const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}${oh}:${om}`);
    return Number.isNaN(ms) ? null : ms;
  }
  const old = /^(\d{2})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2})$/.exec(t);
  if (old) {
    const [, d, mo, y, h, mi] = old;
    const ms = Date.parse(`20${y}-${mo}-${d}T${h}:${mi}:00Z`);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/** Tokeninfo keys whose behaviour pushgate does not carry over (worth a warning when present). */
const DROPPED_INFO: Readonly<Record<string, string>> = {
  count_auth_max: 'the limit on authentications (count_auth_max) is not carried over',
  count_auth_success_max: 'the limit on successful authentications (count_auth_success_max) is not carried over',
  next_pin_change: 'the PIN change date (next_pin_change) is not carried over',
};

/** Plans one source token. Never throws for bad data: problems go into the plan. */
export function planSourceToken(src: SourceToken, o: PlanOptions): ImportPlan {
  const row = src.row;
  const serial = str(row.serial);
  const type = str(row.tokentype).toLowerCase();
  const problems: string[] = [];
  const warnings: string[] = [];
  const plan = (token: NewToken | null, plainPin?: string): ImportPlan => ({ serial, type, token, plainPin, problems, warnings });
  const info = new Map(src.info.map((i) => [i.key, i]));
  const infoValue = (k: string): string | undefined => info.get(k)?.value;

  if (serial === '' || serial.length > COLUMN_LIMITS.tokens.serial) {
    problems.push(`the serial is empty or longer than ${COLUMN_LIMITS.tokens.serial} characters`);
    return plan(null);
  }
  if (bool(row.revoked)) {
    problems.push('revoked in the source');
    return plan(null);
  }
  const supported = ['hotp', 'totp', 'spass', 'edupush', 'push'];
  if (!supported.includes(type)) {
    problems.push(`token type ${type || '(none)'} is not supported by pushgate`);
    return plan(null);
  }
  const rollout = str(row.rollout_state);
  if (rollout !== '' && rollout !== 'enrolled') {
    problems.push(`the enrollment was not completed in the source (rollout_state ${rollout})`);
    return plan(null);
  }

  // Owner.
  let username: string | null = null;
  let realm: string | null = null;
  if (src.owners.length > 1) problems.push(`${src.owners.length} owners in tokenowner; pushgate tokens have one`);
  const owner = src.owners[0];
  if (owner) {
    const srcRealm = owner.realm ?? src.realms[0] ?? null;
    if (srcRealm === null) problems.push(`the owner ${owner.userId} has no realm`);
    else realm = o.owners.realms.get(srcRealm) ?? srcRealm;
    const mapped = o.owners.users?.get(`${owner.resolver}\u0000${owner.userId}`);
    if (mapped !== undefined) username = mapped;
    else if (o.owners.uidIsLogin) username = owner.userId;
    else
      problems.push(
        `the owner's login name is unknown: user_id ${owner.userId} of resolver ${owner.resolver} is not in the user map (--user-map, or --uid-is-login)`,
      );
    if (username !== null && (username === '' || username.length > COLUMN_LIMITS.tokens.username))
      problems.push(`the owner's login name is empty or longer than ${COLUMN_LIMITS.tokens.username} characters`);
  } else if (src.realms.length > 0) {
    warnings.push(`token realms ${src.realms.join(', ')} of an unassigned token are not carried over`);
  }

  // PIN.
  let pinHash: string | null = null;
  let plainPin: string | undefined;
  let active = bool(row.active);
  const pin = classifyPin(str(row.pin_hash), o.keys, COLUMN_LIMITS.tokens.pin_hash);
  if (pin.kind === 'hash') pinHash = pin.hash;
  else if (pin.kind === 'plain') plainPin = pin.pin;
  else if (pin.kind === 'unsupported') {
    if (type === 'spass') {
      problems.push(`${pin.reason}; a simple pass token is nothing without its PIN`);
    } else if (o.unsupportedPin === 'skip') {
      problems.push(pin.reason);
    } else if (o.unsupportedPin === 'clear') {
      warnings.push(`PIN not imported: ${pin.reason}; imported without a PIN (--unsupported-pin clear)`);
    } else {
      warnings.push(`PIN not imported: ${pin.reason}; the token is imported disabled — set a PIN (pushgate token set-pin) and enable it`);
      active = false;
    }
  }

  // Counters and state.
  const maxFail = Math.max(1, num(row.maxfail ?? 10) || 10);
  const failCount = Math.min(Math.max(0, num(row.failcount ?? 0) || 0), maxFail);
  let lockedAt: number | null = null;
  if (failCount >= maxFail) {
    const exceeded = infoValue('failcounter_exceeded');
    lockedAt = (exceeded && parseSourceDate(exceeded)) || o.now;
    warnings.push('locked: the fail counter has reached its maximum');
  }
  const validFrom = infoValue('validity_period_start');
  const validUntil = infoValue('validity_period_end');
  const parsedFrom = validFrom ? parseSourceDate(validFrom) : null;
  const parsedUntil = validUntil ? parseSourceDate(validUntil) : null;
  if (validFrom && parsedFrom === null) problems.push(`validity_period_start '${validFrom}' is not a date`);
  if (validUntil && parsedUntil === null) problems.push(`validity_period_end '${validUntil}' is not a date`);
  for (const [k, why] of Object.entries(DROPPED_INFO)) if (info.has(k)) warnings.push(why);

  const base = {
    serial,
    type,
    username,
    realm: owner ? realm : null,
    active,
    rolloutState: (type === 'edupush' || type === 'push' ? 'enrolled' : '') as NewToken['rolloutState'],
    pinHash,
    otpLen: 6,
    counter: 0,
    maxFail,
    failCount,
    lockedAt,
    description: str(row.description).slice(0, COLUMN_LIMITS.tokens.description),
    info: {} as Record<string, string>,
    secrets: {} as Record<string, string>,
    rolloutExpiresAt: null,
    validFrom: parsedFrom,
    validUntil: parsedUntil,
  };
  const tokenKind = infoValue('tokenkind');
  if (tokenKind) base.info.tokenkind = tokenKind;

  if (type === 'hotp' || type === 'totp') {
    const otpLen = num(row.otplen ?? 6);
    if (!(OTP_DIGITS as readonly number[]).includes(otpLen)) problems.push(`OTP length ${row.otplen} is not supported (6 or 8)`);
    base.otpLen = otpLen;
    const hash = (infoValue('hashlib') ?? 'sha1').trim().toLowerCase() || 'sha1';
    if (!(OTP_HASHES as readonly string[]).includes(hash)) problems.push(`hash algorithm ${hash} is not supported`);
    base.info.hashlib = hash;
    const keyEnc = str(row.key_enc);
    if (keyEnc === '') problems.push('the token has no OTP key');
    else {
      try {
        const key = decryptTokenKey(o.keys, keyEnc, str(row.key_iv));
        if (!key.hex || key.bytes.length === 0) problems.push('the decrypted OTP key is not a hex seed');
        else base.secrets.otpKey = key.bytes.toString('hex');
      } catch (err) {
        problems.push(`the OTP key does not decrypt with the token key of the key file (${(err as Error).message})`);
      }
    }
    const count = Math.max(0, Math.floor(num(row.count ?? 0) || 0));
    if (type === 'hotp') {
      // The source's count is the next counter it would accept: the same meaning as pushgate's.
      base.counter = count;
      const cw = num(row.count_window ?? 10);
      if (Number.isSafeInteger(cw) && cw > 0 && cw !== 10) (base as NewToken).countWindow = Math.min(cw, 1000);
    } else {
      // The source stores the last time step it accepted (0: none) and refuses it and older ones again.
      base.counter = count > 0 ? count + 1 : 0;
      const step = Number(infoValue('timeStep') ?? '30');
      if (!Number.isSafeInteger(step) || step <= 0 || step > 3600) problems.push(`time step ${infoValue('timeStep')} is not supported`);
      base.info.timeStep = String(step);
      const shift = Number(infoValue('timeShift') ?? '0');
      if (Number.isFinite(shift) && Math.round(shift) !== 0) base.info.timeShift = String(Math.round(shift));
      const windowSeconds = Number(infoValue('timeWindow') ?? '180');
      if (Number.isFinite(windowSeconds) && windowSeconds > 0 && windowSeconds !== 180 && step > 0)
        (base as NewToken).countWindow = Math.min(60, Math.ceil(windowSeconds / step));
    }
    const sw = num(row.sync_window ?? 1000);
    if (Number.isSafeInteger(sw) && sw > 0 && sw !== 1000) (base as NewToken).syncWindow = sw;
  } else if (type === 'spass') {
    base.otpLen = 0;
    if (pin.kind === 'none') warnings.push('a simple pass token without a PIN: the empty pass is accepted, as in the source');
  } else {
    planPush(type as 'edupush' | 'push', base, infoValue, info, o, problems, warnings);
  }
  if (problems.length > 0) return plan(null);
  return plan(base as NewToken, plainPin);
}

function planPush(
  type: 'edupush' | 'push',
  base: { info: Record<string, string>; secrets: Record<string, string> },
  infoValue: (k: string) => string | undefined,
  info: ReadonlyMap<string, { key: string; value: string; type: string }>,
  o: PlanOptions,
  problems: string[],
  warnings: string[],
): void {
  const phoneKey = infoValue('public_key_smartphone') ?? '';
  try {
    parsePhoneKey(phoneKey);
    base.info.public_key_smartphone = phoneKey;
  } catch (err) {
    problems.push(`the phone's public key is unusable (${(err as Error).message})`);
  }
  const priv = info.get('private_key_server');
  if (!priv || priv.value === '') problems.push('the server key (private_key_server) is missing');
  else {
    try {
      const pem = priv.type === 'password' ? decryptColonValue(o.keys.config, priv.value).toString('utf8') : priv.value;
      const key = crypto.createPrivateKey(pem);
      if (key.asymmetricKeyType !== 'rsa') throw new Error('not an RSA key');
      base.secrets[SECRET_KEYS.privateKeyServer] = pem;
      base.info.public_key_server =
        infoValue('public_key_server') || (crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string);
    } catch (err) {
      problems.push(`the server key (private_key_server) does not decrypt or parse with the config key (${(err as Error).message})`);
    }
  }
  base.info.firebase_token = infoValue('firebase_token') ?? '';
  const polling = infoValue('polling_allowed');
  if (polling !== undefined) base.info.polling_allowed = polling;
  const sourceChannel = (infoValue(`${type}_firebase_configuration`) ?? '').trim();
  let channel = o.pushChannel;
  if (channel === undefined) {
    if (sourceChannel === POLL_ONLY || sourceChannel === '') channel = POLL_ONLY;
    else if (o.hasChannel(sourceChannel)) channel = sourceChannel;
    else {
      channel = POLL_ONLY;
      warnings.push(
        `push channel '${sourceChannel}' is not configured in pushgate: the token is imported as '${POLL_ONLY}' (see --push-channel)`,
      );
    }
  }
  base.info[`${type}_firebase_configuration`] = channel;
  base.info.registration_url = o.registrationUrl(type);
  base.info.tokenkind ??= 'software';
}
