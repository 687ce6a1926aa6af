/** createApp(deps): the Koa app — error rendering, parameters, client address, audit, routes. */
import Koa from 'koa';
import type { Deps } from './deps.ts';
import { MethodError, MfaError } from './errors.ts';
import { parseRequestParams, type Params } from './params.ts';
import { matchesClient } from '../policies/match.ts';
import { commonHeaders, errorReply, writeAudit, type AuditDraft } from './respond.ts';
import { requestAudit } from './audit_defaults.ts';
import { validateRouter } from './routes/validate.ts';
import { authRouter } from './routes/auth.ts';
import { tokenRouter } from './routes/token.ts';
import { healthRouter } from './routes/health.ts';
import { smartphoneRouter } from './routes/smartphone.ts';

export interface AppState {
  params: Params;
  /** The client address policies see: the peer, or X-Forwarded-For / `client` when the peer is a trusted proxy. */
  client: string;
  /** The TCP peer's address (the back-off needs to know whether `client` was named by a trusted proxy). */
  peer: string;
  /** Filled by a route that wants an audit row; written after the response is rendered. */
  audit?: AuditDraft;
  admin?: string;
}
export type AppContext = Koa.ParameterizedContext<AppState>;

function clientAddress(deps: Deps, ctx: Koa.Context, params: Params): string {
  const peer = (ctx.req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const proxies = deps.config.server.trustedProxies;
  if (!proxies.length || !matchesClient(proxies, peer)) return peer;
  const override = params.get('client');
  if (override) return override;
  const fwd = String(ctx.get('x-forwarded-for') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return fwd[0] ?? peer;
}

export function createApp(deps: Deps): Koa<AppState> {
  const app = new Koa<AppState>();
  app.proxy = false;

  /** Errors → the eduMFA envelope (and, for /validate/ and audited routes, an ERROR audit row). */
  const renderError = (ctx: AppContext, raw: unknown) => {
    const { reply, error } = errorReply(deps, ctx.method, ctx.path, raw);
    ctx.status = reply.status;
    for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
    ctx.body = reply.body;
    if (ctx.state.audit || ctx.path.startsWith('/validate/')) {
      const prev = ctx.state.audit;
      // A route may have named the failure already (a wrong admin password is a REJECT); otherwise it is an ERROR.
      const outcome = prev && prev.outcome !== 'OK' && prev.outcome !== 'ACCEPT' ? prev.outcome : 'ERROR';
      ctx.state.audit = { ...(prev ?? requestAudit(ctx)), success: false, outcome, info: { error: error.wireMessage } };
    }
  };

  // One frame around every request: parameters and client address → routes → 404 envelope → error envelope →
  // headers → audit row. (A push wait leaves it early and answers through server/respond.ts.)
  app.use(async (ctx, next) => {
    try {
      ctx.state.peer = (ctx.req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      ctx.state.client = ctx.state.peer; // known even if the body is broken
      ctx.state.params = await parseRequestParams(ctx.req, new URLSearchParams(ctx.querystring), deps.config.server.bodyLimitBytes);
      ctx.state.client = clientAddress(deps, ctx, ctx.state.params);
      await next();
      // A push wait left the chain (ctx.respond = false): it answers and audits on the raw response itself.
      if (ctx.respond === false) return;
      // Nothing matched: the envelope, not Koa's plain-text 404 (after allowedMethods had its chance to answer 405).
      if (ctx.status === 404 && ctx.body === undefined) throw new MfaError(404, 404, 'The requested URL was not found on the server.', { prefixed: false });
    } catch (raw) {
      renderError(ctx, raw);
    }
    for (const [k, v] of Object.entries(commonHeaders(deps))) ctx.set(k, v);
    const audit = ctx.state.audit;
    if (audit) await writeAudit(deps, audit, ctx.state.client ?? null, ctx.state.admin ?? null);
  });

  for (const router of [validateRouter(deps), authRouter(deps), tokenRouter(deps), healthRouter(deps), smartphoneRouter(deps)]) {
    app.use(router.routes());
    app.use(router.allowedMethods({
      throw: true,
      methodNotAllowed: () => new MethodError('The method is not allowed for the requested URL.'),
      notImplemented: () => new MethodError('The method is not implemented.'),
    }));
  }
  return app;
}
