import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildActionRegistry, CORE_ACTIONS } from '../../policies/actions.ts';
import { loadPolicyFiles, parsePolicies } from '../../policies/load.ts';
import type { ActionDef } from '../../policies/types.ts';

const EXTRA: ActionDef[] = [
  { name: 'edupush_wait', scope: 'authentication', type: 'int', min: 0, description: 'wait' },
  { name: 'edupush_ttl', scope: 'enrollment', type: 'int', min: 1, max: 60, description: 'ttl' },
  { name: 'edupush_ssl_verify', scope: 'enrollment', type: 'enum', values: ['0', '1'], default: '1', description: 'ssl' },
  { name: 'edupush_ssl_verify', scope: 'authentication', type: 'enum', values: ['0', '1'], default: '1', description: 'ssl' },
  { name: 'edupush_text_on_mobile', scope: 'authentication', type: 'string', description: 'text' },
  { name: 'anyint', scope: 'admin', type: 'int', description: 'unbounded' },
];
const actions = buildActionRegistry(CORE_ACTIONS, EXTRA);

const ok = (entry: Record<string, unknown> = {}) => ({ name: 'p', scope: 'authentication', actions: {}, ...entry });

function only(raw: unknown): string[] {
  return parsePolicies(raw, actions, 'policies').problems;
}

test('a minimal policy gets the defaults', (t) => {
  const { policies, problems } = parsePolicies([{ name: 'p', scope: 'admin', actions: { triggerchallenge: true } }], actions, 'policies');
  t.deepEqual(problems, []);
  t.deepEqual(policies, [
    {
      name: 'p',
      scope: 'admin',
      priority: 1,
      active: true,
      realm: [],
      resolver: [],
      user: [],
      client: [],
      time: null,
      actions: { triggerchallenge: true },
    },
  ]);
  t.true(Object.isFrozen(policies[0]));
  t.true(Object.isFrozen(policies[0]!.actions));
  t.true(Object.isFrozen(policies[0]!.realm));
});

test('null or missing input is an empty set', (t) => {
  t.deepEqual(parsePolicies(undefined, actions, 'policies'), { policies: [], problems: [] });
  t.deepEqual(parsePolicies(null, actions, 'policies'), { policies: [], problems: [] });
});

test('filters: strings are split on commas and trimmed, lists kept, numbers stringified', (t) => {
  const { policies, problems } = parsePolicies(
    [ok({ realm: ' a , b,,c ', user: ['x', ' !y ', 42], resolver: 'ldap', client: '10.0.0.0/8, !10.1.0.0/16 , ::1', time: '  ' })],
    actions,
    'policies',
  );
  t.deepEqual(problems, []);
  const p = policies[0]!;
  t.deepEqual(p.realm, ['a', 'b', 'c']);
  t.deepEqual(p.user, ['x', '!y', '42']);
  t.deepEqual(p.resolver, ['ldap']);
  t.deepEqual(p.client, ['10.0.0.0/8', '!10.1.0.0/16', '::1']);
  t.is(p.time, null, 'a blank time is no time filter');
});

test('priority, active and time are taken over', (t) => {
  const { policies, problems } = parsePolicies([ok({ priority: '3', active: false, time: ' Mon-Fri: 9-17 ' })], actions, 'policies');
  t.deepEqual(problems, []);
  t.is(policies[0]!.priority, 3);
  t.false(policies[0]!.active);
  t.is(policies[0]!.time, 'Mon-Fri: 9-17');
});

