/**
 * Firebase Cloud Messaging through firebase-admin: one app per channel, `send()` per device (HTTP/1.1 — the
 * HTTP/2 `sendEach` path would ignore the injected agent), the message mapped from PushMessage (protocol.md §3.4).
 * The channel's `timeout_ms` is enforced with a race on the injected clock, so a hanging FCM never holds a login.
 */
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import crypto from 'node:crypto';
import type { App, Credential } from 'firebase-admin/app';
import type { Message, Messaging } from 'firebase-admin/messaging';
import type { ChannelConfig } from '../config.ts';
import type { Clock } from '../../core/clock.ts';
import { ConfigError } from '../../core/errors.ts';
import type { PushChannel, PushMessage, SendFailure, SendResult } from '../../core/push_channel.ts';

export interface FirebaseChannelOptions {
  readonly clock: Clock;
  readonly credential?: Credential;
  readonly httpAgent?: http.Agent;
  readonly projectId?: string;
}

interface ServiceAccount {
  type: string;
  project_id: string;
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
}

/** Reads and checks a service-account JSON (`"type": "service_account"`). Throws ConfigError naming the channel. */
export function readServiceAccount(cfg: ChannelConfig): ServiceAccount {
  const where = `push.channels (${cfg.name}).service_account_file`;
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(cfg.serviceAccountFile, 'utf8'));
  } catch (err) {
    throw new ConfigError([
      `${where}: cannot read ${cfg.serviceAccountFile} as JSON (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    ]);
  }
  const sa = doc as Partial<ServiceAccount> | null;
  if (
    sa?.type !== 'service_account'
    || typeof sa.project_id !== 'string'
    || typeof sa.client_email !== 'string'
    || typeof sa.private_key !== 'string'
  ) {
    throw new ConfigError([
      `${where}: ${cfg.serviceAccountFile} is not a Firebase service-account file (type service_account with project_id, client_email, private_key)`,
    ]);
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
  if (
    [
      'messaging/invalid-argument',
      'messaging/invalid-registration-token',
      'messaging/mismatched-credential',
      'messaging/authentication-error',
      'messaging/invalid-recipient',
      'messaging/payload-size-limit-exceeded',
    ].includes(code)
  )
    return 'rejected';
  return 'unavailable';
}

export function createFirebaseChannel(cfg: ChannelConfig, opts: FirebaseChannelOptions): PushChannel {
  const agent = opts.httpAgent ?? (cfg.httpsProxy ? new ProxyTunnelAgent(cfg.httpsProxy) : undefined);
  let credential = opts.credential;
  let projectId = opts.projectId;
  if (!credential || !projectId) {
    const sa = readServiceAccount(cfg);
    credential ??= serviceAccountCredential(sa, opts.clock, agent);
    projectId ??= sa.project_id;
  }
  // firebase-admin is loaded only by a server that has a channel (a poll-only server never pays its memory).
  // App names are process-global in firebase-admin: make each one unique (several Deps may live in one process).
  const appName = `pushgate:${cfg.name}:${crypto.randomUUID()}`;
  const ready: Promise<{ app: App; messaging: Messaging; deleteApp: (a: App) => Promise<void> }> = (async () => {
    const [appMod, messagingMod] = await Promise.all([import('firebase-admin/app'), import('firebase-admin/messaging')]);
    const app = appMod.initializeApp({ credential, projectId, ...(agent ? { httpAgent: agent } : {}) }, appName);
    return { app, messaging: messagingMod.getMessaging(app), deleteApp: appMod.deleteApp };
  })();
  ready.catch(() => {}); // reported per send
  const { clock } = opts;
  let closed = false;

  return {
    name: cfg.name,
    send(target, message) {
      const started = clock.now();
      const elapsed = () => clock.now() - started;
      return new Promise<SendResult>((resolve) => {
        let settled = false;
        const finish = (r: SendResult) => {
          if (!settled) {
            settled = true;
            cancel();
            resolve(r);
          }
        };
        const cancel = clock.schedule(cfg.timeoutMs, () =>
          finish({ ok: false, reason: 'timeout', detail: `no answer within ${cfg.timeoutMs} ms`, ms: elapsed() }),
        );
        if (closed) {
          finish({ ok: false, reason: 'unavailable', detail: 'channel closed', ms: 0 });
          return;
        }
        ready
          .then(({ messaging }) => messaging.send(toFirebaseMessage(target, message)))
          .then(
            () => finish({ ok: true, ms: elapsed() }),
            (err: unknown) => finish({ ok: false, reason: classifyFirebaseError(err), detail: errorText(err), ms: elapsed() }),
          );
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      const r = await ready.catch(() => null);
      if (r) await r.deleteApp(r.app);
    },
  };
}

const OAUTH_SCOPES = 'https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/firebase.messaging';
const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';

/**
 * OAuth2 for a service account (RFC 7523 JWT bearer grant), sent through the channel's agent — so `https_proxy`
 * covers the token exchange too (google-auth-library's fetch ignores agents). firebase-admin caches the token.
 */
export function serviceAccountCredential(sa: ServiceAccount, clock: Clock, agent?: http.Agent): Credential {
  const b64url = (x: string | Buffer) => Buffer.from(x).toString('base64url');
  return {
    async getAccessToken() {
      const tokenUri = sa.token_uri || DEFAULT_TOKEN_URI;
      const iat = Math.floor(clock.now() / 1000);
      const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', ...(sa.private_key_id ? { kid: sa.private_key_id } : {}) }));
      const claims = b64url(JSON.stringify({ iss: sa.client_email, scope: OAUTH_SCOPES, aud: tokenUri, iat, exp: iat + 3600 }));
      const signature = b64url(crypto.sign('sha256', Buffer.from(`${header}.${claims}`), sa.private_key));
      const body = new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: `${header}.${claims}.${signature}`,
      }).toString();
      const reply = await postForm(tokenUri, body, agent);
      let doc: { access_token?: unknown; expires_in?: unknown };
      try {
        doc = JSON.parse(reply.text) as typeof doc;
      } catch {
        doc = {};
      }
      if (reply.status !== 200 || typeof doc.access_token !== 'string') {
        throw new Error(`OAuth token request to ${tokenUri} failed with HTTP ${reply.status}`);
      }
      return { access_token: doc.access_token, expires_in: typeof doc.expires_in === 'number' ? doc.expires_in : 3600 };
    },
  };
}

function postForm(url: string, body: string, agent?: http.Agent): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = https.request(
      {
        hostname: u.hostname,
        port: u.port || 443,
        path: u.pathname + u.search,
        method: 'POST',
        agent,
        timeout: 10_000,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('OAuth token request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function errorText(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; message?: unknown };
    return [e.code, e.message]
      .filter((x) => x !== undefined && x !== '')
      .map(String)
      .join(': ');
  }
  return String(err);
}

/**
 * An https.Agent that reaches every host through an HTTP proxy (`CONNECT host:443`), then speaks TLS to the host
 * over the tunnel. Used for `https_proxy` (firebase-admin takes an agent, not a proxy URL).
 */
export class ProxyTunnelAgent extends https.Agent {
  readonly proxy: URL;
  private readonly tlsOptions: tls.ConnectionOptions;
  /** `tlsOptions` apply to the TLS session with the target host (e.g. `ca` for a private CA). */
  constructor(proxyUrl: string, tlsOptions: tls.ConnectionOptions = {}) {
    super({ keepAlive: true });
    this.proxy = new URL(proxyUrl);
    this.tlsOptions = tlsOptions;
  }
  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    const host = String(options.host ?? options.hostname ?? '');
    const port = Number(options.port ?? 443);
    const proxyPort = Number(this.proxy.port || (this.proxy.protocol === 'https:' ? 443 : 80));
    const raw =
      this.proxy.protocol === 'https:'
        ? tls.connect({ host: this.proxy.hostname, port: proxyPort, servername: this.proxy.hostname })
        : net.connect(proxyPort, this.proxy.hostname);
    const done = (err: Error | null, socket?: Duplex) => {
      callback?.(err, socket as Duplex);
      callback = undefined;
    };
    const auth = this.proxy.username
      ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(this.proxy.username)}:${decodeURIComponent(this.proxy.password)}`).toString('base64')}\r\n`
      : '';
    raw.once('error', (err) => done(err));
    raw.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n${auth}\r\n`);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) {
          raw.destroy();
          done(new Error('proxy answer too long'));
        }
        return;
      }
      raw.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1'))?.[1];
      if (status !== '200') {
        raw.destroy();
        done(new Error(`proxy refused CONNECT ${host}:${port} (${status ?? 'no status'})`));
        return;
      }
      const secure = tls.connect({
        ...this.tlsOptions,
        socket: raw,
        servername: String(options.servername ?? host),
        ALPNProtocols: ['http/1.1'],
      });
      secure.once('secureConnect', () => done(null, secure));
      secure.once('error', (err) => done(err));
    };
    raw.on('data', onData);
    return undefined;
  }
}
