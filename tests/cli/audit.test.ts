import type { AddressInfo } from 'node:net';
import test from 'ava';
import { createApp } from '../../server/app.ts';
import { createCliWorld } from './cli_world.ts';

test('audit tail shows /validate/check rows (never the pass) and CLI admin actions', async (t) => {
  const w = await createCliWorld({ policies: [{ name: 'cr', scope: 'authentication', actions: { challenge_text: 'Enter it' } }] });
  t.teardown(() => w.close());
  t.is((await w.run(['token', 'enroll', '--type', 'spass', '--user', 'alice', '--serial', 'SPASS1', '--pin', 'sesame-4711'])).code, 0);

  const deps = await w.deps();
  const server = createApp(deps).listen(0, '127.0.0.1');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/validate/check`;
  for (const pass of ['sesame-4711', 'wrong-guess-99']) {
    const res = await fetch(url, { method: 'POST', body: new URLSearchParams({ user: 'alice', pass }) });
    t.is(res.status, 200);
  }

  const rows = (await w.run(['audit', 'tail', '--json'])).stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.deepEqual(
    rows.map((r) => `${r.action} ${r.outcome}`),
    ['cli token enroll OK', 'POST /validate/check ACCEPT', 'POST /validate/check REJECT'],
  );
  t.like(rows[0], {
    user: 'alice',
    realm: 'default',
    serials: ['SPASS1'],
    admin: `cli:${(await import('node:os')).userInfo().username}`,
    client: null,
  });
  t.like(rows[1], { user: 'alice', serials: ['SPASS1'], client: '127.0.0.1', success: true, policies: ['cr'], application: null });
  t.regex(rows[1].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  const last = await w.run(['audit', 'tail', '-n', '1', '--json']);
  t.is(last.stdout.trimEnd().split('\n').length, 1);
  t.like(JSON.parse(last.stdout), { outcome: 'REJECT' });

  const table = await w.run(['audit', 'tail']);
  t.regex(table.stdout, /^TIME\s+NODE\s+ACTION\s+OUTCOME\s+USER/);
  // the /validate row records the realm that was used (the default realm here)
  t.regex(table.stdout, /POST \/validate\/check\s+ACCEPT\s+alice\s+default\s+SPASS1\s+127\.0\.0\.1\s+-\s+cr\s+-\s/);
  const everything = (await w.run(['audit', 'tail', '--json'])).stdout + table.stdout;
  t.false(everything.includes('sesame-4711'));
  t.false(everything.includes('wrong-guess-99'));

  // failed admin actions are audited too
  t.is((await w.run(['token', 'disable', 'NOPE'])).code, 1);
  const failed = JSON.parse((await w.run(['audit', 'tail', '-n', '1', '--json'])).stdout);
  t.like(failed, {
    action: 'cli token disable',
    success: false,
    outcome: 'ERROR',
    serials: ['NOPE'],
    info: { error: 'The requested token could not be found.' },
  });
  t.is((await w.run(['audit', 'tail', '-n', '0'])).code, 2);
});

test('a long user name is cut in the table (not in --json), so it cannot push the other columns away', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const long = `${'x'.repeat(60)}tail`;
  const deps = await w.deps();
  await deps.store.audit.insert({ time: 1_000, action: 'POST /validate/check', success: false, outcome: 'REJECT', username: long });
  await deps.store.audit.insert({ time: 2_000, action: 'POST /validate/check', success: false, outcome: 'REJECT', username: 'bob' });
  const lines = (await w.run(['audit', 'tail'])).stdout.trimEnd().split('\n');
  t.is(lines.length, 3);
  t.true(lines[1]!.includes(`${'x'.repeat(19)}…`), lines[1]);
  t.false(lines[1]!.includes('tail'));
  const column = (line: string) => line.indexOf('REJECT');
  t.is(column(lines[1]!), column(lines[2]!), 'the rows line up');
  t.is(lines[1]!.length, lines[2]!.length, 'the long name takes no more room than the cap');
  t.is(JSON.parse((await w.run(['audit', 'tail', '-n', '2', '--json'])).stdout.split('\n')[0]!).user, long, 'the full name in JSON');
});
