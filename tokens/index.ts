/** The token-type registry. OTP types live here; the push module appends its own types to the list it builds. */
import type { ActionDef } from '../policies/types.ts';
import { ParameterError } from '../core/errors.ts';
import { hotp } from './hotp.ts';
import { pw } from './pw.ts';
import { spass } from './spass.ts';
import { totp } from './totp.ts';
import { PUSH_TOKEN_TYPES } from './push/index.ts';
import type { TokenType } from './types.ts';

export interface TokenRegistry {
  /** The type by name (case-insensitive), or undefined. */
  get(type: string): TokenType | undefined;
  /** The type by name; ParameterError `Invalid tokentype provided. ttype: <type>` when unknown. */
  require(type: string): TokenType;
  /** All types, in registration order. */
  list(): readonly TokenType[];
  /** The policy actions all types declare (each name/scope pair once). */
  actions(): ActionDef[];
}

export const OTP_TOKEN_TYPES: readonly TokenType[] = [hotp, totp, spass, pw];

/** Every type the server registers. The push module adds its types here. */
export const ALL_TOKEN_TYPES: readonly TokenType[] = [...OTP_TOKEN_TYPES, ...PUSH_TOKEN_TYPES];

/**
 * Builds a registry. Throws on two types with the same name, or on two different action definitions with the same
 * name in the same scope (identical definitions shared by several types are kept once; one name may exist in several
 * scopes, as policies/actions.ts allows).
 */
export function createTokenRegistry(types: readonly TokenType[]): TokenRegistry {
  const byName = new Map<string, TokenType>();
  for (const t of types) {
    const key = t.type.toLowerCase();
    if (byName.has(key)) throw new Error(`Token type registered twice: ${t.type}`);
    byName.set(key, t);
  }
  const actions = new Map<string, ActionDef>();
  for (const t of types) {
    for (const a of t.policyActions) {
      const key = `${a.scope}:${a.name}`;
      const seen = actions.get(key);
      if (seen === undefined) actions.set(key, a);
      else if (!sameAction(seen, a)) throw new Error(`Policy action ${a.name} (${a.scope}) declared differently twice`);
    }
  }
  const list = [...types];
  const actionList = [...actions.values()];
  return {
    get: (type) => byName.get(type.toLowerCase()),
    require(type) {
      const found = byName.get(type.toLowerCase());
      if (found === undefined) throw new ParameterError(`Invalid tokentype provided. ttype: ${type}`);
      return found;
    },
    list: () => list,
    actions: () => [...actionList],
  };
}

function sameAction(a: ActionDef, b: ActionDef): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
