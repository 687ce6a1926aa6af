/**
 * The policy engine (protocol.md §7.3): selects the active policies of a scope that match `who`, then resolves
 * each action from the best (lowest) priority that sets it; distinct values there are a PolicyError.
 */
import { PolicyError } from '../core/errors.ts';
import type { Clock } from '../core/clock.ts';
import { actionsOfScope, findAction } from './actions.ts';
import { matchesClient, matchesTime, matchesValueList, parseTimeExpression, type TimeExpression } from './match.ts';
import type { ActionDef, ActionValue, Explanation, PolicyDef, PolicyEngine, ResolvedPolicy, Scope, Who } from './types.ts';

export interface PolicyEngineOptions {
  policies: readonly PolicyDef[];
  actions: ReadonlyMap<string, ActionDef>;
  clock: Clock;
}

interface Compiled {
  readonly def: PolicyDef;
  readonly time: TimeExpression | null;
}

interface Snapshot {
  readonly policies: readonly PolicyDef[];
  readonly byScope: ReadonlyMap<Scope, readonly Compiled[]>;
}

type Decision =
  | { kind: 'value'; value: ActionValue | undefined; from: readonly string[] }
  | { kind: 'conflict'; from: readonly string[]; message: string };

const byPriorityThenName = (a: PolicyDef, b: PolicyDef): number =>
  a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function compile(policies: readonly PolicyDef[]): Snapshot {
  const byScope = new Map<Scope, Compiled[]>();
  for (const def of [...policies].sort(byPriorityThenName)) {
    if (!def.active) continue;
    let time: TimeExpression | null = null;
    if (def.time !== null) {
      try {
        time = parseTimeExpression(def.time);
      } catch (err) {
        throw new Error(`Policy '${def.name}' has an invalid time: ${(err as Error).message}`);
      }
    }
    const list = byScope.get(def.scope) ?? [];
    list.push({ def, time });
    byScope.set(def.scope, list);
  }
  return { policies: Object.freeze([...policies]), byScope };
}

function matches(policy: Compiled, who: Who, now: Date): boolean {
  const { def } = policy;
  if (who.user !== undefined) {
    if (!matchesValueList(def.user, who.user.name)) return false;
    if (!matchesValueList(def.realm, who.user.realm)) return false;
    if (!matchesValueList(def.resolver, who.user.resolver)) return false;
  }
  if (!matchesClient(def.client, who.client)) return false;
  return policy.time === null || matchesTime(policy.time, now);
}

function freezeValue(v: ActionValue | undefined): ActionValue | undefined {
  return Array.isArray(v) ? Object.freeze([...(v as readonly string[])]) : v;
}

/** Identity of a value for conflict detection: lists compare as sets. */
function valueKey(v: ActionValue): string {
  if (Array.isArray(v)) return `list:${JSON.stringify([...new Set(v as readonly string[])].sort())}`;
  return `${typeof v}:${String(v)}`;
}

/** `matched` is sorted by priority then name, so the first policies that set the action are the winners. */
function decide(action: ActionDef, matched: readonly PolicyDef[]): Decision {
  let best: number | undefined;
  const winners: PolicyDef[] = [];
  for (const def of matched) {
    if (best !== undefined && def.priority > best) break;
    if (!Object.hasOwn(def.actions, action.name)) continue;
    const value = def.actions[action.name]!;
    if (action.type === 'bool' && value !== true) continue; // `false` is as if the action were absent
    best = def.priority;
    winners.push(def);
  }
  if (winners.length === 0) return { kind: 'value', value: freezeValue(action.default), from: [] };
  const from = Object.freeze(winners.map((w) => w.name));
  const distinct = new Set(winners.map((w) => valueKey(w.actions[action.name]!)));
  if (distinct.size > 1) {
    return { kind: 'conflict', from, message: `There are policies with conflicting actions: [${from.join(', ')}] for '${action.name}'` };
  }
  return { kind: 'value', value: freezeValue(winners[0]!.actions[action.name]), from };
}

export function createPolicyEngine(opts: PolicyEngineOptions): PolicyEngine {
  const { actions, clock } = opts;
  let snapshot = compile(opts.policies);

  function select(scope: Scope, who: Who): PolicyDef[] {
    const now = new Date(clock.now());
    return (snapshot.byScope.get(scope) ?? []).filter((p) => matches(p, who, now)).map((p) => p.def);
  }

  function actionOf(scope: Scope, name: string): ActionDef {
    const action = findAction(actions, scope, name);
    if (!action) throw new Error(`Unknown policy action '${name}' for scope ${scope}`);
    return action;
  }

  return {
    get policies() {
      return snapshot.policies;
    },
    actions,
    replace(policies) {
      snapshot = compile(policies);
    },
    resolve(scope, who): ResolvedPolicy {
      const matchedDefs = select(scope, who);
      const cache = new Map<string, Decision>();
      return Object.freeze({
        matched: Object.freeze(matchedDefs.map((p) => p.name)),
        get<T extends ActionValue>(name: string): T | undefined {
          let decision = cache.get(name);
          if (decision === undefined) {
            decision = decide(actionOf(scope, name), matchedDefs);
            cache.set(name, decision);
          }
          if (decision.kind === 'conflict') throw new PolicyError(decision.message);
          return decision.value as T | undefined;
        },
      });
    },
    explain(scope, who): Explanation[] {
      const matchedDefs = select(scope, who);
      return actionsOfScope(actions, scope).map((action) => {
        const d = decide(action, matchedDefs);
        return Object.freeze(
          d.kind === 'conflict'
            ? { action: action.name, value: undefined, from: d.from, conflict: d.message }
            : { action: action.name, value: d.value, from: d.from },
        );
      });
    },
  };
}
