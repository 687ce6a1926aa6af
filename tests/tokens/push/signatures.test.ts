import test from 'ava';
import crypto from 'node:crypto';
import {
  createKeyPool,
  decodeSignature,
  generateServerKeyPair,
  normalisePhoneKeyText,
  parsePhoneKey,
  PhoneKeyError,
  signText,
  stripPemArmor,
  verifyPhoneSignature,
  type ServerKeyPair,
} from '../../../tokens/push/signatures.ts';
import { base32Decode, base32Encode } from '../../../tokens/base32.ts';
import { makePhoneKey } from '../../helpers/fake_phone.ts';
import { testServerKeys } from '../../helpers/push_ctx.ts';

const rsa = makePhoneKey('rsa');
const ec = makePhoneKey('ec');
const spki = (k: crypto.KeyObject) => (k.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');

test('stripPemArmor: armor removed, inner line breaks kept, idempotent and whitespace-tolerant', async (t) => {
  const [key] = await testServerKeys();
  const body = stripPemArmor(key!.publicPem);
  t.false(body.includes('-----'));
  t.true(body.includes('\n'));
  t.false(body.startsWith('\n') || body.endsWith('\n'));
  t.is(stripPemArmor(body), body);
  t.is(stripPemArmor(`\n  ${key!.publicPem.replace(/\n/g, '\r\n')}  \n`), body);
});

test('parsePhoneKey: SPKI in standard, URL-safe, space-mangled and armored form; RSA and EC P-256', (t) => {
  const std = spki(rsa.publicKey);
  const urlSafe = std.replace(/\+/g, '-').replace(/\//g, '_');
  const spaced = std.replace(/\+/g, ' ');
  const armored = `-----BEGIN PUBLIC KEY-----\n${std.match(/.{1,64}/g)!.join('\n')}\n-----END PUBLIC KEY-----\n`;
  for (const text of [std, urlSafe, spaced, armored, std.replace(/=+$/, '')]) {
    const k = parsePhoneKey(text);
    t.is(k.kind, 'rsa');
    t.true(k.key.equals(rsa.publicKey));
  }
  t.is(normalisePhoneKeyText(urlSafe), std);
  t.is(parsePhoneKey(spki(ec.publicKey)).kind, 'ec');
});

test('parsePhoneKey: refuses small RSA, other curves, PKCS#1 and garbage', (t) => {
  const small = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
  const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey;
  const ed = crypto.generateKeyPairSync('ed25519').publicKey;
  const pkcs1 = (rsa.publicKey.export({ type: 'pkcs1', format: 'der' }) as Buffer).toString('base64');
  for (const text of [spki(small), spki(p384), spki(ed), pkcs1, '', 'not a key!', 'AAAA']) {
    t.throws(() => parsePhoneKey(text), { instanceOf: PhoneKeyError }, text.slice(0, 20));
  }
});

test('verifyPhoneSignature: RSA PKCS#1 v1.5 and ECDSA DER over SHA-256', (t) => {
  for (const pair of [rsa, ec]) {
    const key = parsePhoneKey(spki(pair.publicKey));
    const sig =
      pair.kind === 'rsa'
        ? crypto.sign('sha256', Buffer.from('NONCE|EDUP1'), pair.privateKey)
        : crypto.sign('sha256', Buffer.from('NONCE|EDUP1'), { key: pair.privateKey, dsaEncoding: 'der' });
    t.true(verifyPhoneSignature(key, 'NONCE|EDUP1', sig));
    t.false(verifyPhoneSignature(key, 'NONCE|EDUP2', sig));
    t.false(verifyPhoneSignature(key, 'NONCE|EDUP1', Buffer.from('short')));
  }
  const pss = crypto.sign('sha256', Buffer.from('x'), { key: rsa.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING });
  t.false(verifyPhoneSignature(parsePhoneKey(spki(rsa.publicKey)), 'x', pss), 'PSS is not accepted');
});

test('decodeSignature: base32 (padding optional, any case) or null — never throws', (t) => {
  const sig = crypto.randomBytes(256);
  const text = base32Encode(sig);
  t.true(decodeSignature(text)!.equals(sig));
  t.true(decodeSignature(text.toLowerCase())!.equals(sig));
  t.true(decodeSignature(text.replace(/=+$/, ''))!.equals(sig));
  for (const bad of ['', '0189', 'AB=CD', 'A', '!!!!']) t.is(decodeSignature(bad), null, bad);
});

test('signText: PKCS#1 v1.5 SHA-256, upper-case padded base32', async (t) => {
  const [key] = await testServerKeys();
  const sig = signText(key!.privatePem, 'a|b');
  t.regex(sig, /^[A-Z2-7]+=*$/);
  t.is(sig.length % 8, 0);
  t.true(crypto.verify('sha256', Buffer.from('a|b'), key!.publicPem, base32Decode(sig)));
});

test('production server key: RSA-4096 PKCS#1 (MIICCgKCAgEA…), 824-char signatures', async (t) => {
  const pool = createKeyPool({ size: 0 });
  const key = await pool.take();
  pool.close();
  t.true(stripPemArmor(key.publicPem).startsWith('MIICCgKCAgEA'));
  const sig = signText(key.privatePem, 'x');
  t.is(sig.length, 824);
  t.true(sig.endsWith('===='));
  t.is(crypto.createPublicKey(key.publicPem).asymmetricKeyDetails?.publicExponent, 65537n);
});

test('key pool: warm fills to size in the background, take hands out distinct keys, close refuses', async (t) => {
  let made = 0;
  const gates: Array<() => void> = [];
  const generate = () =>
    new Promise<ServerKeyPair>((resolve) => {
      const n = ++made;
      gates.push(() => resolve({ publicPem: `pub${n}`, privatePem: `priv${n}` }));
    });
  const pool = createKeyPool({ size: 2, generate });
  t.is(made, 0, 'nothing happens before warm/take');
  pool.warm();
  t.is(made, 2);
  gates.shift()!();
  gates.shift()!();
  await Promise.resolve();
  await Promise.resolve();
  t.is(pool.ready, 2);
  const [a, b] = await Promise.all([pool.take(), pool.take()]);
  t.not(a.publicPem, b.publicPem);
  t.is(made, 4, 'each take triggers a refill');
  const waiting = pool.take();
  gates.shift()!();
  t.regex((await waiting).publicPem, /^pub\d$/);
  pool.close();
  await t.throwsAsync(pool.take(), { message: 'key pool closed' });
});

test('generateServerKeyPair runs off the event loop (async API)', async (t) => {
  let turns = 0;
  let running = true;
  const spin = () => {
    if (running) {
      turns++;
      setImmediate(spin);
    }
  };
  setImmediate(spin);
  const key = await generateServerKeyPair(2048);
  running = false;
  t.true(key.publicPem.startsWith('-----BEGIN RSA PUBLIC KEY-----'));
  t.true(key.privatePem.startsWith('-----BEGIN RSA PRIVATE KEY-----'));
  t.true(turns > 1, 'the event loop kept turning while the key was generated');
});
