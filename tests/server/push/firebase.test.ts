import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createFirebaseChannel, readServiceAccount } from '../../../server/push/firebase.ts';
import { createChannelRegistry } from '../../../server/push/channel.ts';
import type { PushMessage } from '../../../core/push_channel.ts';
import type { ChannelConfig } from '../../../server/config.ts';
import { ConfigError } from '../../../core/errors.ts';
import { FakeClock } from '../../helpers/fake_clock.ts';
import { startFakeFcm, type FakeFcm } from '../../helpers/fake_fcm.ts';

const cfg = (over: Partial<ChannelConfig> = {}): ChannelConfig => ({
  name: 'fcm',
  type: 'firebase',
  serviceAccountFile: '/nonexistent.json',
  httpsProxy: null,
  timeoutMs: 3000,
  ...over,
});

const message: PushMessage = {
  data: {
    nonce: 'N',
    question: 'Q?',
    serial: 'EDUP1',
    title: 'T',
    sslverify: '1',
    url: 'https://mfa.example.org/ttype/edupush',
    signature: 'SIG=',
  },
  notification: { title: 'T', body: 'Q?' },
  android: { priority: 'high', ttlMs: 120_000, analyticsLabel: 'AndroidPushToken' },
  apns: {
    headers: {
      'apns-priority': '10',
      'apns-push-type': 'alert',
      'apns-collapse-id': 'privacyidea.pushtoken',
      'apns-expiration': '1795000120',
    },
    alert: { title: 'T', body: 'Q?' },
    sound: 'default',
    category: 'PUSH_AUTHENTICATION',
    analyticsLabel: 'iOSPushToken',
  },
};

async function setup(t: { teardown(fn: () => Promise<void> | void): void }, over: Partial<ChannelConfig> = {}) {
  const fcm = await startFakeFcm();
  const clock = new FakeClock();
  const channel = createFirebaseChannel(cfg(over), { clock, ...fcm.firebase });
  t.teardown(async () => {
    await channel.close();
    await fcm.close();
  });
  return { fcm, clock, channel };
}

test('send: FCM HTTP v1 message exactly as protocol.md §3.4, through the real firebase-admin HTTP path', async (t) => {
  const { fcm, channel } = await setup(t);
  const r = await channel.send('device-token-abc', message);
  t.true(r.ok);
  t.is(fcm.received.length, 1);
  const req = fcm.received[0]!;
  t.is(req.method, 'POST');
  t.is(req.path, '/v1/projects/demo-project/messages:send');
  t.is(req.headers.host, 'fcm.googleapis.com');
  t.is(req.headers.authorization, 'Bearer fake-access-token');
  t.deepEqual(req.body, {
    message: {
      token: 'device-token-abc',
      data: message.data,
      notification: { title: 'T', body: 'Q?' },
      // firebase-admin sends proto3 JSON in lowerCamelCase (`fcmOptions`); FCM accepts it like eduMFA's `fcm_options`.
      android: { priority: 'high', ttl: '120s', fcmOptions: { analyticsLabel: 'AndroidPushToken' } },
      apns: {
        headers: message.apns.headers,
        payload: { aps: { alert: { title: 'T', body: 'Q?' }, sound: 'default', category: 'PUSH_AUTHENTICATION' } },
        fcmOptions: { analyticsLabel: 'iOSPushToken' },
      },
    },
  });
});

test('send: UNREGISTERED → unregistered; 500 → unavailable; never throws', async (t) => {
  const { fcm, channel } = await setup(t);
  fcm.mode = 'unregistered';
  const gone = await channel.send('old-device', message);
  t.false(gone.ok);
  t.true(!gone.ok && gone.reason === 'unregistered');
  t.true(!gone.ok && /registration-token-not-registered/.test(gone.detail));
  fcm.mode = 'error500';
  const down = await channel.send('device', message);
  t.true(!down.ok && down.reason === 'unavailable');
  fcm.mode = 'ok';
  t.true((await channel.send('device', message)).ok, 'recovers');
});

test('send: a hanging FCM is cut off at timeout_ms on the injected clock', async (t) => {
  const { fcm, clock, channel } = await setup(t, { timeoutMs: 1500 });
  fcm.mode = 'hang';
  const arrived = fcm.nextRequest();
  let settled = false;
  const pending = channel.send('device', message).finally(() => {
    settled = true;
  });
  await arrived;
  t.false(settled);
  clock.advance(1499);
  await Promise.resolve();
  t.false(settled);
  clock.advance(1);
  const r = await pending;
  t.false(r.ok);
  t.true(!r.ok && r.reason === 'timeout');
  t.is(r.ms, 1500);
});

test('service account: file must be a service-account JSON; registry builds one app per channel', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-fcm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ type: 'authorized_user' }));
  const err = t.throws(() => readServiceAccount(cfg({ name: 'my firebase config', serviceAccountFile: bad })), { instanceOf: ConfigError });
  t.regex(err!.message, /push\.channels \(my firebase config\)\.service_account_file: .* is not a Firebase service-account file/);
  t.throws(() => readServiceAccount(cfg({ serviceAccountFile: path.join(dir, 'missing.json') })), {
    instanceOf: ConfigError,
    message: /ENOENT/,
  });

  const fcm = await startFakeFcm();
  t.teardown(() => fcm.close());
  const clock = new FakeClock();
  const reg = createChannelRegistry([cfg({ name: 'a' }), cfg({ name: 'b' })], { clock, firebase: fcm.firebase });
  t.deepEqual(reg.names(), ['a', 'b']);
  t.true((await reg.get('b')!.send('d', message)).ok);
  t.is(reg.get('poll only'), undefined);
  await reg.close();
  t.deepEqual(reg.names(), []);
});

