import test from 'ava';
import { actionsOfScope, buildActionRegistry, CORE_ACTIONS, findAction, scopesOfAction } from '../../policies/actions.ts';
import { parsePolicies } from '../../policies/load.ts';
import { allActions } from '../../server/deps.ts';
import { SCOPES, type ActionDef } from '../../policies/types.ts';

/** The problems of a policy that sets `action` to `value` (through the same parser as the YAML), and the parsed value. */
function setTo(registry: ReadonlyMap<string, ActionDef>, action: ActionDef, value: unknown) {
  const parsed = parsePolicies([{ name: 'p', scope: action.scope, actions: { [action.name]: value } }], registry, 'policies');
  return { problems: parsed.problems, value: parsed.policies[0]?.actions[action.name] };
}

test('core actions: unique per scope, described, frozen', (t) => {
  const registry = buildActionRegistry(CORE_ACTIONS);
  t.is(registry.size, CORE_ACTIONS.length);
  for (const a of CORE_ACTIONS) {
    t.true(SCOPES.includes(a.scope), a.name);
    t.true(a.description.length > 10, a.name);
    t.true(Object.isFrozen(a), a.name);
  }
  t.deepEqual(registry.get('preferred_client_mode')!.default, ['interactive', 'webauthn', 'poll', 'u2f']);
  t.is(registry.get('otppin')!.default, 'tokenpin');
  t.is(registry.get('tokenissuer')!.default, 'pushgate');
  t.is(registry.get('max_token_per_user')!.min, 1);
  t.deepEqual(
    actionsOfScope(registry, 'admin').map((a) => a.name),
    [
      'triggerchallenge',
      'enroll',
      'delete',
      'enable',
      'disable',
      'reset',
      'setpin',
      'assign',
      'unassign',
      'set',
      'resync',
      'revoke',
      'losttoken',
      'tokenlist',
      'userlist',
      'resolverread',
      'auditlog',
    ],
  );
});

test('every default (core and token actions) is a value a policy could set: the parser takes it and keeps it as is', (t) => {
  const registry = allActions();
  const withDefault = [...registry.values()].filter((a) => a.default !== undefined);
  // Enumerated ones among them (enum, and list with allowed values) are where a default can fall outside the values.
  t.true(withDefault.filter((a) => a.values).length >= 10, 'the check covers the enumerated actions');
  for (const a of withDefault) {
    const { problems, value } = setTo(registry, a, a.default);
    t.deepEqual(problems, [], `${a.scope}.${a.name}: default ${JSON.stringify(a.default)}`);
    t.deepEqual(value, a.default, `${a.scope}.${a.name}`);
  }
  // The check can fail: a default outside the allowed values is refused by the same parser.
  const otppin = findAction(registry, 'authentication', 'otppin')!;
  t.deepEqual(setTo(registry, otppin, 'pin').problems, ['policies[0].actions.otppin must be one of tokenpin, userstore, none']);
  const modes = findAction(registry, 'authentication', 'preferred_client_mode')!;
  t.deepEqual(setTo(registry, modes, []).problems, ['policies[0].actions.preferred_client_mode must not be empty']);
});

test('registry: same name twice in one scope throws', (t) => {
  const dup: ActionDef = { name: 'otppin', scope: 'authentication', type: 'bool', description: 'x' };
  t.throws(() => buildActionRegistry(CORE_ACTIONS, [dup]), { message: "Duplicate policy action 'otppin' in scope authentication" });
});

test('registry: same name in another scope is kept under a scoped key and found by findAction', (t) => {
  const enroll: ActionDef = { name: 'x_ssl_verify', scope: 'enrollment', type: 'enum', values: ['0', '1'], default: '1', description: 'e' };
  const auth: ActionDef = { ...enroll, scope: 'authentication', description: 'a' };
  const registry = buildActionRegistry([enroll], [auth]);
  t.is(findAction(registry, 'enrollment', 'x_ssl_verify'), enroll);
  t.is(findAction(registry, 'authentication', 'x_ssl_verify'), auth);
  t.is(findAction(registry, 'admin', 'x_ssl_verify'), undefined);
  t.deepEqual(scopesOfAction(registry, 'x_ssl_verify'), ['enrollment', 'authentication']);
});
