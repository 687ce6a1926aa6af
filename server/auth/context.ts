/** Per-request policy resolution shared by the auth algorithms and handed to token types as TokenContext. */
import type { Deps } from '../deps.ts';
import type { ActionValue, ResolvedPolicy, Scope, Who } from '../../policies/types.ts';
import type { TokenContext } from '../../tokens/types.ts';
import { findAction, scopesOfAction } from '../../policies/actions.ts';

export interface RequestPolicies {
  readonly who: Who;
  scope(scope: Scope): ResolvedPolicy;
  /** Value of any declared action, resolved in its own scope (or `scope` for a name declared in several). */
  action<T extends ActionValue>(name: string, scope?: Scope): T | undefined;
  /** Names of every policy that matched in the scopes consulted so far (for the audit). */
  matched(): string[];
  /** The policies that supplied an action's value (for eduMFA's `due to '<policy>'` messages). */
  sources(name: string): readonly string[];
  tokenContext(): TokenContext;
}

export function requestPolicies(deps: Deps, who: Who): RequestPolicies {
  const cache = new Map<Scope, ResolvedPolicy>();
  const scope = (s: Scope): ResolvedPolicy => {
    let r = cache.get(s);
    if (!r) {
      r = deps.policies.resolve(s, who);
      cache.set(s, r);
      deps.events.emit('policy.matched', {
        scope: s,
        ...(who.user ? { user: who.user.name, realm: who.user.realm } : {}),
        ...(who.client ? { client: who.client } : {}),
        policies: [...r.matched],
      });
    }
    return r;
  };
  const scopeOf = (name: string, wanted?: Scope): Scope => {
    const s = wanted ?? scopesOfAction(deps.policies.actions, name)[0];
    if (!s || !findAction(deps.policies.actions, s, name))
      throw new Error(`unknown policy action ${name}${wanted ? ` in scope ${wanted}` : ''}`);
    return s;
  };
  const action = <T extends ActionValue>(name: string, wanted?: Scope): T | undefined => scope(scopeOf(name, wanted)).get<T>(name);
  return {
    who,
    scope,
    action,
    matched: () => [...new Set([...cache.values()].flatMap((r) => r.matched))],
    sources(name) {
      return deps.policies.explain(scopeOf(name), who).find((e) => e.action === name)?.from ?? [];
    },
    tokenContext: () => ({ clock: deps.clock, action, push: deps.push.support }),
  };
}
