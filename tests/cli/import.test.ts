/**
 * `pushgate import edumfa|privacyidea`: a source database with eduMFA's tables (tests/helpers/edumfa_db.ts, SQLite),
 * imported into pushgate's database (PUSHGATE_TEST_DB), then used through the real HTTP API: OTP tokens keep their
 * counters (no replay of values the source already accepted), a push token's phone keeps working with the keys it
 * was enrolled with, without re-enrollment.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import argon2 from 'argon2';
import YAML from 'yaml';
import { createCliWorld } from './cli_world.ts';
import { EduMfaSource, encryptedKeyFile, sealed } from '../helpers/edumfa_db.ts';
import { KEY, check, usersYaml } from '../helpers/kit.ts';
import { pushWorld, phoneKey } from '../helpers/push_world.ts';
import { FakePhone } from '../helpers/fake_phone.ts';
import { freshDatabaseUrl, TEST_DB } from '../helpers/databases.ts';
import { hotpValue } from '../../tokens/otp.ts';

const START = Date.UTC(2026, 10, 25, 12, 0, 0); // FakeClock's start
const STEP = Math.floor(START / 30_000);
const TOTP_KEY = Buffer.from('3132333435363738393031323334353637383930313233343536373839303132', 'hex');

/** A pushgate realm `corp` with these users, in a file outside the CLI world (its config reads it at build time). */
function realmsWith(users: string[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-import-users-'));
  const file = path.join(dir, 'users.yaml');
  fs.writeFileSync(file, usersYaml(users.map((username) => ({ username }))));
  return { dir, realms: [{ name: 'corp', default: true, users: { type: 'file', path: file } }] };
}

/** The phone's and the server's keys as eduMFA stored them at enrollment. */
function pushKeys() {
  const phone = phoneKey('rsa');
  const server = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    phone,
    phoneSpki: (phone.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
    serverPrivatePem: server.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
    serverPublicPem: server.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string,
    serverPublic: server.publicKey,
  };
}

test('eduMFA import: dry run, report, import, re-run; OTP counters continue and the phone keeps working', async (t) => {
  const users = realmsWith(['alice', 'bob', 'carol', 'dave']);
  const cli = await createCliWorld({ realms: users.realms }, { owner: t });
  t.teardown(() => cli.close());
  t.teardown(() => fs.rmSync(users.dir, { recursive: true, force: true }));
  // A pushgate server on the CLI's database and key, for the checks and the logins after the import.
  const conf = YAML.parse(fs.readFileSync(cli.configPath, 'utf8'));
  const key = Buffer.from(fs.readFileSync(conf.secrets.key_file, 'utf8').trim(), 'hex');
  const w = await pushWorld(t, { world: { databaseUrl: conf.database.url, key }, config: { realms: users.realms } });
  const deps = w.deps;
  const src = await EduMfaSource.create(cli.tmp);
  t.teardown(() => src.close());
  const keys = pushKeys();
  const owner = (userId: string) => ({ resolver: 'ldap', userId, realm: 'uni' });
  // passlib's argon2 as eduMFA writes it (type ID, version 19), with small parameters.
  const pinHash = await argon2.hash('1234', { type: argon2.argon2id, memoryCost: 512, timeCost: 2, parallelism: 2 });
  await src.addToken({ serial: 'OATH-A', type: 'hotp', seed: KEY, count: 5, pinHash, owner: owner('u-alice'), info: { hashlib: 'sha1' } });
  await src.addToken({
    serial: 'TOTP-B',
    type: 'totp',
    seed: TOTP_KEY,
    otplen: 8,
    count: STEP,
    owner: owner('u-carol'),
    info: { hashlib: 'sha256', timeStep: '30', timeWindow: '180', timeShift: '0' },
  });
  await src.addToken({
    serial: 'EDUP-C',
    type: 'edupush',
    rolloutState: 'enrolled',
    pinHash: `@@${sealed(src.keys.token, '5678')}`,
    owner: owner('u-bob'),
    info: {
      public_key_smartphone: keys.phoneSpki,
      public_key_server: keys.serverPublicPem,
      firebase_token: 'fcm-token-of-bobs-phone',
      edupush_firebase_configuration: 'poll only',
    },
    passwords: { private_key_server: keys.serverPrivatePem },
  });
  const pbkdf2 = '$pbkdf2-sha512$25000$c2FsdHNhbHQ$' + 'A'.repeat(86);
  await src.addToken({ serial: 'OATH-D', type: 'hotp', seed: KEY, pinHash: pbkdf2, owner: owner('u-dave') });
  await src.addToken({ serial: 'SPASS-E', type: 'spass', pinHash: 'ab'.repeat(32), owner: owner('u-dave') });
  await src.addToken({ serial: 'SMS-F', type: 'sms', seed: KEY, owner: owner('u-dave') });
  await src.addToken({ serial: 'EDUP-G', type: 'edupush', rolloutState: 'clientwait', owner: owner('u-dave') });
  await src.addToken({ serial: 'OATH-H', type: 'hotp', seed: KEY, revoked: true, owner: owner('u-dave') });
  await src.addToken({ serial: 'OATH-I', type: 'hotp', seed: KEY, owner: owner('u-unknown') });
  await src.addToken({ serial: 'OATH-J', type: 'hotp', seed: KEY, legacyPadding: true, realms: ['uni'] });
  await src.addToken({ serial: 'OATH-K', type: 'hotp', seed: KEY, owner: owner('u-mallory') });
  await src.addToken({
    serial: 'OATH-L',
    type: 'hotp',
    seed: KEY,
    failcount: 10,
    maxfail: 10,
    owner: owner('u-dave'),
    info: { failcounter_exceeded: '2026-11-20T08:15+0100' },
  });
  const map = cli.write(
    'users.csv',
    ['# resolver,user_id,login', ...['alice', 'bob', 'carol', 'dave', 'mallory'].map((u) => `ldap,u-${u},${u}`)].join('\n'),
  );
  const args = [
    'import',
    'edumfa',
    '--db',
    src.url,
    '--enckey',
    path.join(cli.tmp, 'enckey'),
    '--user-map',
    map,
    '--realm-map',
    'uni=corp',
  ];

  const dry = await cli.json([...args, '--dry-run', '--json']);
  const status = (r: any) => Object.fromEntries(r.entries.map((e: any) => [e.serial, e.status]));
  t.deepEqual(status(dry), {
    'OATH-A': 'would import',
    'TOTP-B': 'would import',
    'EDUP-C': 'would import',
    'OATH-D': 'would import',
    'SPASS-E': 'not imported',
    'SMS-F': 'not imported',
    'EDUP-G': 'not imported',
    'OATH-H': 'not imported',
    'OATH-I': 'not imported',
    'OATH-J': 'would import',
    'OATH-K': 'not imported',
    'OATH-L': 'would import',
  });
  t.is((await deps.store.tokens.list()).length, 0, 'a dry run writes nothing');
  const notes = (r: any, serial: string) => r.entries.find((e: any) => e.serial === serial).notes.join(' | ');
  t.regex(notes(dry, 'SPASS-E'), /old seeded SHA-256/);
  t.regex(notes(dry, 'SMS-F'), /token type sms is not supported/);
  t.regex(notes(dry, 'EDUP-G'), /rollout_state clientwait/);
  t.regex(notes(dry, 'OATH-H'), /revoked/);
  t.regex(notes(dry, 'OATH-I'), /user_id u-unknown of resolver ldap is not in the user map/);
  t.regex(notes(dry, 'OATH-K'), /user mallory is not in pushgate's realm corp/);
  t.regex(notes(dry, 'OATH-D'), /pbkdf2_sha512.*imported disabled/);
  t.regex(notes(dry, 'OATH-J'), /token realms uni of an unassigned token are not carried over/);

  const run = await cli.run(args);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /OATH-A\s+hotp\s+imported\s+alice@corp/);
  t.regex(run.stdout, /6 imported, 0 already in pushgate, 6 not imported/);
  const again = await cli.json([...args, '--json']);
  t.like(again.counts, { imported: 0, exists: 6, 'not imported': 6 });
  const empty = await cli.run([
    'import',
    'edumfa',
    '--db',
    `sqlite:${cli.write('empty.sqlite', '')}`,
    '--enckey',
    path.join(cli.tmp, 'enckey'),
  ]);
  t.is(empty.code, 1);
  t.regex(empty.stderr, /has no table realm: not an eduMFA or privacyIDEA/);

  // The imported rows: secrets re-encrypted under pushgate's key, state carried over.
  const byS = async (s: string) => (await deps.store.tokens.bySerial(s))!;
  const a = await byS('OATH-A');
  t.like(a, { username: 'alice', realm: 'corp', counter: 5, active: true, otpLen: 6 });
  t.is(a.secrets.otpKey, KEY.toString('hex'));
  t.is(a.pinHash, pinHash, 'an argon2 PIN hash is kept as it is');
  const raw = await deps.store.knex('tokens').where({ serial: 'OATH-A' }).first();
  t.regex(String(raw.secrets_enc), /^v1\./, "the seed is encrypted at rest under pushgate's key");
  t.like(await byS('TOTP-B'), { counter: STEP + 1, otpLen: 8, info: { hashlib: 'sha256', timeStep: '30' } });
  const c = await byS('EDUP-C');
  t.like(c, { type: 'edupush', rolloutState: 'enrolled', active: true, username: 'bob' });
  t.true(await deps.pins.verify(c.pinHash, '5678'), 'the encrypted PIN was decrypted and hashed anew');
  t.like(await byS('OATH-D'), { active: false, pinHash: null });
  t.like(await byS('OATH-J'), { username: null, realm: null, secrets: { otpKey: KEY.toString('hex') } });
  const l = await byS('OATH-L');
  t.like(l, { failCount: 10, maxFail: 10, lockedAt: Date.parse('2026-11-20T07:15:00Z') });

  // pushgate serves them (the world built above: same database, same key).
  // HOTP: the source had accepted counters 0–4; 4 is refused, 5 accepted once.
  t.like((await check(w, { user: 'alice', pass: `1234${hotpValue(KEY, 4, 6, 'sha1')}` })).body, { result: { authentication: 'REJECT' } });
  t.like((await check(w, { user: 'alice', pass: `1234${hotpValue(KEY, 5, 6, 'sha1')}` })).body, { result: { authentication: 'ACCEPT' } });
  t.like((await check(w, { user: 'alice', pass: `1234${hotpValue(KEY, 5, 6, 'sha1')}` })).body, { result: { authentication: 'REJECT' } });
  // TOTP: the source had accepted the current step; it is not accepted again, the next one is.
  t.like((await check(w, { user: 'carol', pass: hotpValue(TOTP_KEY, STEP, 8, 'sha256') })).body, { result: { authentication: 'REJECT' } });
  w.clock.advance(30_000);
  t.like((await check(w, { user: 'carol', pass: hotpValue(TOTP_KEY, STEP + 1, 8, 'sha256') })).body, {
    result: { authentication: 'ACCEPT' },
  });

  // Push: bob's phone, with the key pair it had in eduMFA and the server key it got from eduMFA — no re-enrollment.
  const phone = new FakePhone({ call: (m, p, params, opts) => w.call(m, p, params, opts), clock: w.clock }, 'edumfa-next', keys.phone);
  phone.token = {
    scheme: 'edumfa-push',
    label: 'EDUP-C',
    params: {},
    serial: 'EDUP-C',
    url: 'https://edumfa.example.org/ttype/edupush',
    ttlMinutes: 10,
    issuer: 'eduMFA',
    enrollmentCredential: '',
    sslverify: '1',
    pin: false,
    scannedAt: w.clock.now(),
  };
  phone.serverKey = keys.serverPublic;
  const challenge = await check(w, { user: 'bob', pass: '5678' });
  t.like(challenge.body, { result: { authentication: 'CHALLENGE' } });
  const polled = await phone.poll();
  t.is(polled.status, 200, polled.text);
  const [data] = polled.body.result.value;
  t.true(phone.verifyPushData(data), 'the push is signed with the server key the phone got from eduMFA');
  t.is((await phone.answer(data)).status, 200);
  t.like((await check(w, { user: 'bob', pass: '5678', transaction_id: challenge.body.detail.transaction_id })).body, {
    result: { authentication: 'ACCEPT' },
  });
});

test('privacyIDEA import: source on the database under test, password-protected key file, user ids as login names, legacy push token', async (t) => {
  const users = realmsWith(['alice']);
  const cli = await createCliWorld({ realms: users.realms }, { owner: t });
  t.teardown(() => cli.close());
  t.teardown(() => fs.rmSync(users.dir, { recursive: true, force: true }));
  // The source on the database kind under test (SQLite, PostgreSQL or MariaDB), named by a SQLAlchemy URL as pi.cfg has it.
  const db = TEST_DB === 'sqlite' ? { url: `sqlite:${path.join(cli.tmp, 'pi.sqlite')}`, drop: async () => {} } : await freshDatabaseUrl();
  t.teardown(() => db.drop());
  const src = await EduMfaSource.create(cli.tmp, db.url);
  const keys = pushKeys();
  await src.addToken({ serial: 'OATH-P', type: 'HOTP', seed: KEY, count: 3, owner: { resolver: 'flat', userId: 'alice', realm: 'corp' } });
  await src.addToken({
    serial: 'PIPU-Q',
    type: 'push',
    rolloutState: 'enrolled',
    owner: { resolver: 'flat', userId: 'alice', realm: 'corp' },
    // privacyIDEA's app sends its key URL-safe; the source stores it as sent.
    info: {
      public_key_smartphone: keys.phoneSpki.replace(/\+/g, '-').replace(/\//g, '_'),
      firebase_token: 'fcm',
      push_firebase_configuration: 'fcm-prod',
    },
    passwords: { private_key_server: keys.serverPrivatePem },
  });
  await src.addToken({
    serial: 'OATH-R',
    type: 'hotp',
    seed: KEY,
    pinHash: `$pbkdf2-sha512$25000$c2FsdHNhbHQ$${'A'.repeat(86)}`,
    owner: { resolver: 'flat', userId: 'alice', realm: 'corp' },
  });
  await src.close(); // the import opens its own connection
  const enc = cli.write('enckey.enc', encryptedKeyFile(src.keys.bytes, 'key file password'));
  const sqlalchemy = db.url
    .replace(/^sqlite:/, 'sqlite:///')
    .replace(/^postgres:/, 'postgresql+psycopg2:')
    .replace(/^mysql:/, 'mysql+pymysql:');
  const args = ['import', 'privacyidea', '--db', sqlalchemy, '--enckey', enc, '--uid-is-login'];
  const wrongPw = cli.write('wrong.pw', 'not it\n');
  const wrong = await cli.run([...args, '--enckey-password-file', wrongPw]);
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /cannot decrypt the key file/);
  const noPw = await cli.run(args);
  t.regex(noPw.stderr, /the key file is encrypted/);
  const pw = ['--enckey-password-file', cli.write('right.pw', 'key file password\n')];
  const skip = await cli.json([...args, ...pw, '--unsupported-pin', 'skip', '--dry-run', '--json']);
  t.like(skip.counts, { 'would import': 2, 'not imported': 1 });
  // Logins never use token PINs there (otppin: userstore, say): the token comes over without its PIN, active.
  const r = await cli.json([...args, ...pw, '--unsupported-pin', 'clear', '--json']);
  t.like(r.counts, { imported: 3, 'not imported': 0 });
  t.regex(r.entries[1].notes.join(' '), /push channel 'fcm-prod' is not configured in pushgate/);
  t.regex(r.entries[2].notes.join(' '), /pbkdf2_sha512.*imported without a PIN/);
  const deps = await cli.deps();
  t.like(await deps.store.tokens.bySerial('OATH-P'), { type: 'hotp', username: 'alice', counter: 3 });
  const q = (await deps.store.tokens.bySerial('PIPU-Q'))!;
  t.like(q.info, { push_firebase_configuration: 'poll only', registration_url: 'https://mfa.example.org/ttype/push' });
  t.is(q.secrets.privateKeyServer, keys.serverPrivatePem);
  t.like(await deps.store.tokens.bySerial('OATH-R'), { active: true, pinHash: null });
});

test('pskc import: a seed file assigned to a user, dry run, re-run; bad key refused', async (t) => {
  const users = realmsWith(['alice']);
  const cli = await createCliWorld({ realms: users.realms }, { owner: t });
  t.teardown(() => cli.close());
  t.teardown(() => fs.rmSync(users.dir, { recursive: true, force: true }));
  const file = cli.write(
    'tokens.xml',
    `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Manufacturer</Manufacturer><SerialNo>987654321</SerialNo></DeviceInfo>
    <Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret><Counter><PlainValue>0</PlainValue></Counter></Data>
    </Key>
  </KeyPackage>
</KeyContainer>`,
  );
  const dry = await cli.json(['import', 'pskc', file, '--user', 'alice', '--dry-run', '--json']);
  t.like(dry.counts, { 'would import': 1 });
  const run = await cli.run(['import', 'pskc', file, '--user', 'alice']);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /987654321\s+hotp\s+imported\s+alice@corp/);
  t.regex(run.stdout, /1 imported, 0 already in pushgate, 0 not imported/);
  t.like((await cli.json(['import', 'pskc', file, '--json'])).counts, { exists: 1 });
  const deps = await cli.deps();
  t.like(await deps.store.tokens.bySerial('987654321'), { username: 'alice', otpLen: 8, secrets: { otpKey: KEY.toString('hex') } });
  const bad = await cli.run(['import', 'pskc', file, '--key', 'xyz']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /pre-shared key must be 16, 24 or 32 bytes in hex/);
  const nobody = await cli.run(['import', 'pskc', file, '--user', 'nobody']);
  t.is(nobody.code, 1);
  t.regex(nobody.stderr, /User <nobody@corp> does not exist/);
});
