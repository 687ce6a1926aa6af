/**
 * Firebase Cloud Messaging through firebase-admin: one app per channel, `send()` per device (HTTP/1.1 — the
 * HTTP/2 `sendEach` path would ignore the injected agent), the message mapped from PushMessage (protocol.md §3.4).
 * The channel's `timeout_ms` is enforced with a race on the injected clock, so a hanging FCM never holds a login.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import { cert, deleteApp, initializeApp, type App, type Credential } from 'firebase-admin/app';
import { getMessaging, type Message } from 'firebase-admin/messaging';
import type { ChannelConfig } from '../config.ts';
import type { Clock } from '../clock.ts';
import { ConfigError } from '../errors.ts';
import type { PushChannel, PushMessage, SendFailure, SendResult } from './channel.ts';

export interface FirebaseChannelOptions {
  readonly clock: Clock;
  readonly credential?: Credential;
  readonly httpAgent?: http.Agent;
  readonly projectId?: string;
}

interface ServiceAccount { type: string; project_id: string; client_email: string; private_key: string }

/** Reads and checks a service-account JSON (`"type": "service_account"`). Throws ConfigError naming the channel. */
export function readServiceAccount(cfg: ChannelConfig): ServiceAccount {
  const where = `push.channels (${cfg.name}).service_account_file`;
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(cfg.serviceAccountFile, 'utf8'));
  } catch (err) {
    throw new ConfigError([`${where}: cannot read ${cfg.serviceAccountFile} as JSON (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  const sa = doc as Partial<ServiceAccount> | null;
  if (!sa || sa.type !== 'service_account' || typeof sa.project_id !== 'string' || typeof sa.client_email !== 'string' || typeof sa.private_key !== 'string') {
    throw new ConfigError([`${where}: ${cfg.serviceAccountFile} is not a Firebase service-account file (type service_account with project_id, client_email, private_key)`]);
  }
  return sa as ServiceAccount;
}

/** Maps our message to firebase-admin's. */
export function toFirebaseMessage(target: string, m: PushMessage): Message {
  return {
    token: target,
    data: { ...m.data },
    notification: { title: m.notification.title, body: m.notification.body },
    android: { priority: m.android.priority, ttl: m.android.ttlMs, fcmOptions: { analyticsLabel: m.android.analyticsLabel } },
    apns: {
      headers: { ...m.apns.headers },
      payload: { aps: { alert: { title: m.apns.alert.title, body: m.apns.alert.body }, sound: m.apns.sound, category: m.apns.category } },
      fcmOptions: { analyticsLabel: m.apns.analyticsLabel },
    },
  };
}

/** firebase-admin error code → our failure kind. */
export function classifyFirebaseError(err: unknown): SendFailure {
  const code = typeof err === 'object' && err !== null ? String((err as { code?: unknown }).code ?? '') : '';
  if (code === 'messaging/registration-token-not-registered') return 'unregistered';
  if (['messaging/invalid-argument', 'messaging/invalid-registration-token', 'messaging/mismatched-credential',
    'messaging/authentication-error', 'messaging/invalid-recipient', 'messaging/payload-size-limit-exceeded'].includes(code)) return 'rejected';
  return 'unavailable';
}

export function createFirebaseChannel(cfg: ChannelConfig, opts: FirebaseChannelOptions): PushChannel {
  const agent = opts.httpAgent ?? (cfg.httpsProxy ? new ProxyTunnelAgent(cfg.httpsProxy) : undefined);
  let credential = opts.credential;
  let projectId = opts.projectId;
  if (!credential || !projectId) {
    const sa = readServiceAccount(cfg);
    credential ??= cert({ projectId: sa.project_id, clientEmail: sa.client_email, privateKey: sa.private_key }, agent);
    projectId ??= sa.project_id;
  }
  // App names are process-global in firebase-admin: make each one unique (several Deps may live in one process).
  const app: App = initializeApp({ credential, projectId, ...(agent ? { httpAgent: agent } : {}) },
    `pushgate:${cfg.name}:${crypto.randomUUID()}`);
  const messaging = getMessaging(app);
  const { clock } = opts;
  let closed = false;

  return {
    name: cfg.name,
    send(target, message) {
      const started = clock.now();
      const elapsed = () => clock.now() - started;
      return new Promise<SendResult>((resolve) => {
        let settled = false;
        const finish = (r: SendResult) => { if (!settled) { settled = true; cancel(); resolve(r); } };
        const cancel = clock.schedule(cfg.timeoutMs, () => finish({ ok: false, reason: 'timeout', detail: `no answer within ${cfg.timeoutMs} ms`, ms: elapsed() }));
        if (closed) { finish({ ok: false, reason: 'unavailable', detail: 'channel closed', ms: 0 }); return; }
        messaging.send(toFirebaseMessage(target, message)).then(
          () => finish({ ok: true, ms: elapsed() }),
          (err: unknown) => finish({ ok: false, reason: classifyFirebaseError(err), detail: errorText(err), ms: elapsed() }),
        );
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await deleteApp(app);
    },
  };
}

function errorText(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; message?: unknown };
    return [e.code, e.message].filter((x) => x !== undefined && x !== '').map(String).join(': ');
  }
  return String(err);
}

/**
 * An https.Agent that reaches every host through an HTTP proxy (`CONNECT host:443`), then speaks TLS to the host
 * over the tunnel. Used for `https_proxy` (firebase-admin takes an agent, not a proxy URL).
 */
export class ProxyTunnelAgent extends https.Agent {
  readonly proxy: URL;
  constructor(proxyUrl: string) {
    super({ keepAlive: true });
    this.proxy = new URL(proxyUrl);
  }
  override createConnection(options: Record<string, unknown>, callback?: (err: Error | null, socket?: net.Socket) => void): undefined {
    const host = String(options.host ?? options.hostname ?? '');
    const port = Number(options.port ?? 443);
    const proxyPort = Number(this.proxy.port || (this.proxy.protocol === 'https:' ? 443 : 80));
    const raw = this.proxy.protocol === 'https:'
      ? tls.connect({ host: this.proxy.hostname, port: proxyPort, servername: this.proxy.hostname })
      : net.connect(proxyPort, this.proxy.hostname);
    const done = (err: Error | null, socket?: net.Socket) => { callback?.(err, socket); callback = undefined; };
    const auth = this.proxy.username
      ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(this.proxy.username)}:${decodeURIComponent(this.proxy.password)}`).toString('base64')}\r\n`
      : '';
    raw.once('error', (err) => done(err));
    raw.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n${auth}\r\n`);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) { if (head.length > 16384) { raw.destroy(); done(new Error('proxy answer too long')); } return; }
      raw.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1'))?.[1];
      if (status !== '200') { raw.destroy(); done(new Error(`proxy refused CONNECT ${host}:${port} (${status ?? 'no status'})`)); return; }
      const secure = tls.connect({ socket: raw, servername: String(options.servername ?? host), ALPNProtocols: ['http/1.1'] });
      secure.once('secureConnect', () => done(null, secure));
      secure.once('error', (err) => done(err));
    };
    raw.on('data', onData);
    return undefined;
  }
}
