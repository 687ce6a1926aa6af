/** The source PIN hash formats (server/import/source_pins.ts) and the source's dates. */
import crypto from 'node:crypto';
import test from 'ava';
import { classifyPin } from '../../../server/import/source_pins.ts';
import { parseSourceDate } from '../../../server/import/edumfa_source.ts';
import { decryptColonValue, parseEncKey } from '../../../server/import/edumfa_crypto.ts';
import { encrypt, makeKeyFile, sealed } from '../../helpers/edumfa_db.ts';

const keys = parseEncKey(makeKeyFile().bytes);
const salt = 'c2FsdHNhbHRzYWx0';
const digest = 'A'.repeat(43);

test('argon2 PIN hashes are kept in passlib and node-argon2 parameter order, within bounds', (t) => {
  const passlib = `$argon2id$v=19$m=65536,t=9,p=4$${salt}$${digest}`;
  t.deepEqual(classifyPin(passlib, keys, 255), { kind: 'hash', hash: passlib });
  t.is(classifyPin(`$argon2i$m=512,t=2,p=2$${salt}$${digest}`, keys, 255).kind, 'hash', 'passlib 1.7.0 wrote no version');
  t.is(classifyPin(`$argon2id$v=19$m=512,p=2,t=2$${salt}$${digest}`, keys, 255).kind, 'hash');
  const huge = classifyPin(`$argon2id$v=19$m=4194304,t=9,p=4$${salt}$${digest}`, keys, 255);
  t.like(huge, { kind: 'unsupported' });
  t.like(classifyPin(`$argon2id$v=19$m=65536,t=9,p=4$${salt}$${digest}`, keys, 40), { kind: 'unsupported' });
});

test('other PIN forms: none, encrypted (@@), pbkdf2_sha512, seeded SHA-256, unknown, undecryptable', (t) => {
  t.deepEqual(classifyPin('', keys, 255), { kind: 'none' });
  t.deepEqual(classifyPin(null, keys, 255), { kind: 'none' });
  t.deepEqual(classifyPin(`@@${sealed(keys.token, 'pin-ä')}`, keys, 255), { kind: 'plain', pin: 'pin-ä' });
  t.like(classifyPin(`@@${sealed(crypto.randomBytes(32), 'x')}`, keys, 255), { kind: 'unsupported' });
  t.regex((classifyPin(`$pbkdf2-sha512$25000$${salt}$${digest}`, keys, 255) as { reason: string }).reason, /pbkdf2_sha512/);
  t.regex((classifyPin('ab'.repeat(32), keys, 255) as { reason: string }).reason, /seeded SHA-256/);
  t.regex(
    (classifyPin(`$bcrypt-sha256$v=2,t=2b,r=12$n79VH$1.2.3`, keys, 255) as { reason: string }).reason,
    /unknown scheme \(bcrypt-sha256\)/,
  );
});

test('values in both paddings decrypt; the source dates parse with their offset', (t) => {
  const legacy = encrypt(keys.config, Buffer.from('secret value'), true);
  t.is(decryptColonValue(keys.config, `${legacy.iv.toString('hex')}:${legacy.data.toString('hex')}`).toString(), 'secret value');
  t.is(decryptColonValue(keys.config, sealed(keys.config, 'secret value')).toString(), 'secret value');
  t.throws(() => decryptColonValue(keys.config, 'nothex'));
  t.is(parseSourceDate('2026-11-20T08:15+0100'), Date.parse('2026-11-20T07:15:00Z'));
  t.is(parseSourceDate('20/11/26 08:15'), Date.parse('2026-11-20T08:15:00Z'));
  t.is(parseSourceDate('next tuesday'), null);
  t.throws(() => parseEncKey(Buffer.alloc(40)), { message: /expected 96/ });
});
