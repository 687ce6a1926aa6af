/**
 * server/store/knex.ts and server/store/secrets.ts: what pushgate creates on disk is its owner's alone — the SQLite
 * database and its -wal/-shm files 0600, the data directory 0700, like the key file — and what an admin created keeps
 * its mode (a world-readable database gets a warning). The umask is set to the common 022 so that a file created
 * with the default mode would be 0644 and the test fails without the rule, whatever the runner's umask.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { loadOrCreateKey } from '../../../server/store/secrets.ts';
import { enrollHotp, world, hotpAt } from '../../helpers/kit.ts';

process.umask(0o022);

const modeOf = (p: string): string => (fs.statSync(p).mode & 0o777).toString(8).padStart(4, '0');

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-modes-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a database pushgate creates is 0600 with its -wal and -shm, in directories it creates 0700', async (t) => {
  const root = tmpDir(t);
  const dir = path.join(root, 'var', 'data');
  const file = path.join(dir, 'pushgate.db');
  const w = await world(t, { databaseUrl: `sqlite:${file}` });
  await enrollHotp(w);
  t.is((await w.call('POST', '/validate/check', { user: 'alice', pass: '1234' + hotpAt(0) })).status, 200);
  t.true(fs.existsSync(`${file}-wal`) && fs.existsSync(`${file}-shm`), 'WAL mode: both side files exist while open');
  t.deepEqual(
    { db: modeOf(file), wal: modeOf(`${file}-wal`), shm: modeOf(`${file}-shm`), dir: modeOf(dir), parent: modeOf(path.dirname(dir)) },
    { db: '0600', wal: '0600', shm: '0600', dir: '0700', parent: '0700' },
  );
  t.false(w.seen.some((e) => e.name === 'log' && /can be read by every local user/.test(JSON.stringify(e.payload))));
});

test('an existing directory and database keep their modes; a world-readable database is warned about', async (t) => {
  const root = tmpDir(t);
  fs.chmodSync(root, 0o750);
  const group = path.join(root, 'group.db');
  fs.writeFileSync(group, '', { mode: 0o640 });
  const a = await world(t, { databaseUrl: `sqlite:${group}` });
  await enrollHotp(a);
  t.deepEqual({ db: modeOf(group), wal: modeOf(`${group}-wal`), dir: modeOf(root) }, { db: '0640', wal: '0640', dir: '0750' });
  t.false(
    a.seen.some((e) => e.name === 'log' && /can be read by every local user/.test(JSON.stringify(e.payload))),
    'group access is not warned about',
  );

  const open = path.join(root, 'open.db');
  fs.writeFileSync(open, '', { mode: 0o644 });
  const b = await world(t, { databaseUrl: `sqlite:${open}` });
  t.is(modeOf(open), '0644');
  const warning = b.seen.find((e) => e.name === 'log' && /can be read by every local user/.test(JSON.stringify(e.payload)));
  t.like(warning?.payload, { level: 'warn' });
  t.true(JSON.stringify(warning?.payload).includes(open) && JSON.stringify(warning?.payload).includes('0644'));
});

test('the key file is created 0600 in a directory created 0700', (t) => {
  const root = tmpDir(t);
  const file = path.join(root, 'etc', 'pushgate.key');
  t.true(loadOrCreateKey(file).created);
  t.deepEqual({ key: modeOf(file), dir: modeOf(path.dirname(file)) }, { key: '0600', dir: '0700' });
});
