/**
 * The open device protocol v2 (docs/device-protocol.md):
 *   GET  /.well-known/pushgate              discovery (no authentication; `nonce` → signed by the server key)
 *   GET  /pwless/info                       the same in PasswordLessAuth's information-flow shape
 *   POST /device/v2/enroll                  completes an edupush token with a v2 device key
 *   GET  /device/v2/challenges              long-poll of the pending requests (ETag / If-None-Match)
 *   GET  /device/v2/events                  the same as a Server-Sent Events stream (Last-Event-ID)
 *   POST /device/v2/challenges/{id}/answer  approve or decline, signed with the device key
 * The long-poll and the stream are authenticated per request (`Authorization: PushGate-Device …`), counted against
 * `device.max_connections` / `device.max_per_device`, and woken through the answer bus (any node).
 */
import { PassThrough } from 'node:stream';
import Router, { type RouterContext } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { ParameterError, missingParameter } from '../../core/errors.ts';
import { okEnvelope } from '../envelope.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientGoneSignal, errorReply, leaveKoa, sendReply, type Reply } from '../respond.ts';
import { createDevicePolls, type DevicePolls } from './device_polls.ts';
import { createDeviceKeyCache, type DeviceKeyCache } from '../../tokens/push/device.ts';
import {
  answerDeviceRequest,
  authenticateDevice,
  createDeviceConnections,
  type DeviceConnections,
  type DeviceIdentity,
  deviceRequests,
  discovery,
  enrollDevice,
  parseDeviceAuthorization,
  pwlessInfo,
  watchDevice,
} from '../auth/device.ts';

type Ctx = RouterContext<AppState>;

export const CHALLENGES_PATH = '/device/v2/challenges';

/** What the device connections of one app share: their slots, the parsed device keys, the held long-polls. */
export interface DeviceService {
  readonly connections: DeviceConnections;
  readonly keys: DeviceKeyCache;
  readonly polls: DevicePolls;
}

export function createDeviceService(deps: Deps): DeviceService {
  // One parsed key per device key text (at least one per connection the process may hold).
  const keys = createDeviceKeyCache(Math.max(1000, deps.config.device.maxConnections));
  return { connections: createDeviceConnections(deps.config.device), keys, polls: createDevicePolls(deps, keys) };
}

/** A long-poll's outcome: a reply now, or the poll to hold (its connection slot taken: `release` when it ends). */
type LongPollStep =
  | { readonly reply: Reply }
  | { readonly hold: { device: DeviceIdentity; etag: string; deadline: number; release: () => void } };

/** `GET /device/v2/challenges` up to the wait: parameters, authentication, connection slot, the list or its ETag. */
async function longPoll(
  deps: Deps,
  s: DeviceService,
  q: { method: string; path: string; wait: string | undefined; authorization: string | undefined; ifNoneMatch: string | null },
): Promise<LongPollStep> {
  const maxWait = deps.config.device.pollSeconds;
  if (q.wait !== undefined && !/^\d{1,5}$/.test(q.wait)) throw new ParameterError('wait must be a number of seconds');
  const waitMs = Math.min(q.wait === undefined ? maxWait : Number(q.wait), maxWait) * 1000;
  const device = await authenticateDevice(deps, s.keys, parseDeviceAuthorization(q.authorization), q.method, q.path);
  const release = s.connections.acquire(device.serial);
  let r: Awaited<ReturnType<DevicePolls['current']>>;
  try {
    r = await s.polls.current(device, q.ifNoneMatch);
  } catch (err) {
    release();
    throw err;
  }
  if (!('unchanged' in r) && r.etag !== q.ifNoneMatch) {
    release();
    return { reply: { status: 200, body: okEnvelope(deps.clock.now(), r.requests, { etag: r.etag }), headers: { ETag: r.etag } } };
  }
  if (waitMs === 0) {
    release();
    return { reply: { status: 304, body: null, headers: { ETag: r.etag } } };
  }
  return { hold: { device, etag: r.etag, deadline: deps.clock.now() + waitMs, release } };
}

/**
 * The long-poll without Koa: `GET /device/v2/challenges` whose query is at most `wait` and that has no body — what
 * every device sends — is answered (or held) on the raw request by the app's raw frame (server/app.ts), so a held
 * long-poll keeps no Koa context, middleware closures or parsed parameters. Anything else takes the Koa route below,
 * which behaves the same. Errors are rendered by errorReply, as in the Koa frame.
 */
export function isRawLongPoll(req: IncomingMessage): boolean {
  if (req.method !== 'GET' || req.headers['content-length'] || req.headers['transfer-encoding']) return false;
  const url = req.url ?? '';
  if (url === CHALLENGES_PATH) return true;
  return url.startsWith(`${CHALLENGES_PATH}?wait=`) && /^\d{1,5}$/.test(url.slice(CHALLENGES_PATH.length + 6));
}

export async function rawLongPoll(deps: Deps, s: DeviceService, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = req.url ?? '';
    const step = await longPoll(deps, s, {
      method: 'GET',
      path: CHALLENGES_PATH,
      wait: url.length > CHALLENGES_PATH.length ? url.slice(CHALLENGES_PATH.length + 6) : undefined,
      authorization: req.headers.authorization,
      ifNoneMatch: req.headers['if-none-match'] || null,
    });
    if ('hold' in step) s.polls.hold(res, step.hold.device, step.hold.etag, step.hold.deadline, step.hold.release);
    else sendReply(deps, res, step.reply);
  } catch (err) {
    sendReply(deps, res, errorReply(deps, 'GET', CHALLENGES_PATH, err).reply);
  }
}

