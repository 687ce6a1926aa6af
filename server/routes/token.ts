/** /token/* — admin token management (JWT in `Authorization`), eduMFA names on the wire. */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState, AppContext } from '../app.ts';
import { ParameterError } from '../../core/errors.ts';
import { okEnvelope } from '../envelope.ts';
import { checkLength, identifierParam } from '../params.ts';
import { adminAllowed, requireAdmin } from './auth.ts';
import { deleteToken, enrollToken, requireToken, resetFailCounter, setTokenActive, setTokenPin } from '../auth/tokens_admin.ts';
import { tokenSubject, unblockPush } from '../auth/push_fatigue.ts';
import { requireNotRevoked, searchTokens } from '../auth/admin_api.ts';

function serialFrom(ctx: AppContext & { params: Record<string, string> }): string {
  const serial = ctx.params.serial !== undefined ? ctx.params.serial.trim() : identifierParam(ctx.state.params, 'serial');
  if (!serial) throw new ParameterError("Missing parameter: 'serial'");
  return checkLength('serial', serial);
}

export function tokenRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/token' });

  router.post('/init', async (ctx) => {
    const { params } = ctx.state;
    const user = identifierParam(params, 'user');
    const realm = identifierParam(params, 'realm');
    ctx.state.audit = { action: 'POST /token/init', success: false, outcome: 'ERROR', username: user ?? null, realm: realm ?? null };
    await requireAdmin(deps, ctx, 'enroll');
    const type = (params.get('type') || 'hotp').toLowerCase();
    const result = await enrollToken(deps, {
      type,
      serial: identifierParam(params, 'serial'),
      user,
      realm,
      pin: params.get('pin'),
      description: params.get('description'),
      client: ctx.state.client,
      params: params.all(),
    });
    ctx.body = okEnvelope(deps.clock.now(), true, {
      serial: result.token.serial,
      rollout_state: result.token.rolloutState,
      ...result.details,
    });
    ctx.state.audit = {
      ...ctx.state.audit,
      success: true,
      outcome: 'OK',
      serials: [result.token.serial],
      policies: result.policies,
      info: { type },
    };
  });

  // eduMFA's filters, sort and paging (server/auth/admin_api.ts); admin policies without `tokenlist` → empty list.
  router.get('/', async (ctx) => {
    ctx.state.audit = {
      action: 'GET /token/',
      success: false,
      outcome: 'ERROR',
      username: identifierParam(ctx.state.params, 'user') ?? null,
    };
    await requireAdmin(deps, ctx);
    ctx.body = okEnvelope(deps.clock.now(), await searchTokens(deps, ctx.state.params, adminAllowed(deps, ctx, 'tokenlist')));
    ctx.state.audit = { ...ctx.state.audit, success: true, outcome: 'OK' };
  });

  /** enable, disable, reset and setpin refuse a revoked token (400 / 1007); the store refuses it too (a racing revoke). */
  const notRevoked = async (serial: string) => {
    requireNotRevoked(await requireToken(deps, serial));
  };

  const audited =
    (action: string, fn: (ctx: AppContext & { params: Record<string, string> }, serial: string) => Promise<void>) =>
    async (ctx: AppContext & { params: Record<string, string> }) => {
      ctx.state.audit = { action, success: false, outcome: 'ERROR' };
      await requireAdmin(deps, ctx, action.split(' ')[1]);
      const serial = serialFrom(ctx);
      ctx.state.audit.serials = [serial];
      await fn(ctx, serial);
      ctx.body = okEnvelope(deps.clock.now(), 1);
      ctx.state.audit = { ...ctx.state.audit, success: true, outcome: 'OK' };
    };

  router.delete(
    '/:serial',
    audited('token delete', (_ctx, serial) => deleteToken(deps, serial)),
  );
  for (const path of ['/enable', '/enable/:serial'])
    router.post(
      path,
      audited('token enable', async (_ctx, serial) => {
        await notRevoked(serial);
        await setTokenActive(deps, serial, true);
      }),
    );
  for (const path of ['/disable', '/disable/:serial'])
    router.post(
      path,
      audited('token disable', async (_ctx, serial) => {
        await notRevoked(serial);
        await setTokenActive(deps, serial, false);
      }),
    );
  for (const path of ['/reset', '/reset/:serial'])
    router.post(
      path,
      audited('token reset', async (_ctx, serial) => {
        await notRevoked(serial);
        await resetFailCounter(deps, serial);
      }),
    );
  // pushgate's own: the push back-off and decline lock of the token's owner are cleared, their open push logins freed
  // (server/auth/push_fatigue.ts; the CLI's `token unblock`). Under the admin right `reset`: it resets a lock as
  // /token/reset resets the fail counter.
  for (const path of ['/unblock', '/unblock/:serial'])
    router.post(path, async (ctx) => {
      ctx.state.audit = { action: 'token unblock', success: false, outcome: 'ERROR' };
      await requireAdmin(deps, ctx, 'reset');
      const serial = serialFrom(ctx);
      ctx.state.audit.serials = [serial];
      const done = await unblockPush(deps, tokenSubject(await requireToken(deps, serial)));
      ctx.body = okEnvelope(deps.clock.now(), { backoff: done.backoff, open_logins: done.logins });
      ctx.state.audit = { ...ctx.state.audit, success: true, outcome: 'OK' };
    });
  for (const path of ['/setpin', '/setpin/:serial']) {
    router.post(
      path,
      audited('token setpin', async (ctx, serial) => {
        await notRevoked(serial);
        const pin = ctx.state.params.get('otppin') ?? ctx.state.params.get('pin');
        if (pin === undefined) throw new ParameterError("Missing parameter: 'otppin'");
        await setTokenPin(deps, serial, pin);
      }),
    );
  }
  return router;
}
