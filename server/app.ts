/** createApp(deps): the Koa app — request id, error rendering, parameters, client address, audit, routes. */
import crypto from 'node:crypto';
import Koa from 'koa';
import type { Deps } from './deps.ts';
import { MethodError, MfaError, ParameterError } from '../core/errors.ts';
import { REQUEST_ID, type RequestInfo } from '../core/request_scope.ts';
import { checkParamLimits, parseRequestParams, type Params } from './params.ts';
import { matchesClient } from '../policies/match.ts';
import { auditOrRefuse, commonHeaders, errorReply, type AuditDraft } from './respond.ts';
import { requestAudit } from './audit_defaults.ts';
import { validateRouter } from './routes/validate.ts';
import { authRouter } from './routes/auth.ts';
import { tokenRouter } from './routes/token.ts';
import { adminRouter } from './routes/admin.ts';
import { healthRouter, metricsRoute } from './routes/health.ts';
import Router from '@koa/router';
import { smartphoneRouter } from './routes/smartphone.ts';
import { openapiRouter } from './routes/openapi.ts';
import { selfserviceRouter } from './routes/selfservice.ts';
import { apiRouter } from './routes/api.ts';
import { SIGNATURE_HEADERS, verifySignedRequest } from './auth/app_signature.ts';
import type { ApplicationRecord } from './store/apps_repo.ts';
import { CHALLENGES_PATH, createDeviceService, deviceRouter, isRawLongPoll, rawLongPoll } from './routes/device.ts';
import { IncomingMessage, ServerResponse } from 'node:http';

export interface AppState {
  /** This request's id: a sane incoming X-Request-Id, else a new UUID; echoed, logged, in the audit row. */
  requestId: string;
  params: Params;
  /** The client address policies see: the peer, or X-Forwarded-For / `client` when the peer is a trusted proxy. */
  client: string;
  /** The TCP peer's address (the back-off needs to know whether `client` was named by a trusted proxy). */
  peer: string;
  /** Filled by a route that wants an audit row; written after the response is rendered. */
  audit?: AuditDraft;
  admin?: string;
  /** The application that signed this request (X-Pushgate-App, server/auth/app_signature.ts); absent if unsigned. */
  application?: ApplicationRecord;
}
export type AppContext = Koa.ParameterizedContext<AppState>;

