import test from 'ava';
import { PolicyError } from '../../core/errors.ts';
import type { Clock } from '../../core/clock.ts';
import { buildActionRegistry, CORE_ACTIONS } from '../../policies/actions.ts';
import { createPolicyEngine } from '../../policies/engine.ts';
import { parsePolicies } from '../../policies/load.ts';
import type { ActionDef, PolicyDef } from '../../policies/types.ts';

const EXTRA: ActionDef[] = [
  { name: 'edupush_wait', scope: 'authentication', type: 'int', min: 0, description: 'wait' },
  {
    name: 'edupush_text_on_mobile',
    scope: 'authentication',
    type: 'string',
    default: 'Do you want to confirm the login?',
    description: 'text',
  },
  { name: 'edupush_ssl_verify', scope: 'enrollment', type: 'enum', values: ['0', '1'], default: '1', description: 'ssl' },
  { name: 'edupush_ssl_verify', scope: 'authentication', type: 'enum', values: ['0', '1'], default: '1', description: 'ssl' },
];
const actions = buildActionRegistry(CORE_ACTIONS, EXTRA);

const MONDAY_10 = new Date(2024, 0, 1, 10, 0).getTime(); // local time, like the engine reads it

function fakeClock(start = MONDAY_10): Clock & { set(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    schedule: () => () => {},
    set: (ms) => {
      t = ms;
    },
  };
}

function world(raw: unknown[], clock: Clock = fakeClock()) {
  const { policies, problems } = parsePolicies(raw, actions, 'policies');
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return createPolicyEngine({ policies, actions, clock });
}

const alice = { user: { name: 'alice', realm: 'staff', resolver: 'ldap' }, client: '10.0.0.5' };
const bob = { user: { name: 'bob', realm: 'students', resolver: 'sql' }, client: '192.168.1.9' };

test('no policies: defaults or undefined', (t) => {
  const r = world([]).resolve('authentication', alice);
  t.deepEqual(r.matched, []);
  t.is(r.get('otppin'), 'tokenpin');
  t.is(r.get('passthru'), false);
  t.is(r.get('edupush_wait'), undefined);
  t.is(r.get('challenge_text'), undefined);
  t.deepEqual(r.get('preferred_client_mode'), ['interactive', 'webauthn', 'poll', 'u2f']);
  t.true(Object.isFrozen(r.get('preferred_client_mode')));
});

test('a matching policy sets the value', (t) => {
  const r = world([{ name: 'w', scope: 'authentication', actions: { edupush_wait: 20, otppin: 'none' } }]).resolve('authentication', alice);
  t.is(r.get<number>('edupush_wait'), 20);
  t.is(r.get('otppin'), 'none');
  t.deepEqual(r.matched, ['w']);
});

test('other scopes and inactive policies are ignored', (t) => {
  const e = world([
    { name: 'a', scope: 'authorization', actions: { no_detail_on_fail: true } },
    { name: 'b', scope: 'authentication', active: false, actions: { edupush_wait: 5 } },
  ]);
  const r = e.resolve('authentication', alice);
  t.deepEqual(r.matched, []);
  t.is(r.get('edupush_wait'), undefined);
  t.true(e.resolve('authorization', alice).get('no_detail_on_fail'));
});

test('the same action name in two scopes resolves per scope', (t) => {
  const e = world([
    { name: 'e', scope: 'enrollment', actions: { edupush_ssl_verify: '0' } },
    { name: 'a', scope: 'authentication', actions: { edupush_ssl_verify: 1 } },
  ]);
  t.is(e.resolve('enrollment', alice).get('edupush_ssl_verify'), '0');
  t.is(e.resolve('authentication', alice).get('edupush_ssl_verify'), '1');
});

test('user, realm and resolver filters, with negation and regex', (t) => {
  const e = world([
    { name: 'staff', scope: 'authentication', realm: 'staff', actions: { edupush_wait: 10 } },
    { name: 'not-bob', scope: 'authentication', priority: 2, user: '!bob', actions: { challenge_text: 'hi' } },
    { name: 'sql', scope: 'authentication', resolver: ['s.l'], actions: { passthru: true } },
  ]);
  const a = e.resolve('authentication', alice);
  t.deepEqual(a.matched, ['staff', 'not-bob']);
  t.is(a.get('edupush_wait'), 10);
  t.is(a.get('challenge_text'), 'hi');
  t.false(a.get('passthru'));
  const b = e.resolve('authentication', bob);
  t.deepEqual(b.matched, ['sql']);
  t.is(b.get('edupush_wait'), undefined);
  t.true(b.get('passthru'));
});

