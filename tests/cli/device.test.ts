/**
 * The reference device client (`pushgate device …`, issue 14) drives every v2 flow against a test server in-process:
 * enroll from the URL /token/init prints for an edupush token, `listen --json --once` (long-poll and SSE, woken
 * through the answer bus — no sleeps, no clock moves), approve, decline with a reason, sealed payloads, strict mode.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { auditRows, check, enroll, policy, until } from '../helpers/kit.ts';
import { pushWorld } from '../helpers/push_world.ts';
import { deviceCli, offerDeviceProtocol } from '../helpers/device_cli.ts';
import type { TestWorld } from '../helpers/test_app.ts';

async function enrollmentUrl(w: TestWorld): Promise<{ url: string; serial: string }> {
  const body = await enroll(w, { type: 'edupush', genkey: 1, user: 'alice', pin: '1234' });
  return { url: body.detail.pushurl.value as string, serial: body.detail.serial as string };
}

/** Starts `device listen --json --once …`; resolves once a connection of it listens on the answer bus. */
async function listening(w: TestWorld, store: string, extra: string[] = []) {
  const before = w.deps.answers.waiting;
  const done = deviceCli(store, ['listen', '--json', '--once', ...extra]);
  await until(() => w.deps.answers.waiting > before);
  return { done }; // not the promise itself: an async function would wait for it
}

const login = async (w: TestWorld) => {
  const r = await check(w, { user: 'alice', pass: '1234' });
  return r.body.detail.transaction_id as string;
};

test('enroll from the /token/init URL, listen --once, approve → ACCEPT; decline with a reason → REJECT and audited', async (t) => {
  const w = await pushWorld(t, {
    policies: [policy('match', 'authentication', { push_matching: 'always', push_matching_format: 'digits' })],
  });
  offerDeviceProtocol(w);
  const store = path.join(w.tmp, 'conf', 'device.json');
  const { url, serial } = await enrollmentUrl(w);
  t.regex(url, /&v=1&serial=EDUP\w+&sslverify=1&pushgate=2$/, 'v stays 1; the v2 advert is a parameter v1 apps ignore');

  const enrolled = await deviceCli(store, ['enroll', url]);
  t.is(enrolled.code, 0, enrolled.stderr);
  t.regex(enrolled.stdout, new RegExp(`^enrolled ${serial} \\(ed25519, lax\\)`));
  t.is(fs.statSync(store).mode & 0o777, 0o600);
  const token = (await w.deps.store.tokens.bySerial(serial))!;
  t.like(token, { rolloutState: 'enrolled', active: true });
  t.like(token.info, { device_protocol: '2', device_key_type: 'ed25519', device_auth_mode: 'lax' });
  t.false('public_key_smartphone' in token.info, 'no v1 key: the v1 endpoints cannot speak for a v2 device');

  // long-poll: the request arrives the moment the login is triggered
  const listen = await listening(w, store);
  const tid = await login(w);
  const got = await listen.done;
  t.is(got.code, 0, got.stderr);
  const lines = got.stdout.trim().split('\n');
  t.is(lines.length, 1);
  const req = JSON.parse(lines[0]!);
  t.deepEqual(Object.keys(req), ['id', 'serial', 'question', 'title', 'code', 'expires_at']);
  t.is(req.serial, serial);
  t.regex(req.code, /^\d{2,}$/, 'the matching code');
  t.true(req.question.includes(req.code));
  t.is(req.expires_at, w.clock.now() + 120_000);

  const approved = await deviceCli(store, ['approve', req.id]);
  t.is(approved.code, 0, approved.stderr);
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid })).body, { result: { authentication: 'ACCEPT' } });
  t.is((await deviceCli(store, ['approve', 'NOSUCHID'])).code, 1, 'an unknown id is refused');

  // list, then decline with a reason
  const tid2 = await login(w);
  const listed = await deviceCli(store, ['list', '--json']);
  t.is(listed.code, 0, listed.stderr);
  const pending = JSON.parse(listed.stdout.trim());
  const declined = await deviceCli(store, ['decline', pending.id, '--reason', 'not me']);
  t.is(declined.code, 0, declined.stderr);
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid2 })).body, { result: { authentication: 'REJECT' } });
  const row = (await auditRows(w)).find((r) => r.action === 'POST /device/v2/answer' && r.outcome === 'DECLINED');
  t.like(row?.info, { decline: true, decline_reason: 'not me' });
  t.is((await deviceCli(store, ['approve', pending.id])).code, 1, 'a declined request cannot be approved afterwards');
  t.is((await deviceCli(store, ['list', '--json'])).stdout, '', 'nothing pending');
});

