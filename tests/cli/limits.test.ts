/**
 * The CLI reaches the columns without the HTTP edge: its values are checked against COLUMN_LIMITS too (issue 9,
 * item 5), on every database — a clear error instead of a database error or a silently longer row on SQLite.
 */
import test from 'ava';
import { createCliWorld } from './cli_world.ts';
import { COLUMN_LIMITS } from '../../server/store/limits.ts';

test('admin add: a name longer than the admins column is refused before the database', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const long = 'a'.repeat(COLUMN_LIMITS.admins.username + 1);
  const r = await w.run(['admin', 'add', long, '--password-stdin'], 'pw\n');
  t.is(r.code, 2, r.stdout); // a usage error
  t.regex(r.stderr, /administrator name must be at most 120 characters/);
  const ok = await w.run(['admin', 'add', 'ä'.repeat(COLUMN_LIMITS.admins.username), '--password-stdin'], 'pw\n');
  t.is(ok.code, 0, ok.stderr);
});

test('token enroll: an overlong serial, description or user is 905 naming it; nothing is created', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const cases: Array<[string[], string]> = [
    [['--user', 'alice', '--serial', 'S'.repeat(41)], 'serial'],
    [['--user', 'alice', '--description', 'd'.repeat(256)], 'description'],
    [['--user', 'u'.repeat(256)], 'user'],
  ];
  for (const [args, name] of cases) {
    const r = await w.run(['token', 'enroll', '--type', 'hotp', ...args]);
    t.is(r.code, 1, `${name}: ${r.stdout}`);
    t.regex(
      r.stderr,
      new RegExp(`^error: ERR905: Parameter '${name}' is too long \\(at most ${name === 'serial' ? 40 : 255} characters\\)\\.$`, 'm'),
      name,
    );
    t.false(r.stderr.includes('audit write failed'), "the CLI's audit row is written");
  }
  const deps = await w.deps();
  t.deepEqual(await deps.store.tokens.list(), []);
});