test('without a user context the user/realm/resolver filters are skipped, the client filter is not', (t) => {
  const e = world([
    { name: 'staff', scope: 'authentication', realm: 'staff', user: 'alice', resolver: 'ldap', actions: { edupush_wait: 10 } },
    { name: 'lan', scope: 'authentication', realm: 'other', client: '10.0.0.0/8', actions: { challenge_text: 'lan' } },
  ]);
  t.deepEqual(e.resolve('authentication', { client: '10.1.1.1' }).matched, ['lan', 'staff']);
  t.deepEqual(e.resolve('authentication', { client: '172.16.0.1' }).matched, ['staff']);
  t.deepEqual(e.resolve('authentication', {}).matched, ['staff']);
  t.deepEqual(e.resolve('authentication', { user: { name: '', realm: '', resolver: '' } }).matched, [], 'an empty user is filtered');
});

test('client filter: v4, v6, mapped and unknown clients', (t) => {
  const e = world([
    { name: 'c', scope: 'authentication', client: ['10.0.0.0/8', '!10.9.0.0/16', '2001:db8::/32'], actions: { edupush_wait: 1 } },
  ]);
  const m = (client?: string) => e.resolve('authentication', { ...(client === undefined ? {} : { client }) }).matched.length === 1;
  t.true(m('10.1.2.3'));
  t.true(m('::ffff:10.1.2.3'));
  t.false(m('10.9.2.3'));
  t.true(m('2001:db8::7'));
  t.false(m('2001:db9::7'));
  t.false(m(undefined));
});

test('time filter follows the injected clock', (t) => {
  const clock = fakeClock();
  const e = world(
    [{ name: 'office', scope: 'authentication', time: 'Mon-Fri: 9:00-17:30, Sat: 9-12', actions: { edupush_wait: 30 } }],
    clock,
  );
  t.is(e.resolve('authentication', alice).get('edupush_wait'), 30);
  clock.set(new Date(2024, 0, 1, 17, 30).getTime());
  t.is(e.resolve('authentication', alice).get('edupush_wait'), undefined);
  clock.set(new Date(2024, 0, 6, 11, 59).getTime());
  t.is(e.resolve('authentication', alice).get('edupush_wait'), 30);
  clock.set(new Date(2024, 0, 7, 11, 0).getTime());
  t.deepEqual(e.resolve('authentication', alice).matched, []);
});

test('the lowest priority number wins; matched is sorted by priority then name', (t) => {
  const e = world([
    { name: 'z-low', scope: 'authentication', priority: 5, actions: { edupush_wait: 50, challenge_text: 'low' } },
    { name: 'b-high', scope: 'authentication', priority: 1, actions: { edupush_wait: 10 } },
    { name: 'a-mid', scope: 'authentication', priority: 3, actions: { edupush_wait: 30 } },
  ]);
  const r = e.resolve('authentication', alice);
  t.deepEqual(r.matched, ['b-high', 'a-mid', 'z-low']);
  t.is(r.get('edupush_wait'), 10);
  t.is(r.get('challenge_text'), 'low', 'an action set only at a worse priority still applies');
});

test('conflicting values at the winning priority are a PolicyError 403/303', (t) => {
  const e = world([
    { name: 'one', scope: 'authentication', priority: 2, actions: { edupush_wait: 10 } },
    { name: 'two', scope: 'authentication', priority: 2, actions: { edupush_wait: 20 } },
    { name: 'three', scope: 'authentication', priority: 3, actions: { edupush_wait: 30 } },
  ]);
  const r = e.resolve('authentication', alice);
  const err = t.throws(() => r.get('edupush_wait'), { instanceOf: PolicyError });
  t.is(err.status, 403);
  t.is(err.code, 303);
  t.is(err.message, "There are policies with conflicting actions: [one, two] for 'edupush_wait'");
  t.is(err.wireMessage, err.message);
  t.throws(() => r.get('edupush_wait'), { instanceOf: PolicyError }, 'the cached decision throws again');
  t.is(r.get('otppin'), 'tokenpin', 'other actions still resolve');
});

test('equal values at the winning priority are no conflict; a better priority hides a conflict', (t) => {
  const e = world([
    { name: 'one', scope: 'authentication', priority: 2, actions: { edupush_wait: 10 } },
    { name: 'two', scope: 'authentication', priority: 2, actions: { edupush_wait: '10' } },
    { name: 'x', scope: 'authentication', priority: 1, actions: { otppin: 'none' } },
    { name: 'y', scope: 'authentication', priority: 2, actions: { otppin: 'userstore' } },
    { name: 'z', scope: 'authentication', priority: 2, actions: { otppin: 'tokenpin' } },
  ]);
  const r = e.resolve('authentication', alice);
  t.is(r.get('edupush_wait'), 10);
  t.is(r.get('otppin'), 'none');
});

