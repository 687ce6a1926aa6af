/**
 * eduMFA's admin API beyond enrollment (facts: /work/brief/admin_api_facts.md §1, §2): token assign / unassign /
 * set / resync / revoke / lost, the token search of GET /token/, and the read-only realm, resolver and user lists.
 * Values come back in eduMFA's shapes and names; every state change is one conditional statement of the store.
 */
import type { Deps } from '../deps.ts';
import {
  ConfigAdminError,
  type MfaError,
  NotFoundError,
  ParameterError,
  PolicyError,
  TokenAdminError,
  UserError,
  missingParameter,
  tokenLocked,
} from '../../core/errors.ts';
import type { Params } from '../params.ts';
import { isValidSerial } from '../../tokens/serial.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import { generatePassword, LOST_PW_CONTENTS, LOST_PW_LENGTH, LOST_VALID_DAYS } from '../../tokens/pw.ts';
import { OTP_HASHES } from '../../tokens/otp.ts';
import { checkLength } from '../store/limits.ts';
import { TOKEN_SORT_COLUMNS, type TokenPatch, type TokenSearch, type TokenSortColumn } from '../store/tokens_repo.ts';
import { requestPolicies } from './context.ts';
import { setTokenActive } from './tokens_admin.ts';
import type { Realm, UserInfo } from './users.ts';
import { formatValidityDate, parseValidityDate } from './validity.ts';

const NOT_FOUND = 'The requested token could not be found.';

/** Default windows (eduMFA's DefaultCountWindow / DefaultSyncWindow) shown for and used by tokens that set none. */
export const DEFAULT_COUNT_WINDOW = 10;
export const DEFAULT_SYNC_WINDOW = 1000;
/** Upper bounds: a check tries count_window values per OTP type, a resync up to 2 × sync_window + 1. */
export const MAX_COUNT_WINDOW = 1000;
export const MAX_SYNC_WINDOW = 100_000;

// ---------------------------------------------------------------------------------------------------------------
// Users and tokens as the admin endpoints name them

/**
 * The user of an admin request (eduMFA's get_user_from_param + get_user_identifiers): an unknown realm is 404
 * `Realm '<r>' does not exist.`, an unknown user 400 / 904.
 */
export async function adminUser(deps: Deps, user: string, realm: string | undefined): Promise<UserInfo> {
  if (realm !== undefined && realm !== '' && !deps.realms.get(realm.trim())) throw new NotFoundError(`Realm '${realm}' does not exist.`);
  try {
    return await deps.realms.resolveUser(user, realm);
  } catch (err) {
    if (err instanceof UserError) throw new UserError('The user can not be found in any resolver in this realm!');
    throw err;
  }
}

/** A serial from a request: valid and within the column, else 400 / 905. */
export function checkSerial(serial: string): string {
  if (!isValidSerial(checkLength('serial', serial))) throw new ParameterError('Invalid serial number.');
  return serial;
}

export interface TokenSelector {
  readonly serial?: string;
  readonly user?: string;
  readonly realm?: string;
}

/**
 * eduMFA's get_tokens_from_serial_or_user: with a serial exactly one token (owned by the user when one is given),
 * else 404; with only a user all of that user's tokens (possibly none); neither → 400.
 */
export async function selectTokens(deps: Deps, sel: TokenSelector): Promise<TokenRecord[]> {
  if (!sel.serial && !sel.user) throw new ParameterError('You either need to provide user or serial');
  const owner = sel.user ? await adminUser(deps, sel.user, sel.realm) : null;
  if (sel.serial) {
    const t = await deps.store.tokens.bySerial(checkSerial(sel.serial));
    if (!t || (owner && (t.username !== owner.name || t.realm !== owner.realm))) throw new NotFoundError(NOT_FOUND);
    return [t];
  }
  return deps.store.tokens.list({ username: owner!.name, realm: owner!.realm });
}

/** Refuses a revoked token (400 / 1007), eduMFA's check_token_locked. */
export function requireNotRevoked(t: TokenRecord): TokenRecord {
  if (t.revoked) throw tokenLocked();
  return t;
}

