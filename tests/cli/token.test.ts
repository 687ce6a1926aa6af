import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import jsqrImport from 'jsqr';
import { PNG } from 'pngjs';
import { createCliWorld } from './cli_world.ts';

type JsQr = typeof jsqrImport.default;
const jsQR = (typeof jsqrImport === 'function' ? jsqrImport : jsqrImport.default) as JsQr;
const KEY_HEX = Buffer.from('12345678901234567890').toString('hex');

test('token enroll hotp: options pass through, --json shape', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const r = await w.json([
    'token',
    'enroll',
    '--type',
    'hotp',
    '--user',
    'alice',
    '--serial',
    'OATH0001',
    '--pin',
    '1234',
    '--otpkey',
    KEY_HEX,
    '--otplen',
    '8',
    '--hashlib',
    'sha256',
    '--description',
    'desk',
    '--json',
  ]);
  t.deepEqual(Object.keys(r).sort(), ['details', 'rollout_state', 'serial', 'type', 'url']);
  t.like(r, { serial: 'OATH0001', type: 'hotp', rollout_state: '' });
  t.regex(r.url, /^otpauth:\/\/hotp\/.*digits=8&algorithm=SHA256/);
  t.is(r.details.googleurl.value, r.url);
  const show = await w.json(['token', 'show', 'OATH0001', '--json']);
  t.like(show, {
    serial: 'OATH0001',
    tokentype: 'hotp',
    otplen: 8,
    active: true,
    username: 'alice',
    user_realm: 'default',
    description: 'desk',
  });
  t.false(JSON.stringify(show).includes(KEY_HEX));
  const deps = await w.deps();
  const tok = await deps.store.tokens.bySerial('OATH0001');
  t.true(await deps.pins.verify(tok!.pinHash, '1234'));

  const dup = await w.run(['token', 'enroll', '--type', 'hotp', '--user', 'alice', '--serial', 'OATH0001']);
  t.is(dup.code, 1);
  t.is(dup.stderr, 'error: ERR905: A token with the serial OATH0001 already exists.\n');
  const badLen = await w.run(['token', 'enroll', '--type', 'hotp', '--user', 'alice', '--otplen', '7']);
  t.is(badLen.code, 1);
  t.regex(badLen.stderr, /^error: ERR905: Invalid otplen '7'/);
  const badType = await w.run(['token', 'enroll', '--type', 'nope', '--user', 'alice']);
  t.is(badType.code, 2, 'a usage error (tests/cli/token_enroll.test.ts checks the list of types)');
  t.regex(badType.stderr, /Unknown token type 'nope': use one of /);
});

test('token enroll totp: text output has serial, URL and a terminal QR; --png writes the QR (0600)', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const png = path.join(w.tmp, 'qr.png');
  const r = await w.run(['token', 'enroll', '--type', 'totp', '--user', 'bob', '--timestep', '60', '--png', png]);
  t.is(r.code, 0, r.stderr);
  const serial = /^serial:\s+(TOTP[0-9A-F]{8})$/m.exec(r.stdout)?.[1];
  t.truthy(serial);
  t.regex(r.stdout, /^type:\s+totp$/m);
  const url = /^url:\s+(otpauth:\/\/totp\/\S+)$/m.exec(r.stdout)?.[1];
  t.regex(url!, /period=60/);
  t.regex(r.stdout, /[▄▀█]{5}/);
  t.is(fs.statSync(png).mode & 0o777, 0o600);
  const img = PNG.sync.read(fs.readFileSync(png));
  t.is(jsQR(new Uint8ClampedArray(img.data), img.width, img.height)?.data, url);
  // --genkey is the default; two tokens get different keys
  const other = await w.json(['token', 'enroll', '--type', 'totp', '--user', 'bob', '--json']);
  t.not(/secret=([A-Z2-7]+)/.exec(other.url)?.[1], /secret=([A-Z2-7]+)/.exec(url!)?.[1]);
  const noGen = await w.run(['token', 'enroll', '--type', 'totp', '--user', 'bob', '--no-genkey']);
  t.is(noGen.code, 1);
  t.is(noGen.stderr, "error: ERR905: Missing parameter: 'otpkey'\n");
});

