/** Signed requests of an application (server/auth/app_signature.ts) for tests: the wire contract, built by hand. */
import crypto from 'node:crypto';
import type { TestWorld } from './test_app.ts';
import { addApp } from '../../server/auth/apps_admin.ts';

export interface TestApp {
  id: string;
  name: string;
  secret: string;
}

export async function makeApp(
  w: TestWorld,
  name = 'crm',
  opts: { realm?: string; webhookUrl?: string; webhookEvents?: string[] } = {},
): Promise<TestApp> {
  const { app, secret } = await addApp(w.deps, {
    name,
    realm: opts.realm ?? null,
    webhookUrl: opts.webhookUrl ?? null,
    webhookEvents: opts.webhookEvents ?? null,
  });
  return { id: app.id, name, secret };
}

export interface SignOptions {
  /** Unix seconds (default: the world's clock). */
  timestamp?: number;
  nonce?: string;
  /** Sign with this secret instead. */
  secret?: string;
  /** Send this body instead of the signed one. */
  sendBody?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface SignedReply {
  status: number;
  headers: Headers;
  body: any;
  text: string;
  nonce: string;
}

/** One signed request; `body` is sent as JSON (a string is sent as is, as a form). */
export async function signed(
  w: TestWorld,
  app: TestApp,
  method: string,
  pathWithQuery: string,
  body?: Record<string, unknown> | string,
  o: SignOptions = {},
): Promise<SignedReply> {
  const raw = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const timestamp = String(o.timestamp ?? Math.floor(w.clock.now() / 1000));
  const nonce = o.nonce ?? crypto.randomBytes(12).toString('hex');
  const hash = crypto.createHash('sha256').update(raw).digest('hex');
  const signature = crypto
    .createHmac('sha256', o.secret ?? app.secret)
    .update(`${method}\n${pathWithQuery}\n${timestamp}\n${nonce}\n${hash}`)
    .digest('hex');
  const headers: Record<string, string> = {
    'X-Pushgate-App': app.id,
    'X-Pushgate-Timestamp': timestamp,
    'X-Pushgate-Nonce': nonce,
    'X-Pushgate-Signature': signature,
    ...(o.headers ?? {}),
  };
  if (method !== 'GET')
    headers['Content-Type'] = o.contentType ?? (typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json');
  const res = await fetch(`${w.url}${pathWithQuery}`, { method, headers, ...(method !== 'GET' ? { body: o.sendBody ?? raw } : {}) });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: res.status, headers: res.headers, body: parsed, text, nonce };
}