/** After a conditional update changed nothing (a concurrent request won): the token is gone (404), revoked (1007), or `other`. */
async function whyUnchanged(deps: Deps, serial: string, other: (t: TokenRecord) => MfaError): Promise<never> {
  const t = await deps.store.tokens.bySerial(serial);
  if (!t) throw new NotFoundError(NOT_FOUND);
  if (t.revoked) throw tokenLocked();
  throw other(t);
}
const changedMeanwhile = () => new ParameterError('The token was changed by another request; try again.');

// ---------------------------------------------------------------------------------------------------------------
// assign / unassign / revoke

/** eduMFA's Python repr of a user, as ERR1103 shows the owner. */
const userRepr = (deps: Deps, name: string, realm: string) =>
  `User(login='${name}', realm='${realm}', resolver='${deps.realms.get(realm)?.resolver ?? ''}')`;

/** POST /token/assign: the token gets an owner (and a PIN, when given); fail counter 0. */
export async function assignToken(
  deps: Deps,
  req: { serial: string; user: string; realm?: string; pin?: string },
): Promise<{ name: string; realm: string }> {
  const t = await deps.store.tokens.bySerial(checkSerial(req.serial));
  if (!t) throw new NotFoundError(NOT_FOUND);
  const user = await adminUser(deps, req.user, req.realm);
  checkLength('user', user.name);
  requireNotRevoked(t);
  const assigned = (owner: TokenRecord) =>
    new TokenAdminError(1103, `Token already assigned to user ${userRepr(deps, owner.username ?? '', owner.realm ?? '')}`);
  if (t.username !== null) throw assigned(t);
  const rp = requestPolicies(deps, { user: { name: user.name, realm: user.realm, resolver: user.resolver } });
  const max = rp.action<number>('max_token_per_user');
  if (max !== undefined && (await deps.store.tokens.countByOwner(user.name, user.realm)) >= max) {
    throw new PolicyError('The number of tokens for this user is limited!');
  }
  const pinHash = req.pin === undefined ? undefined : req.pin === '' ? null : await deps.pins.hash(req.pin);
  if (!(await deps.store.tokens.assign(t.serial, user.name, user.realm, pinHash, deps.clock.now())))
    await whyUnchanged(deps, t.serial, assigned);
  deps.events.emit('token.changed', { serial: t.serial, action: 'assign', user: user.name, realm: user.realm });
  return { name: user.name, realm: user.realm };
}

/** POST /token/unassign: owner and PIN removed, fail counter 0. Returns the number of tokens (eduMFA counts each). */
export async function unassignTokens(deps: Deps, sel: TokenSelector): Promise<{ count: number; serials: string[] }> {
  const tokens = await selectTokens(deps, sel);
  if (sel.serial) requireNotRevoked(tokens[0]!);
  const live = tokens.filter((t) => !t.revoked);
  const n = await deps.store.tokens.unassign(
    live.map((t) => t.id),
    deps.clock.now(),
  );
  if (sel.serial && n === 0) await whyUnchanged(deps, tokens[0]!.serial, changedMeanwhile);
  for (const t of live) deps.events.emit('token.changed', { serial: t.serial, action: 'unassign' });
  return { count: n, serials: live.map((t) => t.serial) };
}

/** POST /token/revoke: revoked, disabled, challenges withdrawn — for good. Returns how many were revoked. */
export async function revokeTokens(deps: Deps, sel: TokenSelector): Promise<{ count: number; serials: string[] }> {
  const tokens = await selectTokens(deps, sel);
  if (sel.serial) requireNotRevoked(tokens[0]!);
  const live = tokens.filter((t) => !t.revoked);
  const n = await deps.store.tokens.revoke(
    live.map((t) => t.id),
    deps.clock.now(),
  );
  if (sel.serial && n === 0) await whyUnchanged(deps, tokens[0]!.serial, changedMeanwhile);
  for (const t of live) deps.events.emit('token.changed', { serial: t.serial, action: 'revoke' });
  return { count: n, serials: live.map((t) => t.serial) };
}

// ---------------------------------------------------------------------------------------------------------------
// set