test('token enroll spass, list (table and --json, filters), show, enable/disable, reset, set-pin, delete', async (t) => {
  const w = await createCliWorld({
    realms: [
      { name: 'staff', default: true, users: { type: 'any' } },
      { name: 'guests', users: { type: 'any' } },
    ],
  });
  t.teardown(() => w.close());
  const sp = await w.json(['token', 'enroll', '--type', 'spass', '--user', 'carol', '--serial', 'SPASS1', '--pin', 'static-pw', '--json']);
  t.deepEqual(sp, { serial: 'SPASS1', type: 'spass', rollout_state: '', url: null, details: {} });
  const spText = await w.run([
    'token',
    'enroll',
    '--type',
    'spass',
    '--user',
    'dave@guests',
    '--serial',
    'SPASS2',
    '--png',
    path.join(w.tmp, 'x.png'),
  ]);
  t.is(spText.code, 0);
  t.is(spText.stdout, 'serial: SPASS2\ntype:   spass\n');
  t.regex(spText.stderr, /no PNG written/);
  t.false(fs.existsSync(path.join(w.tmp, 'x.png')));
  await w.json(['token', 'enroll', '--type', 'hotp', '--user', 'carol', '--serial', 'HOTP1', '--otpkey', KEY_HEX, '--json']);

  const all = await w.json<any[]>(['token', 'list', '--json']);
  t.deepEqual(all.map((x) => x.serial).sort(), ['HOTP1', 'SPASS1', 'SPASS2']);
  t.deepEqual((await w.json<any[]>(['token', 'list', '--user', 'carol', '--json'])).map((x) => x.serial).sort(), ['HOTP1', 'SPASS1']);
  t.deepEqual(
    (await w.json<any[]>(['token', 'list', '--user', 'carol', '--type', 'spass', '--json'])).map((x) => x.serial),
    ['SPASS1'],
  );
  t.deepEqual(
    (await w.json<any[]>(['token', 'list', '--realm', 'guests', '--json'])).map((x) => x.serial),
    ['SPASS2'],
  );
  t.deepEqual(
    (await w.json<any[]>(['token', 'list', '--user', 'dave@guests', '--json'])).map((x) => x.serial),
    ['SPASS2'],
  );
  const table = await w.run(['token', 'list']);
  t.regex(table.stdout, /^SERIAL\s+TYPE\s+USER\s+REALM\s+ACTIVE/);
  t.regex(table.stdout, /\nSPASS2\s+spass\s+dave\s+guests\s+yes\s+no\s+0\/10/);
  t.is((await w.run(['token', 'list', '--user', 'nobody', '--realm', 'guests'])).stdout, 'no tokens\n');
  const unknownRealm = await w.run(['token', 'list', '--user', 'x', '--realm', 'nope']);
  t.is(unknownRealm.code, 1);
  t.regex(unknownRealm.stderr, /^error: ERR904: /);

  const shown = await w.run(['token', 'show', 'SPASS1']);
  t.regex(shown.stdout, /^serial:\s+SPASS1$/m);
  t.regex(shown.stdout, /^tokentype:\s+spass$/m);

  t.is((await w.run(['token', 'disable', 'SPASS1'])).stdout, 'disabled SPASS1\n');
  t.false((await w.json(['token', 'show', 'SPASS1', '--json'])).active);
  t.is((await w.run(['token', 'enable', 'SPASS1'])).stdout, 'enabled SPASS1\n');
  t.true((await w.json(['token', 'show', 'SPASS1', '--json'])).active);

  const deps = await w.deps();
  const id = (await deps.store.tokens.bySerial('SPASS1'))!.id;
  await deps.store.tokens.incrementFailCount([id], deps.clock.now());
  await deps.store.tokens.incrementFailCount([id], deps.clock.now());
  t.is((await w.json(['token', 'show', 'SPASS1', '--json'])).failcount, 2);
  t.is((await w.run(['token', 'reset', 'SPASS1'])).stdout, 'reset fail counter of SPASS1\n');
  t.is((await w.json(['token', 'show', 'SPASS1', '--json'])).failcount, 0);

  t.is((await w.run(['token', 'set-pin', 'SPASS1', '--pin-stdin'], 'new-pin\n')).stdout, 'set the PIN of SPASS1\n');
  t.true(await deps.pins.verify((await deps.store.tokens.bySerial('SPASS1'))!.pinHash, 'new-pin'));
  t.is((await w.run(['token', 'set-pin', 'SPASS1', '--pin', 'p2'])).code, 0);
  t.true(await deps.pins.verify((await deps.store.tokens.bySerial('SPASS1'))!.pinHash, 'p2'));
  const neither = await w.run(['token', 'set-pin', 'SPASS1']);
  t.is(neither.code, 2);
  t.regex(neither.stderr, /--pin-stdin or --pin/);
  t.is((await w.run(['token', 'set-pin', 'SPASS1', '--pin', 'a', '--pin-stdin'], 'b\n')).code, 2);
  const emptyStdin = await w.run(['token', 'set-pin', 'SPASS1', '--pin-stdin'], '');
  t.is(emptyStdin.code, 1);
  t.is(emptyStdin.stderr, 'error: empty PIN on stdin\n');
  t.true(await deps.pins.verify((await deps.store.tokens.bySerial('SPASS1'))!.pinHash, 'p2'), 'a failed set-pin changes nothing');
  t.is((await w.run(['token', 'set-pin', 'SPASS1', '--pin', ''])).stdout, 'removed the PIN of SPASS1\n');
  t.is((await deps.store.tokens.bySerial('SPASS1'))!.pinHash, null);

  t.is((await w.run(['token', 'delete', 'SPASS1'])).stdout, 'deleted SPASS1\n');
  for (const cmd of ['show', 'enable', 'disable', 'delete', 'reset']) {
    const r = await w.run(['token', cmd, 'SPASS1']);
    t.is(r.code, 1, cmd);
    t.is(r.stderr, 'error: The requested token could not be found.\n', cmd);
  }
  const missing = await w.run(['token', 'set-pin', 'SPASS1', '--pin', 'x']);
  t.is(missing.code, 1);
  t.is(missing.stderr, 'error: The requested token could not be found.\n');
});
