import test from 'ava';
import { actionsOfScope, buildActionRegistry, CORE_ACTIONS, findAction, scopesOfAction } from '../../policies/actions.ts';
import { SCOPES, type ActionDef } from '../../policies/types.ts';

test('core actions: unique per scope, valid defaults, frozen', (t) => {
  const registry = buildActionRegistry(CORE_ACTIONS);
  t.is(registry.size, CORE_ACTIONS.length);
  for (const a of CORE_ACTIONS) {
    t.true(SCOPES.includes(a.scope), a.name);
    t.true(a.description.length > 10, a.name);
    t.true(Object.isFrozen(a), a.name);
    if (a.type === 'enum') t.true(a.values!.includes(a.default as string), a.name);
    if (a.type === 'list' && a.values && a.default) t.true((a.default as string[]).every((v) => a.values!.includes(v)), a.name);
  }
  t.deepEqual(registry.get('preferred_client_mode')!.default, ['interactive', 'webauthn', 'poll', 'u2f']);
  t.is(registry.get('otppin')!.default, 'tokenpin');
  t.is(registry.get('tokenissuer')!.default, 'pushgate');
  t.is(registry.get('max_token_per_user')!.min, 1);
  t.deepEqual(
    actionsOfScope(registry, 'admin').map((a) => a.name),
    ['triggerchallenge', 'enroll', 'delete', 'enable', 'disable', 'reset', 'setpin', 'assign', 'unassign', 'set', 'resync', 'revoke',
      'losttoken', 'tokenlist', 'userlist', 'resolverread', 'auditlog'],
  );
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