test('action values are coerced by type', (t) => {
  const { policies, problems } = parsePolicies(
    [
      ok({
        name: 'auth',
        actions: {
          passthru: true,
          passOnNoUser: 'false',
          edupush_wait: '20',
          otppin: 'userstore',
          edupush_ssl_verify: 0,
          edupush_text_on_mobile: 12345,
          challenge_response: 'hotp, totp  edupush,hotp',
          preferred_client_mode: ['poll', 'interactive'],
        },
      }),
      ok({ name: 'authz', scope: 'authorization', actions: { last_auth: '10h', tokentype: ['edupush'] } }),
      ok({ name: 'enr', scope: 'enrollment', actions: { edupush_ttl: 60, tokenlabel: 'x y <s>' } }),
    ],
    actions,
    'policies',
  );
  t.deepEqual(problems, []);
  t.deepEqual(policies[0]!.actions, {
    passthru: true,
    passOnNoUser: false,
    edupush_wait: 20,
    otppin: 'userstore',
    edupush_ssl_verify: '0',
    edupush_text_on_mobile: '12345',
    challenge_response: ['hotp', 'totp', 'edupush'],
    preferred_client_mode: ['poll', 'interactive'],
  });
  t.true(Object.isFrozen(policies[0]!.actions['challenge_response']));
  t.deepEqual(policies[1]!.actions, { last_auth: 36_000_000, tokentype: ['edupush'] });
  t.deepEqual(policies[2]!.actions, { edupush_ttl: 60, tokenlabel: 'x y <s>' });
});

test('durations: every unit', (t) => {
  const units: Record<string, number> = { '30s': 30_000, '5m': 300_000, '2h': 7_200_000, '7d': 604_800_000, '1y': 31_536_000_000 };
  for (const [text, ms] of Object.entries(units)) {
    const { policies, problems } = parsePolicies([ok({ scope: 'authorization', actions: { last_auth: text } })], actions, 'policies');
    t.deepEqual(problems, [], text);
    t.is(policies[0]!.actions['last_auth'], ms, text);
  }
});

const bad = test.macro((t, raw: unknown, expected: string[]) => {
  t.deepEqual(only(raw), expected);
});