/** eduMFA keys of /token/set that pushgate does not implement: refused rather than answered as if applied. */
const UNSUPPORTED_SET_KEYS = ['count_auth_max', 'count_auth_success_max', 'use_timeshift'];

function intParam(name: string, raw: string, min: number, max: number): number {
  const v = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new ParameterError(`Invalid ${name} '${raw}': an integer from ${min} to ${max}.`);
  return v;
}

/**
 * POST /token/set: description, max_failcount, count_window, sync_window, hashlib (HOTP/TOTP), validity_period_start
 * and validity_period_end (empty = remove). All values are checked before anything is stored; the patch is one
 * statement. Returns the number of attributes set (eduMFA's value).
 */
export async function setTokenAttributes(deps: Deps, sel: TokenSelector, params: Params): Promise<{ count: number; keys: string[] }> {
  if (!sel.serial) throw missingParameter('serial');
  const [t] = await selectTokens(deps, sel);
  requireNotRevoked(t!);
  for (const k of UNSUPPORTED_SET_KEYS) if (params.has(k)) throw new ParameterError(`Parameter '${k}' is not supported by this server.`);
  const patch: TokenPatch = {};
  const keys: string[] = [];
  const take = (name: string, apply: (v: string) => void) => {
    const v = params.get(name);
    if (v === undefined) return;
    apply(v);
    keys.push(name);
  };
  take('description', (v) => {
    patch.description = checkLength('description', v);
  });
  take('count_window', (v) => {
    patch.countWindow = intParam('count_window', v, 1, MAX_COUNT_WINDOW);
  });
  take('sync_window', (v) => {
    patch.syncWindow = intParam('sync_window', v, 1, MAX_SYNC_WINDOW);
  });
  take('max_failcount', (v) => {
    patch.maxFail = intParam('max_failcount', v, 1, 2_147_483_647);
  });
  take('hashlib', (v) => {
    const h = v.trim().toLowerCase();
    if (t!.type !== 'hotp' && t!.type !== 'totp') throw new ParameterError(`A ${t!.type} token has no hashlib.`);
    if (!(OTP_HASHES as readonly string[]).includes(h))
      throw new ParameterError(`Invalid hashlib '${v}'. Allowed values: ${OTP_HASHES.join(', ')}.`);
    patch.info = { ...t!.info, hashlib: h };
  });
  take('validity_period_start', (v) => {
    patch.validFrom = v.trim() === '' ? null : parseValidityDate(v, 'start');
  });
  take('validity_period_end', (v) => {
    patch.validUntil = v.trim() === '' ? null : parseValidityDate(v, 'end');
  });
  if (keys.length && !(await deps.store.tokens.update(t!.serial, patch, deps.clock.now())))
    await whyUnchanged(deps, t!.serial, changedMeanwhile);
  if (keys.length) deps.events.emit('token.changed', { serial: t!.serial, action: 'set', keys });
  return { count: keys.length, keys };
}

// ---------------------------------------------------------------------------------------------------------------
// resync

/**
 * POST /token/resync: two consecutive OTP values put the token back in step (HOTP: the counter; TOTP: counter and
 * clock offset), searching the token's sync_window (default 1000). False (HTTP 200) when they do not match.
 */
