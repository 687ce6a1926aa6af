/**
 * Read-only commands never create a database or a secrets key (issue 10): run against a config whose database and
 * key do not exist, each says what is missing and where (exit 1) and leaves the directory as it was. Only the
 * commands that set up an installation (serve, db migrate, admin add, token enroll, apikey create) create them.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { TEST_DB } from '../helpers/databases.ts';
import { createCliWorld } from './cli_world.ts';

const READ_ONLY: string[][] = [
  ['token', 'list'],
  ['token', 'show', 'X1'],
  ['token', 'enable', 'X1'],
  ['token', 'disable', 'X1'],
  ['token', 'delete', 'X1'],
  ['token', 'reset', 'X1'],
  ['admin', 'list'],
  ['admin', 'delete', 'root'],
  ['audit', 'tail'],
  ['db', 'cleanup'],
];

test('read-only commands on a missing installation: exit 1, name the missing database and key with their paths, create nothing', async (t) => {
  const w = await createCliWorld({}, { init: false });
  t.teardown(() => w.close());
  const before = fs.readdirSync(w.tmp).sort();
  for (const args of [...READ_ONLY, ['token', 'set-pin', 'X1', '--pin-stdin']]) {
    const r = await w.run(args, '1234\n');
    const label = args.join(' ');
    t.is(r.code, 1, label);
    t.is(r.stdout, '', label);
    const lines = r.stderr.trimEnd().split('\n');
    if (TEST_DB === 'sqlite') {
      t.is(lines[0], `error: no database at ${path.join(w.tmp, 'pushgate.db')} (database.url), config: ${w.configPath}`, label);
      t.is(lines[1], `error: no secrets key at ${path.join(w.tmp, 'pushgate.key')} (secrets.key_file), config: ${w.configPath}`, label);
    } else {
      t.is(lines[0], `error: no secrets key at ${path.join(w.tmp, 'pushgate.key')} (secrets.key_file), config: ${w.configPath}`, label);
    }
    t.is(
      lines.at(-1),
      `error: pushgate ${args.slice(0, 2).join(' ')} creates neither a database nor a key: check --config / PUSHGATE_CONFIG `
        + '(and PUSHGATE_DATABASE_URL, PUSHGATE_KEY_FILE); a new installation starts with `pushgate db migrate` (or `pushgate serve`).',
      label,
    );
    t.deepEqual(fs.readdirSync(w.tmp).sort(), before, `${label} created nothing`);
  }
  // policy explain and policy check need neither
  t.is((await w.run(['policy', 'explain', '--scope', 'authentication', '--user', 'alice'])).code, 0);
  t.is((await w.run(['policy', 'check'])).code, 0);
  t.deepEqual(fs.readdirSync(w.tmp).sort(), before);
});

test('a key that exists but a database without pushgate tables: named, nothing created', async (t) => {
  const w = await createCliWorld({}, { init: false });
  t.teardown(() => w.close());
  fs.writeFileSync(path.join(w.tmp, 'pushgate.key'), 'ab'.repeat(32) + '\n');
  if (TEST_DB === 'sqlite') fs.writeFileSync(path.join(w.tmp, 'pushgate.db'), ''); // an empty SQLite file
  const r = await w.run(['token', 'list']);
  t.is(r.code, 1);
  t.regex(r.stderr, /^error: no pushgate tables in the database \S+ \(database\.url\), config: /);
  t.false(r.stderr.includes('pushgate.key'), 'the key is there');
  const migrate = await w.run(['db', 'migrate']);
  t.is(migrate.code, 0, migrate.stderr);
  t.is((await w.run(['token', 'list'])).stdout, 'no tokens\n');
});

test('the commands that set up an installation create the database and the key', async (t) => {
  for (const [args, stdin] of [
    [['db', 'migrate'], ''],
    [['admin', 'add', 'root', '--password-stdin'], 'pw\n'],
    [['token', 'enroll', '--type', 'spass', '--user', 'alice'], ''],
    [['apikey', 'create'], ''],
  ] as Array<[string[], string]>) {
    // One world at a time (the connection budget: a world per iteration held to the end would wait for itself).
    const w = await createCliWorld({}, { init: false });
    try {
      const r = await w.run(args, stdin);
      t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      t.regex(r.stderr, /SECRETS KEY CREATED/, args.join(' '));
      t.true(fs.existsSync(path.join(w.tmp, 'pushgate.key')), args.join(' '));
      if (TEST_DB === 'sqlite') t.true(fs.existsSync(path.join(w.tmp, 'pushgate.db')), args.join(' '));
      t.is((await w.run(['admin', 'list'])).code, 0, 'the installation is usable');
    } finally {
      await w.close();
    }
  }
});

test('another --config does not silently show an empty installation', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  t.is((await w.run(['token', 'enroll', '--type', 'spass', '--user', 'alice', '--serial', 'S1'])).code, 0);
  // the same config from another directory: relative paths in it are relative to the file, not to the cwd
  fs.mkdirSync(path.join(w.tmp, 'elsewhere'));
  const other = w.write('elsewhere/pushgate.yaml', 'database: { url: sqlite:./data/pushgate.db }\n');
  const r = await w.run(['--config', other, 'token', 'list'], '', { noConfig: true });
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`no database at ${path.join(w.tmp, 'elsewhere/data/pushgate.db').replace(/[.]/g, '\\.')}`));
  t.false(fs.existsSync(path.join(w.tmp, 'elsewhere/data')), 'no ./data directory made');
});
