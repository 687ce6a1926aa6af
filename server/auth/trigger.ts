/** /validate/triggerchallenge: a challenge for every usable challenge-capable token of the user (no PIN check). */
import type { Deps } from '../deps.ts';
import { requestPolicies } from './context.ts';
import { createChallenges, newTransactionId, preferredClientMode, validityMs } from './challenges.ts';
import {
  claimPushLogin,
  fatigueSubject,
  tokenSubject,
  pushGate,
  recordPushLogin,
  releasePushLogin,
  type PushGate,
} from './push_fatigue.ts';
import { bumpFailCounters } from './check.ts';
import type { ChallengeOut } from './outcome.ts';
import type { UserInfo } from './users.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import { NotFoundError, ValidateError } from '../../core/errors.ts';
import { outsideValidity } from './validity.ts';
import type { ActionValue } from '../../policies/types.ts';
import type { RequestPolicies } from './context.ts';

/** `rp` with some action values set by the request itself (also for the token types, through tokenContext). */
export function withOverrides(rp: RequestPolicies, overrides: Readonly<Record<string, ActionValue>> | undefined): RequestPolicies {
  if (!overrides || !Object.keys(overrides).length) return rp;
  const action = <T extends ActionValue>(name: string, scope?: Parameters<RequestPolicies['action']>[1]): T | undefined =>
    Object.hasOwn(overrides, name) ? (overrides[name] as T) : rp.action<T>(name, scope);
  return {
    ...rp,
    action,
    tokenContext: () => ({ ...rp.tokenContext(), action }),
  };
}

export interface TriggerRequest {
  user?: string;
  realm?: string;
  serial?: string;
  type?: string;
  client?: string;
  /** The end-user address a trusted proxy named, or null (push fatigue: server/auth/push_fatigue.ts). */
  address?: string | null;
  /** The transaction id of the new challenges (an application's push: server/auth/app_push.ts); default: a new one. */
  transactionId?: string;
  /** Only out-of-band (push) tokens take part (an application's push). */
  outOfBandOnly?: boolean;
  /** Policy values this request sets itself (an application's question, title and matching), over the policies. */
  overrides?: Readonly<Record<string, ActionValue>>;
  /** How long the challenges are valid, instead of the configured validity (an application's timeout). */
  validityMs?: number;
  /** The challenges are an application's push: marked so that no login can be finished with them. */
  appPush?: boolean;
}
export interface TriggerResult {
  challenges: ChallengeOut[];
  preferredClientMode: string;
  policies: string[];
}

export async function triggerChallenges(deps: Deps, req: TriggerRequest): Promise<TriggerResult> {
  let user: UserInfo | null = null;
  let tokens: TokenRecord[];
  if (req.user) {
    user = await deps.realms.resolveUser(req.user, req.realm);
    tokens = await deps.store.tokens.list({ username: user.name, realm: user.realm });
    if (req.serial) tokens = tokens.filter((t) => t.serial === req.serial);
  } else {
    const t = await deps.store.tokens.bySerial(req.serial!);
    if (!t) throw new NotFoundError('The requested token could not be found.');
    tokens = [t];
  }
  if (req.type) tokens = tokens.filter((t) => t.type === req.type);
  if (req.outOfBandOnly) tokens = tokens.filter((t) => deps.registry.require(t.type).outOfBand);
  const rp = withOverrides(
    requestPolicies(deps, {
      user: user ? { name: user.name, realm: user.realm, resolver: user.resolver } : undefined,
      client: req.client,
    }),
    req.overrides,
  );
  if (rp.action<string>('authorized') === 'deny_access')
    throw new ValidateError('User is not authorized to authenticate under these conditions.');
  const usable = tokens.filter(
    (t) =>
      t.active
      && t.rolloutState !== 'clientwait'
      && t.failCount < t.maxFail
      && !t.revoked
      && !outsideValidity(t, deps.clock.now())
      && deps.registry.require(t.type).canChallenge,
  );
  if (!usable.length) return { challenges: [], preferredClientMode: 'interactive', policies: rp.matched() };
  // Push fatigue as on /validate/check: the same address gets its open push login again, a backed-off or locked
  // user's push tokens take no part, and with nothing else left the trigger is refused.
  const outOfBand = (t: TokenRecord) => deps.registry.require(t.type).outOfBand;
  let claim: { slot: number; transactionId: string; expiresAt: number } | null = null;
  let gate: PushGate | null = null;
  if (usable.some(outOfBand)) {
    gate = await pushGate(deps, user ? fatigueSubject(user, tokens) : tokenSubject(tokens[0]!), req.address ?? null, rp);
    if (gate.locked) {
      // Locked after repeated declines: the push tokens sit out (as on /validate/check); nothing else → REJECT.
      deps.events.emit('throttle.refused', { limit: 'push_locked', key: gate.subject, retryAfterSeconds: 0 });
      usable.splice(0, usable.length, ...usable.filter((t) => !outOfBand(t)));
      if (!usable.length) return { challenges: [], preferredClientMode: 'interactive', policies: rp.matched() };
    }
  }
  if (gate && !gate.locked) {
    const pushing = usable.filter(outOfBand);
    const expiresAt = deps.clock.now() + (req.validityMs ?? Math.max(...pushing.map((t) => validityMs(deps, t.type))));
    const got = await claimPushLogin(deps, gate, req.transactionId ?? newTransactionId(), expiresAt);
    if (got.kind === 'reuse')
      return { challenges: [...got.challenges], preferredClientMode: preferredClientMode(rp, got.challenges), policies: rp.matched() };
    if (got.kind === 'none') {
      const rest = usable.filter((t) => !outOfBand(t));
      if (!rest.length) throw got.error;
      usable.splice(0, usable.length, ...rest);
    } else claim = got;
  }
  let challenges: ChallengeOut[];
  try {
    challenges = await createChallenges(deps, usable, rp, {
      transactionId: claim?.transactionId ?? req.transactionId,
      ...(req.validityMs !== undefined ? { validityMs: req.validityMs } : {}),
      ...(req.appPush ? { appPush: true } : {}),
    });
    if (claim && gate) await recordPushLogin(deps, gate, claim, challenges, null);
  } catch (err) {
    if (claim && gate) await releasePushLogin(deps, gate, claim).catch(() => {});
    throw err;
  }
  if (rp.action<boolean>('increase_failcounter_on_challenge')) await bumpFailCounters(deps, usable);
  return { challenges, preferredClientMode: preferredClientMode(rp, challenges), policies: rp.matched() };
}