test('problem: not a list', bad, { name: 'x' }, ['policies must be a list']);
test('problem: entry not a mapping', bad, [ok({}), 'oops'], ['policies[1] must be a mapping']);
test('problem: missing name', bad, [{ scope: 'admin', actions: {} }], ['policies[0].name must be a non-empty string']);
test(
  'problem: bad scope',
  bad,
  [ok({ scope: 'user' })],
  ['policies[0].scope must be one of authentication, enrollment, authorization, admin'],
);
test(
  'problem: unknown field',
  bad,
  [ok({ realms: 'a' })],
  [
    "policies[0].realms is not a known policy field; did you mean 'realm'? (known: name, scope, priority, active, realm, resolver, user, client, time, actions)",
  ],
);
test('problem: priority 0', bad, [ok({ priority: 0 })], ['policies[0].priority must be an integer >= 1']);
test('problem: priority fraction', bad, [ok({ priority: 1.5 })], ['policies[0].priority must be an integer >= 1']);
test('problem: active not bool', bad, [ok({ active: 'yes' })], ['policies[0].active must be true or false']);
test('problem: realm not a string or list', bad, [ok({ realm: { a: 1 } })], ['policies[0].realm must be a string or a list of strings']);
test('problem: empty filter entry', bad, [ok({ user: ['a', '!'] })], ['policies[0].user[1] must be a non-empty string']);
test(
  'problem: invalid regex in a filter',
  bad,
  [ok({ resolver: ['!ldap('] })],
  ["policies[0].resolver[0] is not a valid regular expression: 'ldap('"],
);
test(
  'problem: bad client entries',
  bad,
  [ok({ client: '10.0.0.0/8, 10.0.0.0/33, !host.example' })],
  [
    "policies[0].client[1] must be an IP address or CIDR network (optionally prefixed with !), got '10.0.0.0/33'",
    "policies[0].client[2] must be an IP address or CIDR network (optionally prefixed with !), got '!host.example'",
  ],
);
test(
  'problem: time not parseable',
  bad,
  [ok({ time: 'Mon-Fri 9-17' })],
  ["policies[0].time is invalid: 'Mon-Fri 9-17' does not look like 'Mon-Fri: 9:00-17:30'"],
);
test('problem: time not a string', bad, [ok({ time: 9 })], ["policies[0].time must be a string like 'Mon-Fri: 9:00-17:30'"]);
test('problem: actions missing', bad, [{ name: 'p', scope: 'admin' }], ['policies[0].actions must be a mapping of action names to values']);
test(
  'problem: unknown action',
  bad,
  [ok({ actions: { foo: 1 } })],
  ['policies[0].actions.foo is not a known action for scope authentication'],
);
test(
  'problem: action of another scope',
  bad,
  [ok({ actions: { last_auth: '1d' } })],
  ['policies[0].actions.last_auth is not a known action for scope authentication (it belongs to scope authorization)'],
);
test(
  'problem: int below min',
  bad,
  [ok({ name: 'a' }), ok({ name: 'b' }), ok({ name: 'c' }), ok({ name: 'd', actions: { edupush_wait: -1 } })],
  ['policies[3].actions.edupush_wait must be an integer >= 0'],
);
test(
  'problem: int not a number',
  bad,
  [ok({ actions: { edupush_wait: '10s' } })],
  ['policies[0].actions.edupush_wait must be an integer >= 0'],
);
test(
  'problem: int with min and max',
  bad,
  [ok({ scope: 'enrollment', actions: { edupush_ttl: 61 } })],
  ['policies[0].actions.edupush_ttl must be an integer between 1 and 60'],
);
test('problem: unbounded int', bad, [ok({ scope: 'admin', actions: { anyint: true } })], ['policies[0].actions.anyint must be an integer']);
test('problem: bool as yes', bad, [ok({ actions: { passthru: 'yes' } })], ['policies[0].actions.passthru must be true or false']);
test('problem: bool as null', bad, [ok({ actions: { passthru: null } })], ['policies[0].actions.passthru must be true or false']);
test(
  'problem: enum value',
  bad,
  [ok({ actions: { otppin: 'pin' } })],
  ['policies[0].actions.otppin must be one of tokenpin, userstore, none'],
);
test(
  'problem: duration without unit',
  bad,
  [ok({ scope: 'authorization', actions: { last_auth: 10 } })],
  ['policies[0].actions.last_auth must be a duration: a number followed by s, m, h, d or y (e.g. 10h)'],
);
test(
  'problem: duration with a bad unit',
  bad,
  [ok({ scope: 'authorization', actions: { last_auth: '10w' } })],
  ['policies[0].actions.last_auth must be a duration: a number followed by s, m, h, d or y (e.g. 10h)'],
);
test('preferred_client_mode keeps unknown entries (eduMFA ignores them when choosing)', (t) => {
  const { policies, problems } = parsePolicies([ok({ actions: { preferred_client_mode: 'poll, push' } })], actions, 'policies');
  t.deepEqual(problems, []);
  t.deepEqual(policies[0]!.actions.preferred_client_mode, ['poll', 'push']);
});
test('problem: list entry outside values', (t) => {
  const withValues = buildActionRegistry([
    { name: 'modes', scope: 'authentication', type: 'list', values: ['a', 'b'], description: 'test action' },
  ]);
  const { problems } = parsePolicies([ok({ actions: { modes: 'a c' } })], withValues, 'policies');
  t.deepEqual(problems, ['policies[0].actions.modes[1] must be one of a, b']);
});
test(
  'problem: list of the wrong shape',
  bad,
  [ok({ actions: { challenge_response: { a: 1 } } })],
  ['policies[0].actions.challenge_response must be a list or a comma/space separated string'],
);
test(
  'problem: empty list',
  bad,
  [ok({ actions: { challenge_response: ' , ' } })],
  ['policies[0].actions.challenge_response must not be empty'],
);
test(
  'problem: string from a list',
  bad,
  [ok({ actions: { challenge_text: ['a'] } })],
  ['policies[0].actions.challenge_text must be a string'],
);
test(
  'problem: duplicate names',
  bad,
  [ok({ name: 'a' }), ok({ name: 'b' }), ok({ name: 'a' })],
  ["policies[2].name 'a' is already used by policies[0]"],
);

