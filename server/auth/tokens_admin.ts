/** Token administration shared by /token/* and the CLI: enroll (step 1), list, delete, enable/disable, reset, PIN. */
import type { Deps } from '../deps.ts';
import { enrollmentUrlWarning } from '../config.ts';
import { NotFoundError, ParameterError, PolicyError } from '../../core/errors.ts';
import { generateSerial, isValidSerial } from '../../tokens/serial.ts';
import type { RolloutState, TokenRecord } from '../../tokens/types.ts';
import { requestPolicies } from './context.ts';
import { checkLength } from '../store/limits.ts';
import type { UserInfo } from './users.ts';

export interface EnrollRequest {
  readonly type: string;
  readonly serial?: string;
  readonly user?: string;
  readonly realm?: string;
  readonly pin?: string;
  readonly description?: string;
  readonly client?: string;
  /** All request parameters (type-specific options like genkey, otpkey, otplen, hashlib). */
  readonly params: Readonly<Record<string, string>>;
  /**
   * The token is stored half-enrolled (inactive, `clientwait`) for this long, until its first OTP proves the user
   * has it (the self-service page's TOTP enrollment). Push types are half-enrolled anyway.
   */
  readonly verifyWithinMs?: number;
}

export interface EnrollResult {
  readonly token: TokenRecord;
  readonly details: Readonly<Record<string, unknown>>;
  readonly qrUrl?: string;
  readonly policies: readonly string[];
}

export async function enrollToken(deps: Deps, req: EnrollRequest): Promise<EnrollResult> {
  const type = deps.registry.require(req.type);
  let user: UserInfo | null = null;
  if (req.user) user = await deps.realms.resolveUser(req.user, req.realm);
  const rp = requestPolicies(deps, {
    user: user ? { name: user.name, realm: user.realm, resolver: user.resolver } : { name: '', realm: '', resolver: '' },
    client: req.client,
  });
  if (req.serial !== undefined && !isValidSerial(checkLength('serial', req.serial))) throw new ParameterError('Invalid serial number.');
  // The HTTP edge checks these already; the CLI comes here directly. A user store may know longer names than fit.
  if (req.description !== undefined) checkLength('description', req.description);
  if (user) checkLength('user', user.name);
  if (user) {
    const max = rp.action<number>('max_token_per_user');
    if (max !== undefined && (await deps.store.tokens.countByOwner(user.name, user.realm)) >= max) {
      throw new PolicyError('The number of tokens for this user is limited!');
    }
  }
  let serial = req.serial;
  if (serial === undefined) {
    do serial = generateSerial(type.serialPrefix);
    while (await deps.store.tokens.bySerial(serial));
  } else if (await deps.store.tokens.bySerial(serial)) {
    throw new ParameterError(`A token with the serial ${serial} already exists.`);
  }
  const begun = await type.enrollBegin(
    { serial, params: req.params, user: user ? { name: user.name, realm: user.realm } : null, publicUrl: deps.config.server.publicUrl },
    rp.tokenContext(),
  );
  const now = deps.clock.now();
  const pinHash = req.pin ? await deps.pins.hash(req.pin) : null;
  const token = await deps.store.tokens.insert(
    {
      serial,
      type: type.type,
      username: user?.name ?? null,
      realm: user?.realm ?? null,
      active: req.verifyWithinMs ? false : begun.fields.active,
      rolloutState: req.verifyWithinMs ? 'clientwait' : begun.fields.rolloutState,
      pinHash,
      otpLen: begun.fields.otpLen,
      counter: begun.fields.counter,
      maxFail: deps.config.tokens.maxFail,
      description: req.description ?? '',
      info: { ...begun.fields.info },
      secrets: { ...begun.fields.secrets },
      rolloutExpiresAt: begun.fields.rolloutTtlMs ? now + begun.fields.rolloutTtlMs : req.verifyWithinMs ? now + req.verifyWithinMs : null,
    },
    now,
  );
  deps.events.emit('token.enrolled', { serial, type: type.type, user: user?.name, realm: user?.realm });
  const urlWarning = enrollmentUrlWarning(serial, begun.qrUrl, deps.config.server.host);
  if (urlWarning) deps.events.emit('config.warning', { message: urlWarning });
  return { token, details: begun.details, qrUrl: begun.qrUrl, policies: rp.matched() };
}

export async function requireToken(deps: Deps, serial: string): Promise<TokenRecord> {
  const t = await deps.store.tokens.bySerial(serial);
  if (!t) throw new NotFoundError(`The requested token could not be found.`);
  return t;
}

/** Enable, or disable and withdraw the token's challenges (its pending logins can no longer be answered or finished). */
export async function setTokenActive(deps: Deps, serial: string, active: boolean): Promise<void> {
  const now = deps.clock.now();
  const found = active ? await deps.store.tokens.update(serial, { active }, now) : await deps.store.tokens.disable(serial, now);
  if (!found) throw new NotFoundError('The requested token could not be found.');
}

export async function deleteToken(deps: Deps, serial: string): Promise<void> {
  if (!(await deps.store.tokens.delete(serial))) throw new NotFoundError('The requested token could not be found.');
}

export async function resetFailCounter(deps: Deps, serial: string): Promise<void> {
  if (!(await deps.store.tokens.resetFailCount(serial, deps.clock.now())))
    throw new NotFoundError('The requested token could not be found.');
}

export async function setTokenPin(deps: Deps, serial: string, pin: string): Promise<void> {
  const pinHash = pin === '' ? null : await deps.pins.hash(pin);
  if (!(await deps.store.tokens.update(serial, { pinHash }, deps.clock.now())))
    throw new NotFoundError('The requested token could not be found.');
}

/** The token fields clients read from GET /token/ (eduMFA names). Secrets never leave the server. */
export function tokenView(t: TokenRecord): Record<string, unknown> {
  return {
    id: t.id,
    serial: t.serial,
    tokentype: t.type,
    active: t.active,
    revoked: false,
    locked: t.failCount >= t.maxFail,
    rollout_state: t.rolloutState as RolloutState,
    description: t.description,
    otplen: t.otpLen,
    count: t.counter,
    failcount: t.failCount,
    maxfail: t.maxFail,
    count_window: 10,
    sync_window: 1000,
    username: t.username ?? '',
    user_realm: t.realm ?? '',
    realms: t.realm ? [t.realm] : [],
    resolver: '',
    user_id: t.username ?? '',
    info: { ...t.info },
    created: t.createdAt,
    last_auth: t.lastAuthAt,
  };
}
