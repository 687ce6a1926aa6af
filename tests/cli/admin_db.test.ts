import test from 'ava';
import { createCliWorld } from './cli_world.ts';

test('db migrate applies once, then reports up to date; db cleanup prints counts', async (t) => {
  const w = await createCliWorld({}, { init: false });
  t.teardown(() => w.close());
  const first = await w.run(['db', 'migrate']);
  t.is(first.code, 0, first.stderr);
  t.is(
    first.stdout,
    'applied 001_initial\napplied 002_exact_identifiers\napplied 003_backoff\napplied 004_audit_node\napplied 005_token_admin\napplied 006_audit_request_id\napplied 007_push_fatigue\napplied 008_login_addresses\napplied 010_selfservice_sessions\napplied 011_applications\napplied 012_audit_application\n',
  );
  t.regex(first.stderr, /SECRETS KEY CREATED/);
  const again = await w.run(['db', 'migrate']);
  t.is(again.stdout, 'database is up to date\n');
  t.is(again.stderr, '');
  const clean = await w.run(['db', 'cleanup']);
  t.is(clean.code, 0);
  t.is(
    clean.stdout,
    'deleted 0 challenges, 0 tokens, 0 audit rows, 0 login addresses, 0 push back-off rows, 0 self-service sessions, 0 request nonces, 0 webhook events\n',
  );
});

test('admin add (password from stdin, one newline trimmed) / list / delete', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const add = await w.run(['admin', 'add', 'root', '--password-stdin'], 'pa ss\n');
  t.is(add.code, 0, add.stderr);
  t.is(add.stdout, 'added administrator root\n');
  t.is((await w.run(['admin', 'add', 'ops', '--password-stdin'], 'x\r\n')).code, 0);

  const list = await w.json<Array<{ username: string; created: number }>>(['admin', 'list', '--json']);
  t.deepEqual(
    list.map((a) => a.username),
    ['ops', 'root'],
  );
  t.true(list.every((a) => typeof a.created === 'number' && !('password_hash' in a) && !('passwordHash' in a)));
  const table = await w.run(['admin', 'list']);
  t.regex(table.stdout, /^USERNAME\s+CREATED\n/);
  t.regex(table.stdout, /\nroot\s+\d{4}-\d\d-\d\dT/);

  const deps = await w.deps();
  const root = await deps.store.admins.byName('root');
  t.true(await deps.pins.verify(root!.passwordHash, 'pa ss'));
  t.false(await deps.pins.verify(root!.passwordHash, 'pa ss\n'));
  t.true(await deps.pins.verify((await deps.store.admins.byName('ops'))!.passwordHash, 'x'));

  const dup = await w.run(['admin', 'add', 'root', '--password-stdin'], 'other\n');
  t.is(dup.code, 1);
  t.is(dup.stderr, 'error: administrator root already exists\n');
  const empty = await w.run(['admin', 'add', 'nobody', '--password-stdin'], '\n');
  t.is(empty.code, 1);
  t.is(empty.stderr, 'error: empty password on stdin\n');
  const noFlag = await w.run(['admin', 'add', 'nobody']);
  t.is(noFlag.code, 2);
  t.regex(noFlag.stderr, /password-stdin/);

  const del = await w.run(['admin', 'delete', 'ops']);
  t.is(del.code, 0);
  t.is(del.stdout, 'deleted administrator ops\n');
  const gone = await w.run(['admin', 'delete', 'ops']);
  t.is(gone.code, 1);
  t.is(gone.stderr, 'error: no administrator ops\n');
  t.deepEqual(
    (await w.json<Array<{ username: string }>>(['admin', 'list', '--json'])).map((a) => a.username),
    ['root'],
  );
});
