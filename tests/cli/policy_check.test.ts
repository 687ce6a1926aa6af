/** `pushgate policy check` (issue 10): every problem in one run, by policy name, "did you mean", YAML lines, FILE vs config. */
import test from 'ava';
import { closest, editDistance } from '../../policies/suggest.ts';
import { createCliWorld } from './cli_world.ts';

test('edit distance and the closest name', (t) => {
  t.is(editDistance('kitten', 'sitting'), 3);
  t.is(editDistance('', 'abc'), 3);
  t.is(editDistance('otppin', 'otppin'), 0);
  t.is(closest('otpin', ['passthru', 'otppin']), 'otppin');
  t.is(closest('passonnotoken', ['passOnNoToken', 'passOnNoUser']), 'passOnNoToken', 'case does not count');
  t.is(closest('realms', ['realm', 'resolver']), 'realm');
  t.is(closest('x', ['time', 'user']), undefined, 'nothing close');
  t.is(closest('frobnicate', ['otppin', 'passthru']), undefined);
});

test('policy check: every problem of the config at once — settings and policies, each policy by name, with suggestions', async (t) => {
  const w = await createCliWorld(
    {
      server: { port: 'high', hots: 'x' },
      policies: [
        { name: 'office', scope: 'authentication', actions: { otpin: 'tokenpin', passthru: 'maybe' } },
        { name: 'enrol', scope: 'enrolment', actions: {} },
        { scope: 'admin', actions: {} },
        { name: 'labels', scope: 'enrollment', realms: ['a'], actions: { tokenlabel: '<u>' } },
      ],
      policy_files: ['more.yaml'],
    },
    { init: false },
  );
  t.teardown(() => w.close());
  w.write('more.yaml', '- name: late\n  scope: authorization\n  actions: { last_auth: soon, no_detail_on_fial: true }\n');
  const r = await w.run(['policy', 'check']);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.deepEqual(r.stderr.trimEnd().split('\n'), [
    "error: server.hots is not a known setting; did you mean 'host'?",
    'error: server.port must be an integer between 0 and 65535',
    "error: policy 'office' (policies[0]): actions.otpin is not a known action for scope authentication; did you mean 'otppin'?",
    "error: policy 'office' (policies[0]): actions.passthru must be true or false",
    "error: policy 'enrol' (policies[1]): scope must be one of authentication, enrollment, authorization, admin; did you mean 'enrollment'?",
    'error: a policy without a name (policies[2]): name must be a non-empty string',
    "error: policy 'labels' (policies[3]): realms is not a known policy field; did you mean 'realm'? (known: name, scope, priority, active, realm, resolver, user, client, time, actions)",
    `error: ${w.tmp}/more.yaml: policy 'late' (policies[0]): actions.last_auth must be a duration: a number followed by s, m, h, d or y (e.g. 10h)`,
    `error: ${w.tmp}/more.yaml: policy 'late' (policies[0]): actions.no_detail_on_fial is not a known action for scope authorization; did you mean 'no_detail_on_fail'?`,
  ]);
});

test('policy check FILE: a YAML syntax error shows its line; a config given as FILE is named as such', async (t) => {
  const w = await createCliWorld({}, { init: false });
  t.teardown(() => w.close());
  const broken = w.write('broken.yaml', '- name: a\n  scope: admin\n   actions: {}\n');
  const r = await w.run(['policy', 'check', broken]);
  t.is(r.code, 1);
  t.is(r.stderr, `error: ${broken}:2:10: invalid YAML: Nested mappings are not allowed in compact mappings — line 2: "  scope: admin"\n`);

  const asFile = await w.run(['policy', 'check', w.configPath]);
  t.is(asFile.code, 1);
  t.is(
    asFile.stderr,
    `error: ${w.configPath} is a pushgate config (it has database, secrets, pin, server), not a policy file: `
      + `check a config with \`pushgate policy check --config ${w.configPath}\`\n`,
  );

  // the config's own YAML error also shows its line
  const badConfig = w.write('bad-config.yaml', 'server:\n  port: [1\n');
  const c = await w.run(['--config', badConfig, 'policy', 'check'], '', { noConfig: true });
  t.is(c.code, 1);
  t.regex(c.stderr, new RegExp(`^error: ${badConfig.replace(/[.]/g, '\\.')}:\\d+:\\d+: invalid YAML: .* — line \\d+: `));

  const help = await w.run(['policy', 'check', '--help']);
  t.regex(
    help.stdout.replace(/\s+/g, ' '),
    /FILE is a POLICY file .* not the config; without FILE the config \(--config \/ PUSHGATE_CONFIG\) is checked/,
  );
});