test('lists compare as sets', (t) => {
  const e = world([
    { name: 'a', scope: 'authentication', actions: { preferred_client_mode: 'poll interactive', challenge_response: ['hotp'] } },
    {
      name: 'b',
      scope: 'authentication',
      actions: { preferred_client_mode: ['interactive', 'poll'], challenge_response: ['hotp', 'totp'] },
    },
  ]);
  const r = e.resolve('authentication', alice);
  t.deepEqual(r.get('preferred_client_mode'), ['poll', 'interactive']);
  t.true(Object.isFrozen(r.get('preferred_client_mode')));
  t.throws(() => r.get('challenge_response'), {
    instanceOf: PolicyError,
    message: "There are policies with conflicting actions: [a, b] for 'challenge_response'",
  });
});

test('bool false is as if the action were absent', (t) => {
  const e = world([
    { name: 'off', scope: 'authentication', priority: 1, actions: { passthru: false } },
    { name: 'on', scope: 'authentication', priority: 5, actions: { passthru: true } },
    { name: 'off2', scope: 'authentication', priority: 1, actions: { passOnNoUser: false } },
  ]);
  const r = e.resolve('authentication', alice);
  t.true(r.get('passthru'), 'false at priority 1 neither wins nor conflicts');
  t.false(r.get('passOnNoUser'));
  t.deepEqual(
    e.explain('authentication', alice).find((x) => x.action === 'passthru'),
    { action: 'passthru', value: true, from: ['on'] },
  );
});

test('unknown action names are programming errors, not PolicyErrors', (t) => {
  const r = world([]).resolve('authentication', alice);
  const err = t.throws(() => r.get('no_such_action'));
  t.false(err instanceof PolicyError);
  t.is(err.message, "Unknown policy action 'no_such_action' for scope authentication");
  t.throws(() => r.get('last_auth'), { message: "Unknown policy action 'last_auth' for scope authentication" });
});

test('explain lists every action of the scope with its origin and conflicts', (t) => {
  const e = world([
    { name: 'one', scope: 'authorization', actions: { last_auth: '1h', authorized: 'deny_access' } },
    { name: 'two', scope: 'authorization', actions: { authorized: 'grant_access' } },
  ]);
  const ex = e.explain('authorization', alice);
  t.deepEqual(
    ex.map((x) => x.action),
    [
      'last_auth',
      'no_detail_on_success',
      'no_detail_on_fail',
      'api_key_required',
      'application_required',
      'authorized',
      'tokentype',
      'add_user_in_response',
      'add_resolver_in_response',
      'declined_authentication',
    ],
  );
  t.deepEqual(ex[0], { action: 'last_auth', value: 3_600_000, from: ['one'] });
  t.deepEqual(ex[1], { action: 'no_detail_on_success', value: false, from: [] });
  const of = (name: string) => ex.find((x) => x.action === name);
  t.deepEqual(of('authorized'), {
    action: 'authorized',
    value: undefined,
    from: ['one', 'two'],
    conflict: "There are policies with conflicting actions: [one, two] for 'authorized'",
  });
  t.deepEqual(of('tokentype'), { action: 'tokentype', value: undefined, from: [] });
  t.deepEqual(of('api_key_required'), { action: 'api_key_required', value: false, from: [] });
});

test('replace swaps the whole set; a resolved policy keeps its snapshot', (t) => {
  const e = world([{ name: 'old', scope: 'authentication', actions: { edupush_wait: 1 } }]);
  const before = e.resolve('authentication', alice);
  const next = parsePolicies([{ name: 'new', scope: 'authentication', actions: { edupush_wait: 2 } }], actions, 'policies').policies;
  e.replace(next);
  t.deepEqual(
    e.policies.map((p) => p.name),
    ['new'],
  );
  t.is(e.resolve('authentication', alice).get('edupush_wait'), 2);
  t.deepEqual(before.matched, ['old']);
  t.is(before.get('edupush_wait'), 1);
});

test('replace with an invalid time throws and keeps the old set', (t) => {
  const e = world([{ name: 'old', scope: 'authentication', actions: { edupush_wait: 1 } }]);
  const broken: PolicyDef = { ...e.policies[0]!, name: 'broken', time: 'whenever' };
  t.throws(() => e.replace([broken]), { message: /Policy 'broken' has an invalid time/ });
  t.deepEqual(
    e.policies.map((p) => p.name),
    ['old'],
  );
});

test('resolved policies, matched lists and explanations are frozen', (t) => {
  const e = world([{ name: 'p', scope: 'authentication', actions: { challenge_response: ['hotp'] } }]);
  const r = e.resolve('authentication', alice);
  t.true(Object.isFrozen(r));
  t.true(Object.isFrozen(r.matched));
  t.true(Object.isFrozen(r.get('challenge_response')));
  t.true(e.explain('authentication', alice).every((x) => Object.isFrozen(x)));
  t.is(e.actions, actions);
});
