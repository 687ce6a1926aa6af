/**
 * The device protocol v2 at the HTTP edge (server/routes/device.ts, server/auth/device.ts): discovery and its signed
 * nonce, enrollment refusals, request authentication, the long-poll's ETag/304 and expiry wake-up, connection
 * limits, and the v1 endpoints refusing a v2 device. Time moves only with the fake clock; waits end through the bus.
 */
import crypto from 'node:crypto';
import test from 'ava';
import { check, enroll, policy, quiet, track, until } from '../helpers/kit.ts';
import { phoneFor, pushWorld } from '../helpers/push_world.ts';
import type { TestWorld } from '../helpers/test_app.ts';
import { signDeviceText, signedText, spkiBase64, verifyDeviceText } from '../../tokens/push/device.ts';

const OFFER = policy('device-offer', 'enrollment', { edupush_device_protocol: true });

async function begin(w: TestWorld) {
  const body = await enroll(w, { type: 'edupush', genkey: 1, user: 'alice', pin: '1234' });
  const url = new URL(body.detail.pushurl.value);
  return { serial: url.searchParams.get('serial')!, credential: url.searchParams.get('enrollment_credential')! };
}

function enrollParams(serial: string, credential: string, key: crypto.KeyPairKeyObjectResult, authMode: 'lax' | 'strict' = 'lax') {
  const pubkey = spkiBase64(key.publicKey);
  return {
    serial,
    enrollment_credential: credential,
    pubkey,
    auth_mode: authMode,
    signature: signDeviceText(key.privateKey, signedText.enroll(serial, credential, pubkey, authMode, '', '')),
  };
}

async function device(w: TestWorld) {
  const { serial, credential } = await begin(w);
  const key = crypto.generateKeyPairSync('ed25519');
  const r = await w.call('POST', '/device/v2/enroll', enrollParams(serial, credential, key));
  if (r.status !== 200) throw new Error(r.text);
  const auth = (path = '/device/v2/challenges', ts = w.clock.now(), signPath = path) => ({
    authorization: `PushGate-Device serial="${serial}", timestamp="${ts}", signature="${signDeviceText(key.privateKey, signedText.request('GET', signPath, serial, String(ts)))}"`,
  });
  const poll = (headers: Record<string, string> = {}, wait?: number) =>
    w.call('GET', '/device/v2/challenges', wait === undefined ? {} : { wait }, { headers: { ...auth(), ...headers } });
  return { serial, key, auth, poll };
}

test('discovery signs the nonce with the advertised key; /pwless/info shows the same key; the mode follows the realm', async (t) => {
  const w = await pushWorld(t, {
    policies: [policy('strict-staff', 'enrollment', { edupush_device_auth_mode: 'strict' }, { realm: 'staff' })],
  });
  const d = (await w.call('GET', '/.well-known/pushgate', { nonce: 'n0nce-12345' })).body.result.value;
  const key = crypto.createPublicKey({ key: Buffer.from(d.server_key.key_data, 'base64'), format: 'der', type: 'spki' });
  t.true(verifyDeviceText(key, signedText.nonce('n0nce-12345'), d.signed_nonce));
  t.false(verifyDeviceText(key, signedText.nonce('other-nonce'), d.signed_nonce));
  t.is(d.authentication_mode, 'strict', 'without a realm: the strictest any realm may ask (the realm filter does not exclude)');
  t.is((await w.call('GET', '/.well-known/pushgate', { realm: 'default' })).body.result.value.authentication_mode, 'lax');
  t.is((await w.call('GET', '/.well-known/pushgate', { realm: 'staff' })).body.result.value.authentication_mode, 'strict');
  const p = (await w.call('GET', '/pwless/info', { realm: 'staff' })).body;
  t.like(p, {
    success: true,
    settings: { authentication_mode: 'strict', accepts_nonce: true },
    public_key: { key_data: d.server_key.key_data },
  });
  t.false('signed_nonce' in p, 'no nonce, no signature');
});

