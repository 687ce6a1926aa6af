/**
 * Policy contracts. Policies are typed YAML (see config.example.yaml), matched with eduMFA's semantics
 * (protocol.md §7.3): filters on realm, resolver, user, client IP/CIDR and time, each entry optionally negated
 * with `!`; the lowest priority number wins; differing values at the winning priority are a PolicyError (403/303).
 */
export type Scope = 'authentication' | 'enrollment' | 'authorization' | 'admin';
export const SCOPES: readonly Scope[] = ['authentication', 'enrollment', 'authorization', 'admin'];

/**
 * Value types of actions:
 * - bool: `true`/`false` (a policy with `false` is as if the action were absent)
 * - int: integer, `min`/`max` bounds
 * - string: one string (whitespace kept: texts, URLs, channel names)
 * - enum: one of `values`
 * - list: list of strings (YAML list, or a whitespace/comma separated string), each optionally limited to `values`
 * - duration: `<n>s|m|h|d|y` (e.g. `10h`), resolved to milliseconds
 */
export type ActionType = 'bool' | 'int' | 'string' | 'enum' | 'list' | 'duration';
export type ActionValue = boolean | number | string | readonly string[];

export interface ActionDef {
  readonly name: string;
  readonly scope: Scope;
  readonly type: ActionType;
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Value when no policy sets the action. Absent: `get` returns undefined. */
  readonly default?: ActionValue;
  readonly description: string;
}

export interface PolicyDef {
  readonly name: string;
  readonly scope: Scope;
  readonly priority: number; // >= 1, lower wins
  readonly active: boolean;
  readonly realm: readonly string[];
  readonly resolver: readonly string[];
  readonly user: readonly string[];
  readonly client: readonly string[];
  /** eduMFA time expression, e.g. `Mon-Fri: 9:00-17:30, Sat: 9-12` (server local time). */
  readonly time: string | null;
  /** Normalised values (duration → ms, list → string[]). */
  readonly actions: Readonly<Record<string, ActionValue>>;
}

/** Who a decision is for. `user` undefined = no user context: user/realm/resolver filters are skipped. */
export interface Who {
  readonly user?: { readonly name: string; readonly realm: string; readonly resolver: string };
  readonly client?: string;
}

export interface ResolvedPolicy {
  /** The effective value (or the action's default). Throws PolicyError on conflicting values at the winning priority. */
  get<T extends ActionValue>(action: string): T | undefined;
  /** Names of the active policies of this scope that matched `who` (for the audit). */
  readonly matched: readonly string[];
}

export interface Explanation {
  readonly action: string;
  readonly value: ActionValue | undefined;
  /** Policy names that supplied the value; empty when it is the default. */
  readonly from: readonly string[];
  readonly conflict?: string;
}

export interface PolicyEngine {
  resolve(scope: Scope, who: Who): ResolvedPolicy;
  explain(scope: Scope, who: Who): Explanation[];
  readonly policies: readonly PolicyDef[];
  /** Swaps the whole set at once (SIGHUP reload). */
  replace(policies: readonly PolicyDef[]): void;
  /** All known actions (core + token modules). */
  readonly actions: ReadonlyMap<string, ActionDef>;
}
