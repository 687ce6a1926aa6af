import test from 'ava';
import { createCliWorld } from './cli_world.ts';

const GOOD = `
- name: staff-otp
  scope: authentication
  user: [alice]
  actions: { otppin: userstore, challenge_response: [hotp, totp] }
- name: labels
  scope: enrollment
  actions: { tokenissuer: ACME }
`;
const BROKEN = `
policies:
  - name: bad
    scope: authentication
    actions: { otppin: maybe, no_such_action: 1 }
  - name: worse
    scope: nowhere
    actions: {}
`;

test('policy check FILE: a broken file exits 1 and names each problem path; a good one prints ok', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const broken = w.write('broken.yaml', BROKEN);
  const r = await w.run(['policy', 'check', broken]);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  t.is(lines.length, 3, r.stderr);
  t.true(
    lines.every((l) => l.startsWith(`error: ${broken}: policy '`)),
    r.stderr,
  );
  t.regex(r.stderr, /policy 'bad' \(policies\[0\]\): actions\.otppin must be one of tokenpin, userstore, none/);
  t.regex(r.stderr, /policy 'bad' \(policies\[0\]\): actions\.no_such_action is not a known action/);
  t.regex(r.stderr, /policy 'worse' \(policies\[1\]\): scope must be one of/);

  const good = w.write('good.yaml', GOOD);
  const ok = await w.run(['policy', 'check', good]);
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, 'ok: 2 policies\n');

  const missing = await w.run(['policy', 'check', `${w.tmp}/nope.yaml`]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /nope\.yaml: cannot read/);
});

test('policy check without FILE validates the config (inline + policy_files)', async (t) => {
  const ok = await createCliWorld(
    { policies: [{ name: 'inline', scope: 'authorization', actions: { last_auth: '10h' } }], policy_files: ['good.yaml'] },
    { owner: t },
  );
  t.teardown(() => ok.close());
  ok.write('good.yaml', GOOD);
  const r = await ok.run(['policy', 'check']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'ok: 3 policies\n');

  const bad = await createCliWorld(
    { policies: [{ name: 'inline', scope: 'authorization', actions: { last_auth: 'soon' } }] },
    { owner: t },
  );
  t.teardown(() => bad.close());
  const b = await bad.run(['policy', 'check']);
  t.is(b.code, 1);
  t.is(
    b.stderr,
    "error: policy 'inline' (policies[0]): actions.last_auth must be a duration: a number followed by s, m, h, d or y (e.g. 10h)\n",
  );
  // every command refuses to run on a config with broken policies
  const list = await bad.run(['token', 'list']);
  t.is(list.code, 1);
  t.true(
    list.stderr.endsWith('error: policies[0].actions.last_auth must be a duration: a number followed by s, m, h, d or y (e.g. 10h)\n'),
    list.stderr,
  );
});

test('policy check warns (and still passes) when a wait outlasts the challenge it waits for', async (t) => {
  const policies = [{ name: 'legacy-wait', scope: 'authentication', actions: { edupush_wait: 300, push_wait: 60 } }];
  const w = await createCliWorld({ policies }, { owner: t });
  t.teardown(() => w.close());
  const r = await w.run(['policy', 'check']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'ok: 1 policies, 1 warning\n');
  t.is(
    r.stderr,
    "warning: policy 'legacy-wait': edupush_wait is 300 s, but edupush challenges are valid for 120 s (challenge.validity_seconds); "
      + "the phone's answer is refused after 120 s, so a longer wait can only end in a timeout. Set challenge.type_validity_seconds.edupush to at least 300, or lower the wait.\n",
  );

  const fixed = await createCliWorld({ policies, challenge: { type_validity_seconds: { edupush: 300 } } }, { owner: t });
  t.teardown(() => fixed.close());
  const f = await fixed.run(['policy', 'check']);
  t.is(f.code, 0, f.stderr);
  t.is(f.stdout, 'ok: 1 policies\n');
  t.is(f.stderr, '');
});

test('policy explain: each value with the policy it came from, defaults marked', async (t) => {
  const w = await createCliWorld({
    policy_files: ['p.yaml'],
    policies: [
      { name: 'office', scope: 'authentication', client: ['10.0.0.0/8'], priority: 1, actions: { passthru: true } },
      { name: 'max2', scope: 'enrollment', actions: { max_token_per_user: 2 } },
      { name: 'stale', scope: 'authorization', actions: { last_auth: '7d' } },
    ],
  });
  t.teardown(() => w.close());
  w.write('p.yaml', GOOD);

  const text = await w.run(['policy', 'explain', '--scope', 'authentication', '--user', 'alice']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^matched policies: staff-otp$/m);
  t.regex(text.stdout, /^otppin\s+userstore\s+staff-otp$/m);
  t.regex(text.stdout, /^challenge_response\s+hotp, totp\s+staff-otp$/m);
  t.regex(text.stdout, /^passthru\s+false\s+\(default\)$/m);
  t.regex(text.stdout, /^challenge_text\s+-\s+\(not set\)$/m);

  const office = await w.json(['policy', 'explain', '--scope', 'authentication', '--user', 'bob', '--client', '10.1.2.3', '--json']);
  t.deepEqual(office.matched, ['office']);
  t.like(office, { scope: 'authentication', user: 'bob', realm: 'default', client: '10.1.2.3' });
  const byName = Object.fromEntries(office.actions.map((a: { action: string }) => [a.action, a]));
  t.deepEqual(byName.passthru, { action: 'passthru', value: true, from: ['office'], default: false });
  t.deepEqual(byName.otppin, { action: 'otppin', value: 'tokenpin', from: [], default: true });

  const auth = await w.run(['policy', 'explain', '--scope', 'authorization', '--user', 'bob']);
  t.regex(auth.stdout, /^last_auth\s+7d\s+stale$/m);
  const enr = await w.run(['policy', 'explain', '--scope', 'enrollment', '--user', 'bob']);
  t.regex(enr.stdout, /^max_token_per_user\s+2\s+max2$/m);
  t.regex(enr.stdout, /^tokenissuer\s+ACME\s+labels$/m);
  t.regex(enr.stdout, /^tokenlabel\s+<s>\s+\(default\)$/m);

  t.is((await w.run(['policy', 'explain', '--scope', 'nope', '--user', 'bob'])).code, 2);
  t.is((await w.run(['policy', 'explain', '--scope', 'admin'])).code, 2);
  const badIp = await w.run(['policy', 'explain', '--scope', 'admin', '--user', 'bob', '--client', 'not-an-ip']);
  t.is(badIp.code, 2);
  t.regex(badIp.stderr, /--client must be an IP address/);
});

test('policy explain: conflicting values at the winning priority are shown as a conflict', async (t) => {
  const w = await createCliWorld({
    policies: [
      { name: 'a', scope: 'authentication', actions: { otppin: 'none' } },
      { name: 'b', scope: 'authentication', actions: { otppin: 'userstore' } },
    ],
  });
  t.teardown(() => w.close());
  const r = await w.run(['policy', 'explain', '--scope', 'authentication', '--user', 'x']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^otppin\s+CONFLICT\s+There are policies with conflicting actions: \[a, b\] for 'otppin'$/m);
});
