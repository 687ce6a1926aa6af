/** /validate/triggerchallenge: a challenge for every usable challenge-capable token of the user (no PIN check). */
import type { Deps } from '../deps.ts';
import { requestPolicies } from './context.ts';
import { createChallenges, preferredClientMode } from './challenges.ts';
import { bumpFailCounters } from './check.ts';
import type { ChallengeOut } from './outcome.ts';
import type { UserInfo } from './users.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import { NotFoundError, ValidateError } from '../../core/errors.ts';
import { outsideValidity } from './validity.ts';

export interface TriggerRequest {
  user?: string;
  realm?: string;
  serial?: string;
  type?: string;
  client?: string;
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
    user = deps.realms.resolveUser(req.user, req.realm);
    tokens = await deps.store.tokens.list({ username: user.name, realm: user.realm });
    if (req.serial) tokens = tokens.filter((t) => t.serial === req.serial);
  } else {
    const t = await deps.store.tokens.bySerial(req.serial!);
    if (!t) throw new NotFoundError('The requested token could not be found.');
    tokens = [t];
  }
  if (req.type) tokens = tokens.filter((t) => t.type === req.type);
  const rp = requestPolicies(deps, {
    user: user ? { name: user.name, realm: user.realm, resolver: user.resolver } : undefined,
    client: req.client,
  });
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
  const challenges = await createChallenges(deps, usable, rp);
  if (rp.action<boolean>('increase_failcounter_on_challenge')) await bumpFailCounters(deps, usable);
  return { challenges, preferredClientMode: preferredClientMode(rp, challenges), policies: rp.matched() };
}