function clientAddress(deps: Deps, ctx: Koa.Context, params: Params): string {
  const peer = (ctx.req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const proxies = deps.config.server.trustedProxies;
  if (!proxies.length || !matchesClient(proxies, peer)) return peer;
  const override = params.get('client');
  if (override) return override;
  const fwd = String(ctx.get('x-forwarded-for') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return fwd[0] ?? peer;
}

/**
 * Emits `request.finished` when the response is done or its connection closed — also for a push wait, which answers
 * outside Koa, and for a client that left first (`aborted`). `route` is the router's pattern (`/token/:serial`),
 * never the raw URL, so the metrics label stays bounded; `path` (never the query string: it may hold the pass) is
 * for the log. `within` re-enters the request's log scope for the event.
 */
function observeRequest(deps: Pick<Deps, 'clock' | 'events'>, ctx: Koa.Context, within: (f: () => void) => void = (f) => f()): void {
  observeResponse(deps, ctx.method, ctx.path, ctx.res, () => (ctx as { _matchedRoute?: unknown })._matchedRoute, within);
}

function observeResponse(
  deps: Pick<Deps, 'clock' | 'events'>,
  method: string,
  path: string,
  res: ServerResponse,
  routeOf: () => unknown,
  within: (f: () => void) => void,
): void {
  const started = deps.clock.now();
  res.once('close', () => {
    const route = routeOf();
    within(() =>
      deps.events.emit('request.finished', {
        method,
        path,
        route: typeof route === 'string' ? route : 'unmatched',
        status: res.statusCode,
        ms: deps.clock.now() - started,
        ...(res.writableFinished ? {} : { aborted: true }),
      }),
    );
  });
}

/**
 * The separate metrics listener (metrics.listen): GET /metrics only, errors in the envelope. No parameters, no audit.
 */
export function createMetricsApp(deps: Deps): Koa<AppState> {
  const app = new Koa<AppState>();
  app.on('error', (err: Error & { code?: string }) =>
    deps.events.emit('log', { level: 'debug', msg: 'metrics request stream error', error: err.message, code: err.code }),
  );
  const router = new Router<AppState>();
  router.get('/metrics', metricsRoute(deps));
  app.use(async (ctx, next) => {
    observeRequest(deps, ctx);
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        throw new MfaError(404, 404, 'The requested URL was not found on the server.', { prefixed: false });
    } catch (raw) {
      const { reply } = errorReply(deps, ctx.method, ctx.path, raw);
      ctx.status = reply.status;
      for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
      ctx.body = reply.body;
    }
    ctx.set('Cache-Control', 'no-cache');
  });
  app.use(router.routes());
  app.use(
    router.allowedMethods({ throw: true, methodNotAllowed: () => new MethodError('The method is not allowed for the requested URL.') }),
  );
  return app;
}

export function createApp(deps: Deps): Koa<AppState> {
  const app = new Koa<AppState>();
  app.proxy = false;
  // Errors Koa sees itself are stream errors of a request already answered by the frame below (a client that sent
  // half a body, or left): an event, not Koa's default stack trace on stderr, which any client could trigger at will.
  app.on('error', (err: Error & { code?: string }) =>
    deps.events.emit('log', { level: 'debug', msg: 'request stream error', error: err.message, code: err.code }),
  );

  /** Errors → the eduMFA envelope (and, for /validate/ and audited routes, an ERROR audit row). */
  const renderError = (ctx: AppContext, raw: unknown) => {
    const { reply, error } = errorReply(deps, ctx.method, ctx.path, raw);
    ctx.status = reply.status;
    for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
    ctx.body = reply.body;
    if (ctx.state.audit || ctx.path.startsWith('/validate/') || ctx.path.startsWith('/api/v1/')) {
      const prev = ctx.state.audit;
      // A route may have named the failure already (a wrong admin password is a REJECT); otherwise it is an ERROR.
      const outcome = prev && prev.outcome !== 'OK' && prev.outcome !== 'ACCEPT' ? prev.outcome : 'ERROR';
      ctx.state.audit = { ...(prev ?? requestAudit(ctx)), success: false, outcome, info: { error: error.wireMessage } };
    }
  };

  // The request id first: every line the request logs (deps.scope) and its audit row carry it, and the response
  // echoes it — also an error envelope and a push wait's late answer (the header is already on the raw response).
  app.use((ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const info: RequestInfo = { id: REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID() };
    ctx.state.requestId = info.id;
    ctx.set('X-Request-Id', info.id);
    return deps.scope.run(info, () => {
      deps.events.emit('request.started', {
        method: ctx.method,
        path: ctx.path,
        peer: (ctx.req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      });
      // 'close' of the raw response ends every request: answered by Koa, by a push wait outside Koa, or abandoned.
      observeRequest(deps, ctx, (f) => deps.scope.run(info, f));
      return next();
    });
  });

  // One frame around every request: parameters and client address → routes → 404 envelope → error envelope →
  // headers → audit row. (A push wait leaves it early and answers through server/respond.ts.)
  app.use(async (ctx, next) => {
    try {
      ctx.state.peer = (ctx.req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      ctx.state.client = ctx.state.peer; // known even if the body is broken
      const signed = ctx.get(SIGNATURE_HEADERS.app) !== '' || ctx.path.startsWith('/api/v1/');
      ctx.state.params = await parseRequestParams(ctx.req, new URLSearchParams(ctx.querystring), deps.config.server.bodyLimitBytes, signed);
      checkParamLimits(ctx.state.params); // before the client address: `client` is one of them
      ctx.state.client = clientAddress(deps, ctx, ctx.state.params);
      // A signed request (always on /api/v1/, optional on /validate/): one 401 for any wrong part.
      if (signed)
        ctx.state.application = await verifySignedRequest(deps, {
          method: ctx.method,
          url: ctx.originalUrl,
          header: (name) => ctx.get(name),
          bodySha256: ctx.state.params.bodySha256(),
        });
      // The router decodes path segments (serial, transaction id): a NUL there is refused like one in a parameter.
      if (/%00/.test(ctx.path)) throw new ParameterError('Invalid path.');
      await next();
      // A push wait left the chain (ctx.respond = false): it answers and audits on the raw response itself.
      if (ctx.respond === false) return;
      // Nothing matched: the envelope, not Koa's plain-text 404 (after allowedMethods had its chance to answer 405).
      if (ctx.status === 404 && ctx.body === undefined)
        throw new MfaError(404, 404, 'The requested URL was not found on the server.', { prefixed: false });
      // Every /validate/ request is audited, also one no route audits itself (OPTIONS, answered by allowedMethods).
      if (!ctx.state.audit && ctx.path.startsWith('/validate/')) ctx.state.audit = { ...requestAudit(ctx), outcome: 'OK' };
    } catch (raw) {
      renderError(ctx, raw);
    }
    for (const [k, v] of Object.entries(commonHeaders(deps)))
      if (k !== 'Cache-Control' || ctx.response.get('Cache-Control') !== 'no-store') ctx.set(k, v); // the self-service page's no-store stays
    const audit = ctx.state.audit;
    const refused = audit
      ? await auditOrRefuse(
          deps,
          ctx.method,
          ctx.path,
          { ...audit, requestId: ctx.state.requestId, application: ctx.state.application?.name ?? audit.application ?? null },
          ctx.state.client ?? null,
          ctx.state.admin ?? null,
        )
      : null;
    if (refused) {
      // an ACCEPT without its audit row: fail closed (server/respond.ts failsClosed)
      ctx.body = refused.body;
      ctx.status = refused.status;
    }
  });

  const device = createDeviceService(deps);
  for (const router of [
    validateRouter(deps),
    authRouter(deps),
    adminRouter(deps),
    tokenRouter(deps),
    healthRouter(deps),
    smartphoneRouter(deps),
    deviceRouter(deps, device),
    openapiRouter(deps),
    ...(deps.config.selfservice.enabled ? [selfserviceRouter(deps)] : []),
    apiRouter(deps),
  ]) {
    app.use(router.routes());
    app.use(
      router.allowedMethods({
        throw: true,
        methodNotAllowed: () => new MethodError('The method is not allowed for the requested URL.'),
        notImplemented: () => new MethodError('The method is not implemented.'),
      }),
    );
  }

  // A device's long-poll is served without Koa (server/routes/device.ts isRawLongPoll): the same request id, events
  // and error rendering as the frame above, and nothing of Koa kept while it is held.
  const koaCallback = app.callback.bind(app);
  app.callback = () => {
    const koa = koaCallback();
    return (request: Parameters<typeof koa>[0], response: Parameters<typeof koa>[1]) => {
      // pushgate serves HTTP/1.1 (server/main.ts listen): the raw path takes Node's http request and response only.
      if (!(request instanceof IncomingMessage) || !(response instanceof ServerResponse) || !isRawLongPoll(request))
        return koa(request, response);
      const req = request;
      const res = response;
      const incoming = req.headers['x-request-id'];
      const info: RequestInfo = { id: typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID() };
      res.setHeader('X-Request-Id', info.id);
      const within = (f: () => void) => deps.scope.run(info, f);
      return deps.scope.run(info, () => {
        deps.events.emit('request.started', {
          method: 'GET',
          path: CHALLENGES_PATH,
          peer: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
        });
        observeResponse(deps, 'GET', CHALLENGES_PATH, res, () => CHALLENGES_PATH, within);
        return rawLongPoll(deps, device, req, res);
      });
    };
  };
  return app;
}