export function deviceRouter(deps: Deps, service: DeviceService): Router<AppState> {
  const router = new Router<AppState>();
  const { connections, keys, polls } = service;
  deps.push.startServing();

  const need = (ctx: Ctx, name: string): string => {
    const v = ctx.state.params.get(name);
    if (v === undefined) throw missingParameter(name);
    return v;
  };
  const discoveryQuery = (ctx: Ctx) => ({
    realm: ctx.state.params.get('realm') || undefined,
    nonce: ctx.state.params.get('nonce') || undefined,
    client: ctx.state.client,
  });

  router.get('/.well-known/pushgate', (ctx) => {
    ctx.body = okEnvelope(deps.clock.now(), discovery(deps, discoveryQuery(ctx)));
  });
  router.get('/pwless/info', (ctx) => {
    ctx.body = pwlessInfo(deps, discoveryQuery(ctx));
  });

  router.post('/device/v2/enroll', async (ctx) => {
    const serial = need(ctx, 'serial');
    ctx.state.audit = { action: 'POST /device/v2/enroll', success: false, outcome: 'ERROR', serials: [serial] };
    const p = ctx.state.params;
    const detail = await enrollDevice(deps, {
      serial,
      enrollmentCredential: need(ctx, 'enrollment_credential'),
      pubkey: need(ctx, 'pubkey'),
      authMode: need(ctx, 'auth_mode'),
      fbToken: p.get('fbtoken') ?? '',
      encPubkey: p.get('enc_pubkey') ?? '',
      signature: need(ctx, 'signature'),
    });
    ctx.body = okEnvelope(deps.clock.now(), true, detail);
    ctx.state.audit = {
      ...ctx.state.audit,
      success: true,
      outcome: 'OK',
      info: { key_type: detail.key_type, auth_mode: detail.auth_mode },
    };
  });

  /** Authenticates the request and takes a connection slot; `release` must run when the connection ends. */
  const openConnection = async (ctx: Ctx) => {
    const device = await authenticateDevice(deps, keys, parseDeviceAuthorization(ctx.get('authorization')), ctx.method, ctx.path);
    return { device, release: connections.acquire(device.serial) };
  };

  router.get(CHALLENGES_PATH, async (ctx) => {
    const step = await longPoll(deps, service, {
      method: ctx.method,
      path: ctx.path,
      wait: ctx.state.params.get('wait'),
      authorization: ctx.get('authorization') || undefined,
      ifNoneMatch: ctx.get('if-none-match') || null,
    });
    if ('hold' in step) {
      // Unchanged: held outside Koa (server/routes/device_polls.ts) and answered on the raw response.
      polls.hold(leaveKoa(ctx), step.hold.device, step.hold.etag, step.hold.deadline, step.hold.release);
      return;
    }
    ctx.status = step.reply.status;
    for (const [k, v] of Object.entries(step.reply.headers ?? {})) ctx.set(k, v);
    if (step.reply.body) ctx.body = step.reply.body;
  });

  router.get('/device/v2/events', async (ctx) => {
    const { device, release } = await openConnection(ctx);
    const gone = clientGoneSignal(ctx.res);
    const d = deps.config.device;
    const stream = new PassThrough();
    ctx.status = 200;
    ctx.type = 'text/event-stream'; // Cache-Control: no-cache comes from the app frame, as on every response
    ctx.set('X-Accel-Buffering', 'no'); // nginx: do not buffer the stream
    ctx.body = stream;
    const watch = watchDevice(deps, device.serial, gone);
    const write = (text: string) => {
      if (!stream.writableEnded) stream.write(text);
    };
    void (async () => {
      try {
        let known = ctx.get('last-event-id') || null;
        const end = deps.clock.now() + d.sseMaxSeconds * 1000;
        let ping = deps.clock.now() + d.sseKeepaliveSeconds * 1000;
        write('retry: 2000\n\n');
        for (;;) {
          const r = await deviceRequests(deps, keys, device);
          if (r.etag !== known) {
            known = r.etag;
            write(`id: ${r.etag}\nevent: requests\ndata: ${JSON.stringify({ requests: r.requests })}\n\n`);
          }
          const now = deps.clock.now();
          if (now >= end) break;
          const until = Math.min(end - now, Math.max(0, ping - now), r.nextExpiry === null ? Infinity : r.nextExpiry - now + 1);
          if ((await watch.next(until)) === 'closed') break;
          if (deps.clock.now() >= ping) {
            write(': keep-alive\n\n');
            ping = deps.clock.now() + d.sseKeepaliveSeconds * 1000;
          }
        }
      } catch (err) {
        deps.events.emit('log', { level: 'warn', msg: 'device event stream failed', error: String(err) });
      } finally {
        watch.close();
        release();
        stream.end();
      }
    })();
  });

  router.post('/device/v2/challenges/:id/answer', async (ctx) => {
    const serial = need(ctx, 'serial');
    ctx.state.audit = { action: 'POST /device/v2/answer', success: false, outcome: 'ERROR', serials: [serial] };
    const reason = ctx.state.params.get('reason');
    const result = await answerDeviceRequest(deps, {
      serial,
      id: String(ctx.params.id ?? ''),
      decision: need(ctx, 'decision'),
      ...(reason ? { reason } : {}),
      signature: need(ctx, 'signature'),
    });
    const { detail: _omitted, ...bare } = okEnvelope(deps.clock.now(), true, null);
    ctx.body = bare;
    ctx.state.audit = {
      ...ctx.state.audit,
      success: true,
      outcome: result.decline ? 'DECLINED' : 'OK',
      transactionId: result.transactionIds[0] ?? null,
      info: {
        request: 'device_answer',
        ...(result.decline ? { decline: true, ...(result.declineReason ? { decline_reason: result.declineReason } : {}) } : {}),
      },
    };
  });

  return router;
}