test('several problems of one entry are all reported, the entry is dropped, others survive', (t) => {
  const { policies, problems } = parsePolicies(
    [ok({ name: 'good' }), { name: '', scope: 'nope', priority: -2, actions: { passthru: 1 } }],
    actions,
    'cfg.policies',
  );
  t.deepEqual(
    policies.map((p) => p.name),
    ['good'],
  );
  t.deepEqual(problems, [
    'cfg.policies[1].name must be a non-empty string',
    'cfg.policies[1].scope must be one of authentication, enrollment, authorization, admin',
    'cfg.policies[1].priority must be an integer >= 1',
  ]);
});

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'pushgate-policies-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('files: a list file and a { policies } file are both read', (t) => {
  withDir((dir) => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, '- name: wait\n  scope: authentication\n  realm: [staff]\n  actions:\n    edupush_wait: 20\n');
    writeFileSync(
      b,
      'policies:\n  - name: authz\n    scope: authorization\n    priority: 2\n    actions: { last_auth: 7d, no_detail_on_fail: true }\n',
    );
    const { policies, problems } = loadPolicyFiles([a, b], actions);
    t.deepEqual(problems, []);
    t.deepEqual(
      policies.map((p) => [p.name, p.priority, p.actions]),
      [
        ['wait', 1, { edupush_wait: 20 }],
        ['authz', 2, { last_auth: 604_800_000, no_detail_on_fail: true }],
      ],
    );
    t.deepEqual(policies[0]!.realm, ['staff']);
  });
});

test('files: problems are prefixed with the file, duplicates across files are found', (t) => {
  withDir((dir) => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, '- { name: x, scope: admin, actions: { enroll: true } }\n');
    writeFileSync(
      b,
      'policies:\n  - { name: ok, scope: admin, actions: {} }\n  - { name: x, scope: admin, actions: { enroll: maybe } }\n  - { name: x, scope: admin, actions: {} }\n',
    );
    const { policies, problems } = loadPolicyFiles([a, b], actions);
    t.deepEqual(
      policies.map((p) => p.name),
      ['x', 'ok'],
    );
    t.deepEqual(problems, [
      `${b}: policies[1].actions.enroll must be true or false`,
      `${b}: policies[2].name 'x' is already used by ${a}: policies[0]`,
    ]);
  });
});

test('files: unreadable, invalid YAML, wrong shapes, empty', (t) => {
  withDir((dir) => {
    const missing = join(dir, 'missing.yaml');
    const broken = join(dir, 'broken.yaml');
    const scalar = join(dir, 'scalar.yaml');
    const extra = join(dir, 'extra.yaml');
    const notList = join(dir, 'notlist.yaml');
    const empty = join(dir, 'empty.yaml');
    const dupKey = join(dir, 'dupkey.yaml');
    writeFileSync(broken, '- name: [unclosed\n');
    writeFileSync(scalar, 'just text\n');
    writeFileSync(extra, 'policies: []\npolicy: []\n');
    writeFileSync(notList, 'policies: { name: x }\n');
    writeFileSync(empty, '');
    writeFileSync(dupKey, '- name: a\n  name: b\n  scope: admin\n  actions: {}\n');
    const { policies, problems } = loadPolicyFiles([missing, broken, scalar, extra, notList, empty, dupKey], actions);
    t.deepEqual(policies, []);
    t.is(problems.length, 6);
    t.regex(problems[0]!, new RegExp(`^${missing}: cannot read: ENOENT`));
    t.regex(problems[1]!, new RegExp(`^${broken}:\\d+:\\d+: invalid YAML: .* — line \\d+: "`));
    t.is(problems[2], `${scalar}: must be a list of policies or a mapping with 'policies'`);
    t.is(problems[3], `${extra}: policy is not a known key (expected a list or a mapping with 'policies')`);
    t.is(problems[4], `${notList}: policies must be a list`);
    t.is(problems[5], `${dupKey}:2:3: invalid YAML: Map keys must be unique — line 2: "  name: b"`);
  });
});