test('service-account file: the OAuth JWT exchange goes through the channel agent (proxy-capable), then FCM', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-sa-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const file = path.join(dir, 'sa.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      type: 'service_account',
      project_id: 'sa-project',
      private_key_id: 'kid1',
      client_email: 'x@sa-project.iam.gserviceaccount.com',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      token_uri: 'https://oauth2.googleapis.com/token',
    }),
  );
  const fcm: FakeFcm = await startFakeFcm('sa-project');
  t.teardown(() => fcm.close());
  const clock = new FakeClock();
  const channel = createFirebaseChannel(cfg({ serviceAccountFile: file }), { clock, httpAgent: fcm.firebase.httpAgent });
  t.teardown(() => channel.close());
  t.true((await channel.send('device', message)).ok);
  t.true((await channel.send('device', message)).ok);
  const [oauth, ...sends] = fcm.received;
  t.is(oauth!.path, '/token');
  t.is(oauth!.headers.host, 'oauth2.googleapis.com');
  const form = new URLSearchParams(String(oauth!.body));
  t.is(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
  const [h, c, s] = form.get('assertion')!.split('.');
  t.deepEqual(JSON.parse(Buffer.from(h!, 'base64url').toString()), { alg: 'RS256', typ: 'JWT', kid: 'kid1' });
  t.like(JSON.parse(Buffer.from(c!, 'base64url').toString()), {
    iss: 'x@sa-project.iam.gserviceaccount.com',
    aud: 'https://oauth2.googleapis.com/token',
    iat: clock.now() / 1000,
  });
  t.true(crypto.verify('sha256', Buffer.from(`${h}.${c}`), publicKey, Buffer.from(s!, 'base64url')));
  t.is(sends.length, 2, 'the token is cached');
  t.is(sends[0]!.path, '/v1/projects/sa-project/messages:send');
  t.is(sends[0]!.headers.authorization, 'Bearer fake-oauth-token');
});

test('https_proxy: FCM is reached through an HTTP CONNECT tunnel, TLS to the real host name', async (t) => {
  const { ProxyTunnelAgent } = await import('../../../server/push/firebase.ts');
  const tls = await import('node:tls');
  const net = await import('node:net');
  const http = await import('node:http');
  const fixtures = new URL('./fixtures/', import.meta.url);
  const cert = fs.readFileSync(new URL('fake_fcm_cert.pem', fixtures));
  const key = fs.readFileSync(new URL('fake_fcm_key.pem', fixtures));
  const seen: string[] = [];
  // The "Internet": a TLS server holding a certificate for fcm.googleapis.com.
  const target = tls.createServer({ cert, key, ALPNProtocols: ['http/1.1'] }, (socket) => {
    let buf = '';
    socket.on('data', (c) => {
      buf += c.toString('utf8');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      seen.push(buf.split('\r\n')[0]!);
      const body = JSON.stringify({ name: 'projects/demo-project/messages/1' });
      socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    });
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const targetPort = (target.address() as import('node:net').AddressInfo).port;
  const connects: string[] = [];
  const proxy = http.createServer();
  proxy.on('connect', (req, client, head) => {
    connects.push(`${req.url} ${req.headers['proxy-authorization'] ?? ''}`);
    const upstream = net.connect(targetPort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyPort = (proxy.address() as import('node:net').AddressInfo).port;
  const agent = new ProxyTunnelAgent(`http://user:p%40ss@127.0.0.1:${proxyPort}`, { ca: cert });
  const fcm = await startFakeFcm();
  const channel = createFirebaseChannel(cfg(), {
    clock: new FakeClock(),
    credential: fcm.firebase.credential,
    projectId: 'demo-project',
    httpAgent: agent,
  });
  t.teardown(async () => {
    await channel.close();
    agent.destroy();
    await fcm.close();
    proxy.closeAllConnections();
    proxy.close();
    target.close();
  });
  const r = await channel.send('device', message);
  t.true(r.ok, JSON.stringify(r));
  t.deepEqual(connects, [`fcm.googleapis.com:443 Basic ${Buffer.from('user:p@ss').toString('base64')}`]);
  t.deepEqual(seen, ['POST /v1/projects/demo-project/messages:send HTTP/1.1']);
  // Without the CA the self-signed certificate is refused: the tunnel does not weaken TLS.
  const strict = new ProxyTunnelAgent(`http://127.0.0.1:${proxyPort}`);
  const other = createFirebaseChannel(cfg({ name: 'strict' }), {
    clock: new FakeClock(),
    credential: fcm.firebase.credential,
    projectId: 'demo-project',
    httpAgent: strict,
  });
  t.teardown(async () => {
    await other.close();
    strict.destroy();
  });
  const refused = await other.send('device', message);
  t.false(refused.ok);
});
