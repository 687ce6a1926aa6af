/** `pushgate token enroll|show` (issue 10): --pin-stdin, unknown types, QR without colour codes off a terminal, push tokens in short. */
import crypto from 'node:crypto';
import test from 'ava';
import { keySummary } from '../../cli/commands/token.ts';
import { createCliWorld } from './cli_world.ts';

const PUSH = { push: { keys: { bits: 2048, size: 0 } } };
const pollOnly = [{ name: 'push-enroll', scope: 'enrollment', actions: { edupush_firebase_configuration: 'poll only' } }];

test('--pin-stdin: the PIN comes from stdin, never from the command line; it conflicts with --pin', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const r = await w.run(['token', 'enroll', '--type', 'spass', '--user', 'alice', '--serial', 'S1', '--pin-stdin'], 'sesame-4711\n');
  t.is(r.code, 0, r.stderr);
  const deps = await w.deps();
  const token = (await deps.store.tokens.bySerial('S1'))!;
  t.true(await deps.pins.verify(token.pinHash!, 'sesame-4711'));
  t.false(await deps.pins.verify(token.pinHash!, 'sesame-4711\n'));
  t.is((await w.run(['token', 'enroll', '--type', 'spass', '--user', 'alice', '--pin-stdin'], '')).code, 1, 'empty stdin');
  t.is((await w.run(['token', 'enroll', '--type', 'spass', '--user', 'alice', '--pin', '1', '--pin-stdin'], '2\n')).code, 2);
});

test('an unknown --type is a usage error that lists the valid types', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const r = await w.run(['token', 'enroll', '--type', 'yubikey', '--user', 'alice']);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    "pushgate: Unknown token type 'yubikey': use one of hotp, totp, spass, pw, edupush, push\nRun 'pushgate token --help' for usage.\n",
  );
  t.is((await w.run(['token', 'enroll', '--type', 'HOTP', '--user', 'alice', '--json'])).code, 0, 'any case');
});

test('an empty or blank --user is a usage error, not a token nobody owns', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  for (const user of ['', ' ']) {
    const r = await w.run(['token', 'enroll', '--type', 'spass', '--user', user, '--pin', '1']);
    t.is(r.code, 2, JSON.stringify(user));
    t.regex(r.stderr, /--user must name the owner/);
  }
  t.is((await w.run(['token', 'list'])).stdout.includes('SPAS'), false, 'nothing enrolled');
});

test('the QR code has ANSI colour codes only when stdout is a terminal', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const piped = await w.run(['token', 'enroll', '--type', 'totp', '--user', 'alice']);
  t.is(piped.code, 0, piped.stderr);
  t.false(piped.stdout.includes('\u001b'), 'no escape codes in a pipe or file');
  t.regex(piped.stdout, /[█▀▄]/u);
  const tty = await w.run(['token', 'enroll', '--type', 'totp', '--user', 'bob'], '', { tty: true });
  t.true(tty.stdout.includes('\u001b[47m'), 'colours on a terminal');
});

test('token show of a push token: key fingerprints and short forms, not the key material; --json keeps everything', async (t) => {
  const w = await createCliWorld({ policies: pollOnly });
  t.teardown(() => w.close());
  const enrolled = await w.run(['token', 'enroll', '--type', 'edupush', '--user', 'alice', '--serial', 'EDUP1'], '', {
    buildOptions: PUSH,
  });
  t.is(enrolled.code, 0, enrolled.stderr);
  const phone = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const phoneDer = phone.publicKey.export({ format: 'der', type: 'spki' });
  const server = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const fbToken = 'f'.repeat(150);
  const deps = await w.deps();
  const t0 = (await deps.store.tokens.bySerial('EDUP1'))!;
  await deps.store.tokens.update(
    'EDUP1',
    { info: { ...t0.info, public_key_smartphone: phoneDer.toString('base64'), public_key_server: server, firebase_token: fbToken } },
    deps.clock.now(),
  );

  const shown = await w.run(['token', 'show', 'EDUP1']);
  t.is(shown.code, 0, shown.stderr);
  const fp = crypto
    .createHash('sha256')
    .update(phoneDer)
    .digest('hex')
    .slice(0, 32)
    .replace(/(..)(?!$)/g, '$1:');
  t.regex(shown.stdout, new RegExp(`^info\\.public_key_smartphone:\\s+RSA 2048 bit, SHA-256 ${fp}…$`, 'm'));
  t.regex(shown.stdout, /^info\.public_key_server:\s+RSA 2048 bit, SHA-256 [0-9a-f:]{47}…$/m);
  t.regex(shown.stdout, /^info\.firebase_token:\s+f{16}… \(150 characters; --json shows it whole\)$/m);
  t.true(
    shown.stdout.split('\n').every((l) => l.length < 200),
    'no line of key material',
  );
  const json = await w.json(['token', 'show', 'EDUP1', '--json']);
  t.is(json.info.public_key_smartphone, phoneDer.toString('base64'));
  t.is(keySummary('not a key at all, just text that is long enough to be shortened'), null);
});

test('enrolling a push token whose URL cannot work for a phone prints a warning (the server logs it as config.warning)', async (t) => {
  const w = await createCliWorld({ server: { host: '0.0.0.0', public_url: 'http://0.0.0.0:5001' }, policies: pollOnly }, { owner: t });
  t.teardown(() => w.close());
  const r = await w.run(['token', 'enroll', '--type', 'edupush', '--user', 'alice', '--serial', 'EDUP2', '--json'], '', {
    buildOptions: PUSH,
  });
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stderr,
    'warning: token EDUP2: the phone will call http://0.0.0.0:5001/ttype/edupush, which cannot work: 0.0.0.0 is a listen address, '
      + 'not one a phone can call; it is plain http:// while the app verifies TLS (ssl_verify 1): pushgate speaks plain HTTP, put a TLS reverse '
      + 'proxy in front of it. Set server.public_url (or the registration_url policy) to the https:// URL of the TLS reverse proxy in front of pushgate (README: "TLS").\n',
  );
  const ok = await createCliWorld({ server: { host: '0.0.0.0', public_url: 'https://mfa.example.org' }, policies: pollOnly }, { owner: t });
  t.teardown(() => ok.close());
  const quiet = await ok.run(['token', 'enroll', '--type', 'edupush', '--user', 'alice', '--json'], '', { buildOptions: PUSH });
  t.is(quiet.stderr, '');
  const totp = await w.run(['token', 'enroll', '--type', 'totp', '--user', 'alice', '--json']);
  t.is(totp.stderr, '', 'an otpauth:// URL is not called by the phone');
});