test('SSE with sealed payloads (EC P-256 key): the wire carries no question, the client opens it', async (t) => {
  const w = await pushWorld(t);
  offerDeviceProtocol(w, [policy('sealed', 'authentication', { edupush_device_payload: 'encrypted', edupush_title_on_mobile: 'Library' })]);
  const store = path.join(w.tmp, 'device.json');
  const { url, serial } = await enrollmentUrl(w);
  t.is((await deviceCli(store, ['enroll', url, '--key-type', 'ec'])).code, 0);
  const listen = await listening(w, store, ['--sse']);
  await login(w);
  const got = await listen.done;
  t.is(got.code, 0, got.stderr);
  const req = JSON.parse(got.stdout.trim());
  t.like(req, { serial, title: 'Library', question: 'Do you want to confirm the login?', code: null });

  // what travels: only id, serial and times in clear
  const device = JSON.parse(fs.readFileSync(store, 'utf8')).devices[0];
  const { deviceAuthorization } = await import('../../cli/device_client.ts');
  const r = await fetch(`${w.url}/device/v2/challenges?wait=0`, {
    headers: { authorization: deviceAuthorization(device, 'GET', '/device/v2/challenges', w.clock.now() - Date.now()) },
  });
  const text = await r.text();
  t.is(r.status, 200);
  t.false(text.includes('confirm the login'));
  t.false(text.includes('Library'));
  t.regex(JSON.parse(text).result.value[0].sealed, /^AQ/, 'version byte 0x01: ECDH P-256 + AES-256-GCM');
  // After the client aborted its stream, undici leaves a connection on which no request ever comes; the server's
  // close() would wait for it until headersTimeout. The stream itself has ended (no listener is left on the bus).
  await until(() => w.deps.answers.waiting === 0);
  w.httpServer!.closeAllConnections();
});

test('strict mode: a lax device is refused where the policy requires strict; an RSA device claiming strict is recorded', async (t) => {
  const w = await pushWorld(t);
  offerDeviceProtocol(w, [policy('strict', 'enrollment', { edupush_device_auth_mode: 'strict' })]);
  const store = path.join(w.tmp, 'device.json');
  const { url, serial } = await enrollmentUrl(w);
  const lax = await deviceCli(store, ['enroll', url, '--key-type', 'rsa', '--rsa-bits', '2048', '--auth-mode', 'lax']);
  t.is(lax.code, 1);
  t.regex(lax.stderr, /HTTP 403 — This server requires a strict device/);
  t.false(fs.existsSync(store), 'nothing stored for a refused enrollment');
  const strict = await deviceCli(store, ['enroll', url, '--key-type', 'rsa', '--rsa-bits', '2048']);
  t.is(strict.code, 0, strict.stderr);
  t.like((await w.deps.store.tokens.bySerial(serial))!.info, {
    device_key_type: 'rsa',
    device_key_bits: '2048',
    device_auth_mode: 'strict',
  });
});

test('a URL without the v2 offer is refused by the server (the policy is not set) and the store stays untouched', async (t) => {
  const w = await pushWorld(t);
  const store = path.join(w.tmp, 'device.json');
  w.deps.reloadPolicies({
    ...w.deps.config,
    policies: [...w.deps.config.policies, policy('reg', 'enrollment', { edupush_registration_url: `${w.url}/ttype/edupush` })],
  });
  const { url } = await enrollmentUrl(w);
  t.false(url.includes('pushgate='));
  const r = await deviceCli(store, ['enroll', url]);
  t.is(r.code, 1);
  t.regex(r.stderr, /not offered for this token/);
  t.is((await deviceCli(store, ['enroll', 'otpauth://totp/x?secret=AA'])).code, 1);
  t.is((await deviceCli(store, ['listen'])).code, 1, 'no device enrolled');
});
