/**
 * server/store/secrets.ts and the data at rest: OTP seeds are AES-256-GCM encrypted in `tokens.secrets_enc`, PINs
 * are only hashes, the key file is created 0600 and needed to read anything back.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createSecretBox, loadOrCreateKey } from '../../server/store/secrets.ts';
import { buildDeps } from '../../server/deps.ts';
import { parseConfig } from '../../server/config.ts';
import { Events } from '../../core/events.ts';
import { DatabaseError } from '../../core/errors.ts';
import { FakeClock } from '../helpers/fake_clock.ts';
import { KEY_HEX, enroll, enrollHotp, tokenRow, world } from '../helpers/kit.ts';

const RFC_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-secrets-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('tokens.secrets_enc holds ciphertext only: no hex or base32 seed, no PIN anywhere in the row', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const gen = await enroll(w, { type: 'totp', genkey: 1, user: 'bob', pin: 'pin-of-bob', serial: 'TOTP0001' });
  const genHex = (gen.detail.otpkey.value as string).slice('seed://'.length);
  const rows = await w.deps.store.knex('tokens').select('*').orderBy('id');
  t.is(rows.length, 2);
  const dump = JSON.stringify(rows);
  for (const needle of [
    KEY_HEX,
    KEY_HEX.toUpperCase(),
    RFC_B32,
    genHex,
    Buffer.from(genHex, 'hex').toString('base64'),
    '1234',
    'pin-of-bob',
  ]) {
    t.false(dump.includes(needle), `found ${needle} in the tokens table`);
  }
  for (const r of rows) {
    t.regex(String(r.secrets_enc), /^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    t.regex(String(r.pin_hash), /^\$argon2id\$/);
  }
  t.deepEqual(JSON.parse(w.deps.box.decrypt(String(rows[0].secrets_enc))), { otpKey: KEY_HEX });
  t.throws(() => createSecretBox(crypto.randomBytes(32)).decrypt(String(rows[0].secrets_enc)), undefined, 'another key cannot read it');
});

test('spass has no secret: secrets_enc is NULL', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'spass', user: 'carol', pin: 'pw', serial: 'PISP0001' });
  const row = await w.deps.store.knex('tokens').where({ serial: 'PISP0001' }).first();
  t.is(row.secrets_enc, null);
});

test('SecretBox: round trip, fresh IV each time, tampering and wrong keys fail, sub-keys per purpose', (t) => {
  const key = crypto.randomBytes(32);
  const box = createSecretBox(key);
  const a = box.encrypt('secret ü');
  const b = box.encrypt('secret ü');
  t.not(a, b);
  t.is(box.decrypt(a), 'secret ü');
  const [v, iv, tag, ct] = a.split('.') as [string, string, string, string];
  const flip = (s: string) => {
    const buf = Buffer.from(s, 'base64url');
    buf[0] ^= 1;
    return buf.toString('base64url');
  };
  t.throws(() => box.decrypt([v, iv, tag, flip(ct)].join('.')));
  t.throws(() => box.decrypt([v, iv, flip(tag), ct].join('.')));
  t.throws(() => box.decrypt([v, flip(iv), tag, ct].join('.')));
  t.throws(() => box.decrypt(['v2', iv, tag, ct].join('.')), { message: 'unknown secret format' });
  t.throws(() => box.decrypt('garbage'), { message: 'unknown secret format' });
  t.throws(() => createSecretBox(crypto.randomBytes(32)).decrypt(a));
  t.throws(() => createSecretBox(Buffer.alloc(16)), { message: 'secret key must be 32 bytes, got 16' });
  t.deepEqual(box.derive('jwt'), createSecretBox(key).derive('jwt'));
  t.notDeepEqual(box.derive('jwt'), box.derive('other'));
  t.is(box.derive('jwt').length, 32);
  t.false(box.derive('jwt').equals(key));
  // Derived once and kept: a caller that changes its copy does not change the next caller's key.
  const first = box.derive('jwt');
  first.fill(0);
  t.deepEqual(box.derive('jwt'), createSecretBox(key).derive('jwt'));
});

test('loadOrCreateKey: creates 64 hex chars with mode 0600, then reads it back; hex and base64 accepted', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'sub', 'key');
  const first = loadOrCreateKey(file);
  t.true(first.created);
  t.is(first.key.length, 32);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.regex(fs.readFileSync(file, 'utf8'), /^[0-9a-f]{64}\n$/);
  const again = loadOrCreateKey(file);
  t.false(again.created);
  t.deepEqual(again.key, first.key);
  const b64 = path.join(dir, 'b64');
  fs.writeFileSync(b64, first.key.toString('base64'));
  t.deepEqual(loadOrCreateKey(b64).key, first.key);
  const short = path.join(dir, 'short');
  fs.writeFileSync(short, 'abcd');
  t.throws(() => loadOrCreateKey(short), { message: `${short}: the key file must hold 32 bytes as 64 hex characters` });
});

test('buildDeps without a key file creates one with a loud warning; a restart with it reads the seeds back', async (t) => {
  const dir = tmpDir(t);
  const config = parseConfig(
    { database: { url: 'sqlite:./pg.db' }, secrets: { key_file: './pushgate.key' }, pin: { memory_kib: 1024, time_cost: 1 } },
    dir,
  );
  const events = new Events();
  const warnings: string[] = [];
  events.on('config.warning', (p) => warnings.push(p.message));
  const clock = new FakeClock();
  const deps = await buildDeps(config, { clock, events });
  t.true(fs.existsSync(path.join(dir, 'pushgate.key')));
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, /SECRETS KEY CREATED/);
  await deps.store.tokens.insert(
    tokenRow({ serial: 'OATH0001', username: 'a', info: { hashlib: 'sha1' }, secrets: { otpKey: KEY_HEX } }),
    clock.now(),
  );
  await deps.close();

  const again = await buildDeps(config, { clock, events });
  t.is(warnings.length, 1, 'no warning when the key exists');
  t.is((await again.store.tokens.bySerial('OATH0001'))!.secrets.otpKey, KEY_HEX);
  await again.close();

  const wrong = await buildDeps(config, { clock, events, key: crypto.randomBytes(32) });
  t.teardown(() => wrong.close());
  const err = await t.throwsAsync(wrong.store.tokens.bySerial('OATH0001'), { instanceOf: DatabaseError });
  t.is(err!.wireMessage, 'A database error occurred.', 'a wrong key is an opaque failure, not a leak');
});