test('enrollment refusals: not offered, wrong credential, weak key, bad signature; one enrollment only', async (t) => {
  const w = await pushWorld(t);
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const plain = await begin(w);
  const notOffered = await w.call('POST', '/device/v2/enroll', enrollParams(plain.serial, plain.credential, key));
  t.is(notOffered.status, 403);
  w.deps.reloadPolicies({ ...w.deps.config, policies: [...w.deps.config.policies, OFFER] });
  const { serial, credential } = await begin(w);
  const post = (p: Record<string, unknown>) => w.call('POST', '/device/v2/enroll', p);
  t.like((await post(enrollParams(serial, 'wrong', key))).body.result.error, { code: 905 });
  const weak = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
  t.regex((await post(enrollParams(serial, credential, weak))).body.result.error.message, /RSA keys must have 2048 to 4096 bits/);
  t.like(
    (await post({ ...enrollParams(serial, credential, key), auth_mode: 'strict' })).body.result.error,
    { code: 10 },
    'the mode is signed',
  );
  t.is((await post({ ...enrollParams(serial, credential, key), auth_mode: 'maybe' })).status, 400);
  const [a, b] = await Promise.all([post(enrollParams(serial, credential, key)), post(enrollParams(serial, credential, key))]);
  t.deepEqual([a.status, b.status].sort(), [200, 404], 'two racing enrollments: exactly one wins');
  t.is((await post(enrollParams(serial, credential, key))).status, 404);
});

test('request authentication: a stale timestamp, another path, a v1 token, a disabled token — all the same 401', async (t) => {
  const w = await pushWorld(t, { policies: [OFFER] });
  const d = await device(w);
  t.is((await d.poll({}, 0)).status, 200);
  t.is((await d.poll(d.auth('/device/v2/challenges', w.clock.now() - 61_000), 0)).status, 401);
  t.is((await d.poll(d.auth('/device/v2/challenges', w.clock.now(), '/device/v2/events'), 0)).status, 401);
  t.is((await d.poll({ authorization: 'Bearer x' }, 0)).status, 401);
  // a v1 phone's token is no v2 device; a v2 device is nothing for the v1 endpoints
  const phone = phoneFor(w);
  phone.scan((await enroll(w, { type: 'edupush', genkey: 1, user: 'bob', pin: '1' })).detail.pushurl.value);
  t.is((await phone.enroll()).status, 200);
  const v1auth = d.auth().authorization.replace(d.serial, phone.token!.serial);
  t.is((await d.poll({ authorization: v1auth }, 0)).status, 401);
  const v1poll = await w.call('GET', '/ttype/edupush', {
    serial: d.serial,
    timestamp: new Date(w.clock.now()).toISOString(),
    signature: 'AAAA',
  });
  t.is(v1poll.status, 400);
  await w.call('POST', `/token/disable/${d.serial}`, {}, { headers: { Authorization: await w.adminToken() } });
  const disabled = await d.poll({}, 0);
  t.is(disabled.status, 401);
  t.like(disabled.body.result.error, { code: 4034 });
});

test('long-poll: held while nothing changes (304 after poll_seconds), woken by a login and by an expiry', async (t) => {
  const w = await pushWorld(t, { policies: [OFFER] });
  const d = await device(w);
  const empty = await d.poll({}, 0);
  const etag = empty.headers.get('etag')!;
  t.is(empty.body.detail.etag, etag);

  const held = track(d.poll({ 'if-none-match': etag }));
  await until(() => w.deps.answers.waiting === 1);
  await quiet(w); // its first read is done: the wait's timer is set
  w.clock.advance(24_999);
  t.false(held.settled());
  w.clock.advance(1);
  const r304 = await held.promise;
  t.is(r304.status, 304);
  t.is(r304.headers.get('etag'), etag);

  const woken = track(d.poll({ 'if-none-match': etag }));
  await until(() => w.deps.answers.waiting === 1);
  await quiet(w); // its first read is done: the wait's timer is set
  await check(w, { user: 'alice', pass: '1234' });
  const fresh = await woken.promise;
  t.is(fresh.status, 200);
  t.is(fresh.body.result.value.length, 1);
  const etag2 = fresh.headers.get('etag')!;

  // expiry: the list changes without any notification when the request expires (challenge validity 120 s)
  const expiring = track(d.poll({ 'if-none-match': etag2 }));
  await until(() => w.deps.answers.waiting === 1);
  await quiet(w); // its first read is done: the wait's timer is set
  w.clock.advance(25_000);
  const again = await expiring.promise;
  t.is(again.status, 304);
  w.clock.advance(90_000);
  const last = track(d.poll({ 'if-none-match': etag2 }));
  await until(() => w.deps.answers.waiting === 1);
  await quiet(w); // its first read is done: the wait's timer is set
  w.clock.advance(6_001);
  const expired = await last.promise;
  t.is(expired.status, 200);
  t.deepEqual(expired.body.result.value, []);
  t.is(expired.headers.get('etag'), etag);
});

