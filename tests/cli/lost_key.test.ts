/**
 * A missing key file next to a database whose tokens are encrypted: no command may create a new key (it would
 * decrypt none of them and hide the lost key behind decryption errors). Found by following the README literally.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { createCliWorld } from './cli_world.ts';

test('a setup command refuses to create a new key for a database that holds encrypted tokens', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  t.is((await w.run(['token', 'enroll', '--type', 'hotp', '--user', 'alice', '--serial', 'H1'])).code, 0);
  const keyFile = path.join(w.tmp, 'pushgate.key');
  const saved = fs.readFileSync(keyFile);
  fs.rmSync(keyFile);

  for (const args of [
    ['db', 'migrate'],
    ['token', 'enroll', '--type', 'spass', '--user', 'bob'],
  ]) {
    const r = await w.run(args);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, /secrets\.key_file \S+pushgate\.key is missing, but the database holds 1 token\(s\) encrypted with another key/);
    t.notRegex(r.stderr, /SECRETS KEY CREATED/);
    t.false(fs.existsSync(keyFile), `${args.join(' ')}: no new key file`);
  }

  fs.writeFileSync(keyFile, saved, { mode: 0o600 }); // the right key back: everything works again
  const list = await w.run(['token', 'list']);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /H1/);
});
