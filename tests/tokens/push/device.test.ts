/** The device protocol v2's database-free parts (tokens/push/device.ts, device_requests.ts, the v2 wake-up push). */
import crypto from 'node:crypto';
import test from 'ava';
import {
  DeviceKeyError,
  ed25519FromSeed,
  openSealed,
  parseDeviceKey,
  sealForDevice,
  signDeviceText,
  signedText,
  spkiBase64,
  createDeviceKeyCache,
  verifyDeviceText,
} from '../../../tokens/push/device.ts';
import { pendingRequest, requestsEtag } from '../../../tokens/push/device_requests.ts';
import { DEVICE_WAKEUP_TEXT, deliverPushChallenge } from '../../../tokens/push/challenge.ts';
import { EDUPUSH } from '../../../tokens/push/variants.ts';
import { challengeRecord, policyCtx, recordingSupport, tokenRecord } from '../../helpers/push_ctx.ts';

const spki = (k: crypto.KeyObject) => spkiBase64(k);
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const ed = crypto.generateKeyPairSync('ed25519');
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

test('device keys: RSA 2048–4096, EC P-256 and Ed25519 are accepted; anything else is refused', (t) => {
  t.like(parseDeviceKey(spki(rsa.publicKey)), { type: 'rsa', bits: 2048 });
  t.like(parseDeviceKey(spki(ec.publicKey)), { type: 'ec', bits: 256 });
  t.like(parseDeviceKey(spki(ed.publicKey).replace(/\+/g, '-').replace(/\//g, '_')), { type: 'ed25519' }, 'base64url too');
  const refused = [
    spki(crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
    spki(crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey),
    spki(crypto.generateKeyPairSync('x25519').publicKey),
    'not base64!',
    Buffer.from('garbage').toString('base64'),
    '',
  ];
  for (const k of refused) t.throws(() => parseDeviceKey(k), { instanceOf: DeviceKeyError }, k.slice(0, 20));
});

test('signatures: each key type verifies its own signature over the exact text, and nothing else', (t) => {
  for (const pair of [rsa, ec, ed]) {
    const text = signedText.answer('ID', 'EDUP1', 'decline', 'not me');
    const sig = signDeviceText(pair.privateKey, text);
    t.true(verifyDeviceText(pair.publicKey, text, sig));
    t.false(verifyDeviceText(pair.publicKey, signedText.answer('ID', 'EDUP1', 'decline', 'not m'), sig));
    t.false(verifyDeviceText(pair.publicKey, signedText.answer('ID', 'EDUP1', 'accept'), sig), 'a decline is not an accept');
    t.false(verifyDeviceText(pair.publicKey, text, 'AAAA'));
    t.false(verifyDeviceText(pair.publicKey, text, 'not|base64'));
  }
  t.not(signedText.request('GET', '/p', 'S', '1'), signedText.nonce('GET|/p|S|1'), 'purposes never collide');
});

test('sealed payloads: ECDH P-256 (0x01) and RSA-OAEP (0x02) open with the right key only; tampering and moving fail', (t) => {
  for (const [pair, version] of [
    [ec, 1],
    [rsa, 2],
  ] as const) {
    const sealed = sealForDevice(pair.publicKey, 'EDUP1', '{"question":"Login?"}');
    t.is(Buffer.from(sealed, 'base64url')[0], version);
    t.is(openSealed(pair.privateKey, 'EDUP1', sealed), '{"question":"Login?"}');
    t.throws(() => openSealed(pair.privateKey, 'EDUP2', sealed), undefined, 'bound to its serial (AAD)');
    const bytes = Buffer.from(sealed, 'base64url');
    bytes[bytes.length - 1]! ^= 1;
    t.throws(() => openSealed(pair.privateKey, 'EDUP1', bytes.toString('base64url')), undefined, 'tampered');
  }
  t.throws(() =>
    openSealed(
      crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
      'EDUP1',
      sealForDevice(ec.publicKey, 'EDUP1', 'x'),
    ),
  );
  t.throws(() => sealForDevice(ed.publicKey, 'EDUP1', 'x'), { instanceOf: DeviceKeyError }, 'Ed25519 cannot encrypt');
});

test('the server identity key is the same for the same seed (every node), and different for another', (t) => {
  const seed = crypto.randomBytes(32);
  t.is(spki(ed25519FromSeed(seed).publicKey), spki(ed25519FromSeed(Buffer.from(seed)).publicKey));
  t.not(spki(ed25519FromSeed(seed).publicKey), spki(ed25519FromSeed(crypto.randomBytes(32)).publicKey));
});

const PRESIGNED = {
  push_question: 'Login to Library? Code: 47',
  push_title: 'Library',
  push_sslverify: '1',
  push_url: 'https://mfa.example.org/ttype/edupush',
  push_signature: 'SIG',
  proof: 'match',
  proof_code: '47',
  device_client: '203.0.113.7',
};

test('a pending request from a challenge row; the ETag changes with the list and not with its order', (t) => {
  const row = challengeRecord({ data: PRESIGNED, createdAt: 1000, expiresAt: 121_000 });
  const r = pendingRequest(row);
  t.like(r, {
    id: row.nonce,
    serial: 'EDUP0001',
    title: 'Library',
    application: 'Library',
    code: '47',
    code_kind: 'match',
    client: '203.0.113.7',
    expires_at: 121_000,
  });
  t.is(pendingRequest(challengeRecord({ data: {} })), null, 'nothing to show without presigned texts');
  const a = { id: 'A', expires_at: 1 };
  const b = { id: 'B', expires_at: 2 };
  t.is(requestsEtag([a, b]), requestsEtag([b, a]));
  t.not(requestsEtag([a]), requestsEtag([a, b]));
  t.not(requestsEtag([]), requestsEtag([a]));
});

test('a v2 device on a Firebase channel gets a wake-up: an opaque id (and sealed data by policy), never the question', async (t) => {
  const info = {
    edupush_firebase_configuration: 'fcm',
    firebase_token: 'fcm-target',
    device_protocol: '2',
    device_public_key: spki(ec.publicKey),
  };
  const token = tokenRecord({ info });
  const challenge = challengeRecord({ data: PRESIGNED });
  for (const payload of ['wakeup', 'encrypted'] as const) {
    const support = recordingSupport(['fcm']);
    const ctx = policyCtx([{ scope: 'authentication', actions: { edupush_device_payload: payload } }], { push: support });
    t.deepEqual(await deliverPushChallenge(EDUPUSH, token, challenge, ctx), { delivered: true });
    t.deepEqual(support.woken, ['EDUP0001'], 'the long-poll is woken too');
    const m = support.sent[0]!.message;
    t.deepEqual(m.notification, { ...DEVICE_WAKEUP_TEXT });
    const wire = JSON.stringify(m);
    for (const secret of ['Library', 'Code: 47', '203.0.113.7', 'SIG']) t.false(wire.includes(secret), `${payload}: ${secret}`);
    t.like(m.data, { pushgate: '2', serial: 'EDUP0001', id: challenge.nonce });
    if (payload === 'encrypted')
      t.like(JSON.parse(openSealed(ec.privateKey, 'EDUP0001', m.data.sealed!)), { title: 'Library', client: '203.0.113.7' });
    else t.false('sealed' in m.data);
  }
  const longpoll = recordingSupport(['fcm']);
  const r = await deliverPushChallenge(
    EDUPUSH,
    tokenRecord({ info: { ...info, edupush_firebase_configuration: 'longpoll' } }),
    challenge,
    policyCtx([], { push: longpoll }),
  );
  t.deepEqual(r, { delivered: true });
  t.is(longpoll.sent.length, 0, 'channel longpoll: no push provider at all');
  t.deepEqual(longpoll.woken, ['EDUP0001']);
});

test('the device key cache parses a key text once, refuses what is not an accepted key, and keeps the most recent', (t) => {
  const cache = createDeviceKeyCache(2);
  const texts = [0, 1, 2].map(() => spkiBase64(crypto.generateKeyPairSync('ed25519').publicKey));
  const first = cache.get(texts[0]!);
  t.is(first?.type, 'ed25519');
  t.is(cache.get(texts[0]!), first, 'the same parsed key');
  t.is(cache.get('not a key'), null);
  t.is(cache.get(spkiBase64(crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey)), null, 'P-384 is not accepted');
  t.is(cache.size, 1, 'nothing refused is remembered');
  const second = cache.get(texts[1]!);
  cache.get(texts[0]!); // used again: the most recent
  cache.get(texts[2]!); // over the limit: the least recently used (texts[1]) goes
  t.is(cache.size, 2);
  t.is(cache.get(texts[0]!), first);
  t.not(cache.get(texts[1]!), second, 'parsed again');
});
