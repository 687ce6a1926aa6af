/**
 * eduMFA's admin API beyond enrollment (JWT in `Authorization`): token assign / unassign / set / resync / revoke /
 * lost, and the read-only /realm/, /resolver/, /user/ and /audit/. Every call is audited as `<METHOD> <route>`.
 * Registered before the /token router, so `POST /token/assign` never falls into `DELETE /token/:serial`.
 */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState, AppContext } from '../app.ts';
import { missingParameter } from '../../core/errors.ts';
import { okEnvelope } from '../envelope.ts';
import { checkLength, identifierParam } from '../params.ts';
import { requireAdmin } from './auth.ts';
import {
  assignToken,
  listRealms,
  listResolvers,
  listUsers,
  lostToken,
  resyncToken,
  revokeTokens,
  setTokenAttributes,
  unassignTokens,
  type TokenSelector,
} from '../auth/admin_api.ts';
import { searchAudit } from '../auth/audit_api.ts';

type Ctx = AppContext & { params: Record<string, string> };

interface Done {
  value: unknown;
  /** Audit `success` (default true); false is audited as REJECT (a resync whose values did not match). */
  success?: boolean;
  serials?: readonly string[];
  info?: Record<string, unknown>;
  /** The user the request resolved to (audit `user`/`realm`). */
  owner?: { name: string; realm: string };
}

/** The serial of `/…/<serial>` or the `serial` parameter (undefined when neither is given). */
function serialOf(ctx: Ctx): string | undefined {
  const s = ctx.params.serial !== undefined ? ctx.params.serial.trim() : identifierParam(ctx.state.params, 'serial');
  return s ? checkLength('serial', s) : undefined;
}

function selector(ctx: Ctx): TokenSelector {
  return { serial: serialOf(ctx), user: identifierParam(ctx.state.params, 'user'), realm: identifierParam(ctx.state.params, 'realm') };
}

export function adminRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();

  /** An audited admin endpoint: the audit row names the route, the admin, the user/realm/serial of the request. */
  const endpoint = (action: string, right: string | undefined, fn: (ctx: Ctx) => Promise<Done>) => async (ctx: Ctx) => {
    const p = ctx.state.params;
    const serial = ctx.params.serial ?? identifierParam(p, 'serial');
    ctx.state.audit = {
      action,
      success: false,
      outcome: 'ERROR',
      username: identifierParam(p, 'user') ?? null,
      realm: identifierParam(p, 'realm') ?? null,
      serials: serial ? [serial] : [],
    };
    await requireAdmin(deps, ctx, right);
    const done = await fn(ctx);
    ctx.body = okEnvelope(deps.clock.now(), done.value);
    const ok = done.success ?? true;
    ctx.state.audit = {
      ...ctx.state.audit,
      success: ok,
      outcome: ok ? 'OK' : 'REJECT',
      ...(done.serials ? { serials: done.serials } : {}),
      ...(done.info ? { info: done.info } : {}),
      ...(done.owner ? { username: done.owner.name, realm: done.owner.realm } : {}),
    };
  };
  const post = (paths: string[], action: string, right: string, fn: (ctx: Ctx) => Promise<Done>) => {
    for (const path of paths) router.post(path, endpoint(action, right, fn));
  };

  post(['/token/assign'], 'POST /token/assign', 'assign', async (ctx) => {
    const p = ctx.state.params;
    const serial = p.requireNonEmpty('serial').trim();
    const user = identifierParam(p, 'user');
    if (user === undefined) throw missingParameter('user');
    const owner = await assignToken(deps, { serial, user, realm: identifierParam(p, 'realm'), pin: p.get('pin') });
    return { value: true, owner };
  });

  post(['/token/unassign', '/token/unassign/:serial'], 'POST /token/unassign', 'unassign', async (ctx) => {
    const r = await unassignTokens(deps, selector(ctx));
    return { value: r.count, serials: r.serials };
  });

  post(['/token/set', '/token/set/:serial'], 'POST /token/set', 'set', async (ctx) => {
    const r = await setTokenAttributes(deps, selector(ctx), ctx.state.params);
    return { value: r.count, info: { keys: r.keys } };
  });

  post(['/token/resync', '/token/resync/:serial'], 'POST /token/resync', 'resync', async (ctx) => {
    const sel = selector(ctx);
    if (!sel.serial) throw missingParameter('serial');
    const otp1 = ctx.state.params.require('otp1');
    const otp2 = ctx.state.params.require('otp2');
    const ok = await resyncToken(deps, sel, otp1, otp2);
    return { value: ok, success: ok };
  });

  post(['/token/revoke', '/token/revoke/:serial'], 'POST /token/revoke', 'revoke', async (ctx) => {
    const r = await revokeTokens(deps, selector(ctx));
    return { value: r.count, serials: r.serials };
  });

  post(['/token/lost', '/token/lost/:serial'], 'POST /token/lost', 'losttoken', async (ctx) => {
    const sel = selector(ctx);
    if (!sel.serial) throw missingParameter('serial');
    const value = await lostToken(deps, sel);
    // The audit names both tokens and never the password.
    return { value, serials: [sel.serial, String(value.serial)], info: { end_date: value.end_date } };
  });

  // eduMFA's paths end with a slash; without it is the same endpoint (Flask redirects there).
  router.get(
    ['/realm/', '/realm'],
    endpoint('GET /realm/', undefined, async () => ({ value: listRealms(deps) })),
  );
  for (const path of ['/resolver/', '/resolver', '/resolver/:name']) {
    router.get(
      path,
      endpoint('GET /resolver/', 'resolverread', async (ctx) => ({ value: listResolvers(deps, ctx.state.params, ctx.params.name) })),
    );
  }
  router.get(
    ['/user/', '/user'],
    endpoint('GET /user/', 'userlist', async (ctx) => {
      const realm = ctx.state.params.get('realm');
      if (realm !== undefined && realm.length > 0) checkLength('realm', realm);
      return { value: await listUsers(deps, ctx.state.params), info: realm ? { realm } : undefined };
    }),
  );
  router.get(
    ['/audit/', '/audit'],
    endpoint('GET /audit/', 'auditlog', async (ctx) => ({ value: await searchAudit(deps, ctx.state.params) })),
  );
  return router;
}