test('connection limits: per device and per process, 503 with Retry-After; a finished connection frees its place', async (t) => {
  const w = await pushWorld(t, { policies: [OFFER], config: { device: { max_per_device: 1, max_connections: 2 } } });
  const d = await device(w);
  const etag = (await d.poll({}, 0)).headers.get('etag')!;
  const first = track(d.poll({ 'if-none-match': etag }));
  await until(() => w.deps.answers.waiting === 1);
  await quiet(w); // its first read is done: the wait's timer is set
  const second = await d.poll({ 'if-none-match': etag });
  t.is(second.status, 503);
  t.is(second.headers.get('retry-after'), '5');
  const other = await device(w);
  const otherHeld = track(other.poll({ 'if-none-match': (await other.poll({}, 0)).headers.get('etag')! }));
  await until(() => w.deps.answers.waiting === 2);
  const d3 = await device(w);
  t.is((await d3.poll({}, 0)).status, 503, 'the process is full');
  w.clock.advance(25_000);
  t.is((await first.promise).status, 304);
  t.is((await otherHeld.promise).status, 304);
  t.is((await d.poll({}, 0)).status, 200, 'the place is free again');
});

test('long-poll outside Koa: the same answers, headers and events as through the Koa route (a query beyond wait)', async (t) => {
  const w = await pushWorld(t, { policies: [OFFER] });
  const d = await device(w);
  // `wait` alone: the raw path; with another parameter: the Koa route (server/routes/device.ts isRawLongPoll)
  const viaKoa = (headers: Record<string, string>) =>
    w.call('GET', '/device/v2/challenges', { wait: 0, x: '1' }, { headers: { ...d.auth(), ...headers } });
  const raw = await d.poll({ 'x-request-id': 'poll-raw-1' }, 0);
  const koa = await viaKoa({ 'x-request-id': 'poll-koa-1' });
  for (const [r, id] of [
    [raw, 'poll-raw-1'],
    [koa, 'poll-koa-1'],
  ] as const) {
    t.is(r.status, 200);
    t.is(r.headers.get('x-request-id'), id);
    t.is(r.headers.get('cache-control'), 'no-cache');
    t.regex(r.headers.get('content-type') ?? '', /^application\/json/);
    t.deepEqual(r.body.result.value, []);
    const finished = w.seen.find((e) => e.name === 'request.finished' && (e.payload as { path?: string }).path === '/device/v2/challenges');
    t.truthy(finished);
  }
  const etag = raw.headers.get('etag')!;
  t.is(koa.headers.get('etag'), etag);
  const raw304 = await d.poll({ 'if-none-match': etag }, 0);
  const koa304 = await viaKoa({ 'if-none-match': etag });
  t.is(raw304.status, 304);
  t.is(koa304.status, 304);
  t.is(raw304.headers.get('etag'), etag);
  t.is(koa304.headers.get('etag'), etag);
  // errors: the same envelope from both
  const bad = { authorization: 'PushGate-Device serial="nope", timestamp="1", signature="AAAA"' };
  const rawErr = await w.call('GET', '/device/v2/challenges', {}, { headers: bad });
  const koaErr = await w.call('GET', '/device/v2/challenges', { x: '1' }, { headers: bad });
  t.is(rawErr.status, 401);
  t.is(koaErr.status, 401);
  t.deepEqual(rawErr.body.result.error, koaErr.body.result.error);
  t.truthy(rawErr.headers.get('x-request-id'));
  const badWait = await d.poll({}, 'soon' as unknown as number);
  t.is(badWait.status, 400, 'a wait that is not a number takes the Koa route and is refused there');
  // a held raw long-poll is counted and answered on the bus like before
  const held = track(d.poll({ 'if-none-match': etag }));
  await until(() => w.deps.answers.waiting === 1);
  await quiet(w);
  await check(w, { user: 'alice', pass: '1234' });
  const woken = await held.promise;
  t.is(woken.status, 200);
  t.is(woken.body.result.value.length, 1);
  t.truthy(woken.headers.get('x-request-id'));
});