export async function resyncToken(deps: Deps, sel: TokenSelector, otp1: string, otp2: string): Promise<boolean> {
  const [t] = await selectTokens(deps, sel);
  requireNotRevoked(t!);
  const type = deps.registry.require(t!.type);
  if (!type.resync) throw new ParameterError(`A ${t!.type} token cannot be resynchronised.`);
  const rp = requestPolicies(
    deps,
    t!.username && t!.realm ? { user: { name: t!.username, realm: t!.realm, resolver: deps.realms.get(t!.realm)?.resolver ?? '' } } : {},
  );
  const found = type.resync(t!, otp1, otp2, t!.syncWindow ?? DEFAULT_SYNC_WINDOW, rp.tokenContext());
  if (!found) return false;
  const info = found.info ? { ...t!.info, ...found.info } : undefined;
  const ok = await deps.store.tokens.resync(t!.id, t!.counter, found.counter, info, deps.clock.now());
  if (ok) deps.events.emit('token.changed', { serial: t!.serial, action: 'resync' });
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// lost token

const DAY_MS = 86_400_000;

/**
 * POST /token/lost/<serial>: a `pw` token `lost<serial>` for the same owner with the same PIN and a generated
 * password (login: PIN + password), valid for `losttoken_valid` days; the lost token is disabled (its challenges
 * withdrawn). eduMFA's value: serial, init, user, pin, valid_to ("xxxx"), password, end_date, disable.
 */
export async function lostToken(deps: Deps, sel: TokenSelector): Promise<Record<string, unknown>> {
  const [old] = await selectTokens(deps, sel);
  requireNotRevoked(old!);
  if (!old!.username || !old!.realm) throw new TokenAdminError(2012, 'You can only define a lost token for an assigned token.');
  const serial = `lost${old!.serial}`;
  if (serial.length > 40) throw new ParameterError(`The serial ${serial} of the replacement is longer than 40 characters.`);
  if (await deps.store.tokens.bySerial(serial)) throw new ParameterError(`A token with the serial ${serial} already exists.`);
  const owner = (await deps.realms.get(old!.realm)?.lookup(old!.username)) ?? { name: old!.username, realm: old!.realm, resolver: '' };
  const rp = requestPolicies(deps, { user: { name: owner.name, realm: owner.realm, resolver: owner.resolver } });
  const length = rp.action<number>('losttoken_PW_length') ?? LOST_PW_LENGTH;
  const contents = rp.action<string>('losttoken_PW_contents') ?? LOST_PW_CONTENTS;
  const days = rp.action<number>('losttoken_valid') ?? LOST_VALID_DAYS;
  if (contents.trim() === '') throw new ConfigAdminError('Invalid losttoken_PW_contents: empty.');
  const password = generatePassword(length, contents.trim());
  const now = deps.clock.now();
  const validUntil = now + days * DAY_MS;
  await deps.store.tokens.insert(
    {
      serial,
      type: 'pw',
      username: old!.username,
      realm: old!.realm,
      active: true,
      rolloutState: '',
      pinHash: old!.pinHash,
      otpLen: password.length,
      counter: 0,
      maxFail: deps.config.tokens.maxFail,
      description: `temporary replacement for ${old!.serial}`,
      info: {},
      secrets: { password },
      rolloutExpiresAt: null,
      validUntil,
    },
    now,
  );
  deps.events.emit('token.enrolled', { serial, type: 'pw', user: old!.username, realm: old!.realm });
  const wasActive = old!.active;
  await setTokenActive(deps, old!.serial, false);
  return {
    serial,
    init: true,
    user: true,
    pin: true,
    valid_to: 'xxxx',
    password,
    end_date: formatValidityDate(validUntil),
    disable: wasActive ? 1 : 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// GET /token/

const isTrue = (v: string): boolean => v.trim().toLowerCase() === 'true';
/** A filter value consisting only of `*` (or empty) filters nothing (eduMFA). */
const filterValue = (params: Params, name: string): string | undefined => {
  const v = params.get(name);
  return v === undefined || v.trim() === '' || /^\*+$/.test(v.trim()) ? undefined : v.trim();
};

/** The realms whose user store's resolver name matches `pattern` (`*` wildcards). */
function realmsOfResolver(deps: Deps, pattern: string): string[] {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return deps.realms.names().filter((n) => re.test(deps.realms.get(n)!.resolver));
}

/**
 * GET /token/ with eduMFA's filters, sort and paging: `{tokens, count, current, next, prev}`. `allowed` false
 * (admin policies without `tokenlist`) gives the empty list, as eduMFA does.
 */
export async function searchTokens(deps: Deps, params: Params, allowed: boolean): Promise<Record<string, unknown>> {
  const intOr = (name: string, dflt: number, max: number) => {
    const raw = params.get(name);
    if (raw === undefined || raw.trim() === '') return dflt;
    return intParam(name, raw, 1, max);
  };
  const page = intOr('page', 1, 1_000_000);
  const pageSize = intOr('pagesize', 15, 1000);
  const sortRaw = (params.get('sortby') ?? 'serial').trim().toLowerCase();
  const sortBy: TokenSortColumn = Object.hasOwn(TOKEN_SORT_COLUMNS, sortRaw) ? (sortRaw as TokenSortColumn) : 'serial';
  const q: { -readonly [K in keyof TokenSearch]: TokenSearch[K] } = {
    sortBy,
    sortDesc: (params.get('sortdir') ?? '').trim().toLowerCase() === 'desc',
    page,
    pageSize,
  };
  const user = params.get('user');
  if (user !== undefined && user.trim() !== '') {
    const u = await adminUser(deps, user, params.get('realm'));
    q.username = u.name;
    q.realm = u.realm;
  }
  q.serial = filterValue(params, 'serial');
  q.type = filterValue(params, 'type');
  q.tokenrealm = filterValue(params, 'tokenrealm');
  const resolver = filterValue(params, 'resolver');
  if (resolver !== undefined) q.realmsIn = realmsOfResolver(deps, resolver);
  q.userid = filterValue(params, 'userid');
  q.description = filterValue(params, 'description');
  q.rolloutState = filterValue(params, 'rollout_state');
  const assigned = params.get('assigned');
  if (assigned !== undefined && assigned.trim() !== '') q.assigned = isTrue(assigned);
  const active = params.get('active');
  if (active !== undefined && active.trim() !== '') q.active = isTrue(active);
  const infoKey = params.get('infokey');
  const infoValue = params.get('infovalue');
  if (infoKey !== undefined && infoValue !== undefined) {
    q.infoKey = infoKey;
    q.infoValue = infoValue;
  }
  const { tokens, count } = allowed ? await deps.store.tokens.search(q) : { tokens: [], count: 0 };
  return {
    tokens: tokens.map((t) => tokenViewIn(deps, t)),
    count,
    current: page,
    next: count > page * pageSize ? page + 1 : null,
    prev: page > 1 ? page - 1 : null,
  };
}

/**
 * A token as GET /token/ shows it (eduMFA's names): the owner's resolver is the resolver of the owner's realm,
 * `locked` is eduMFA's (= revoked), the validity period is in `info` as eduMFA's tokeninfo shows it. No secrets.
 */
export function tokenViewIn(deps: Pick<Deps, 'realms'>, t: TokenRecord): Record<string, unknown> {
  const info: Record<string, string> = { ...t.info };
  if (t.validFrom != null) info['validity_period_start'] = formatValidityDate(t.validFrom);
  if (t.validUntil != null) info['validity_period_end'] = formatValidityDate(t.validUntil);
  const owned = t.username !== null && t.realm !== null;
  return {
    id: t.id,
    serial: t.serial,
    tokentype: t.type,
    active: t.active,
    revoked: t.revoked ?? false,
    locked: t.revoked ?? false,
    rollout_state: t.rolloutState,
    description: t.description,
    otplen: t.otpLen,
    count: t.counter,
    failcount: t.failCount,
    maxfail: t.maxFail,
    count_window: t.countWindow ?? DEFAULT_COUNT_WINDOW,
    sync_window: t.syncWindow ?? DEFAULT_SYNC_WINDOW,
    username: t.username ?? '',
    user_realm: t.realm ?? '',
    realms: t.realm ? [t.realm] : [],
    resolver: owned ? (deps.realms.get(t.realm!)?.resolver ?? '') : '',
    user_id: t.username ?? '',
    ...(owned ? { user_editable: false } : {}),
    info,
    created: t.createdAt,
    last_auth: t.lastAuthAt,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// realms, resolvers, users

const RESOLVER_TYPES: Readonly<Record<Realm['kind'], string>> = { file: 'fileresolver', any: 'anyresolver', ldap: 'ldapresolver' };

/** GET /realm/: `{<realm>: {id, option, default, resolver: [{name, type, priority}]}}`. */
export function listRealms(deps: Deps): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  deps.realms.names().forEach((name, i) => {
    const r = deps.realms.get(name)!;
    out[name] = {
      id: i + 1,
      option: '',
      default: name === deps.realms.defaultRealm,
      resolver: [{ name: r.resolver, type: RESOLVER_TYPES[r.kind], priority: null }],
    };
  });
  return out;
}

/**
 * GET /resolver/[<name>]: `{<resolver>: {type, resolvername, censor_keys, data}}` — a file store's data is its path
 * (eduMFA's passwd key `fileName`); neither store holds a secret. `type` filters exactly; `editable=1` leaves
 * nothing (no store here is editable).
 */
export function listResolvers(deps: Deps, params: Params, name?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const type = params.get('type');
  const editable = params.get('editable');
  for (const realmName of deps.realms.names()) {
    const r = deps.realms.get(realmName)!;
    if (name !== undefined && r.resolver.toLowerCase() !== name.toLowerCase()) continue;
    if (type !== undefined && type !== '' && RESOLVER_TYPES[r.kind] !== type) continue;
    if (editable === '1') continue;
    out[r.resolver] = {
      type: RESOLVER_TYPES[r.kind],
      resolvername: r.resolver,
      censor_keys: r.kind === 'ldap' ? ['BINDPW'] : [],
      data: r.data,
    };
  }
  return out;
}

/** The searchable user attributes (eduMFA's passwd resolver keys) and how each is read from a user. */
const USER_KEYS: Readonly<Record<string, (u: UserInfo) => string>> = {
  username: (u) => u.name,
  userid: (u) => u.userid ?? u.name,
  givenname: (u) => u.givenname ?? '',
  surname: (u) => u.surname ?? '',
  email: (u) => u.email ?? '',
  phone: (u) => u.phone ?? '',
};
const USER_LIST_SPECIAL = new Set(['realm', 'resolver', 'user', 'username']);

/** eduMFA's passwd-resolver match: case-insensitive, `*` only at the start and/or end, exact otherwise. */
function userPatternMatches(pattern: string, value: string): boolean {
  const p = pattern.toLowerCase();
  const v = value.toLowerCase();
  if (p === '*' || p === '') return true;
  const head = p.startsWith('*');
  const tail = p.endsWith('*');
  const core = p.slice(head ? 1 : 0, tail ? -1 : undefined);
  if (head && tail) return v.includes(core);
  if (head) return v.endsWith(core);
  if (tail) return v.startsWith(core);
  return v === p;
}

/**
 * GET /user/: the users of the realm (or of one resolver, or of every realm), filtered by `user`/`username` and any
 * attribute (`email=*@example.org`); an unknown attribute matches nobody, as eduMFA's passwd resolver. An `any`
 * store cannot list its users: it contributes none. Entries: username, userid, givenname, surname, email, phone,
 * resolver, editable.
 */
export async function listUsers(deps: Deps, params: Params): Promise<Array<Record<string, unknown>>> {
  const realm = params.get('realm');
  const resolver = params.get('resolver');
  let realms = deps.realms.names();
  if (realm !== undefined && realm !== '') realms = realms.filter((n) => n === realm.trim());
  if (resolver !== undefined && resolver !== '') realms = realms.filter((n) => deps.realms.get(n)!.resolver === resolver.trim());
  const filters: Array<[string, string]> = [];
  const namePattern = params.get('user') ?? params.get('username');
  if (namePattern !== undefined) filters.push(['username', namePattern]);
  for (const [k, v] of Object.entries(params.all())) if (!USER_LIST_SPECIAL.has(k)) filters.push([k, v]);
  const out: Array<Record<string, unknown>> = [];
  const seen = new Set<string>();
  for (const name of realms) {
    const r = deps.realms.get(name)!;
    if (seen.has(r.resolver)) continue;
    seen.add(r.resolver);
    for (const u of await r.listUsers()) {
      if (!filters.every(([k, v]) => USER_KEYS[k] !== undefined && userPatternMatches(v, USER_KEYS[k]!(u)))) continue;
      out.push({
        username: u.name,
        userid: u.userid ?? u.name,
        givenname: u.givenname ?? '',
        surname: u.surname ?? '',
        email: u.email ?? '',
        phone: u.phone ?? '',
        resolver: r.resolver,
        editable: false,
      });
    }
  }
  return out;
}
