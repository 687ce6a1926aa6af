/**
 * `GET|POST /ttype/<type>` — the authenticator apps' endpoint for the push types (protocol.md §2, §4, §5).
 * Unauthenticated: every request proves itself with the enrollment credential or a signature.
 * Responses: step 2 → `detail {serial, rollout_state, public_key}`; answer / Firebase-token update → `value`
 * true|false without `detail`; poll → `value` = list of smartphone data without `detail`.
 */
import Router, { type RouterContext } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { ParameterError } from '../../core/errors.ts';
import { okEnvelope } from '../envelope.ts';
import { handleSmartphoneRequest } from '../auth/smartphone.ts';
import { pushVariantOf } from '../../tokens/push/index.ts';

export function smartphoneRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();
  deps.push.startServing();

  const endpoint = async (ctx: RouterContext<AppState>) => {
    const name = String(ctx.params.type ?? '');
    const variant = pushVariantOf(name);
    if (!variant || !deps.registry.get(variant.type)) throw new ParameterError(`Invalid tokentype provided. ttype: ${name}`);
    const { params } = ctx.state;
    ctx.state.audit = {
      action: `${ctx.method} /ttype/${variant.type}`,
      success: false,
      outcome: 'ERROR',
      serials: params.get('serial') ? [params.get('serial')!] : [],
    };
    const result = await handleSmartphoneRequest(deps, variant, ctx.method, params, ctx.state.client);
    const now = deps.clock.now();
    if (result.kind === 'completeEnrollment') {
      ctx.body = okEnvelope(now, true, { ...result.details });
    } else {
      const { detail: _omitted, ...bare } = okEnvelope(now, result.value, null);
      ctx.body = bare;
    }
    const success = result.kind !== 'answerChallenge' || result.value;
    // A decline ("this wasn't me") is its own outcome in the audit trail (`pushgate audit tail` shows it), with the app's reason.
    const declined = result.kind === 'answerChallenge' && result.decline === true;
    ctx.state.audit = {
      ...ctx.state.audit,
      success,
      outcome: !success ? 'FAIL' : declined ? 'DECLINED' : 'OK',
      serials: [result.serial],
      transactionId: result.kind === 'answerChallenge' ? (result.transactionIds[0] ?? null) : null,
      // A request that proved itself (signature, enrollment credential) has its row written at once: under a login
      // flood the phone's poll would otherwise wait a whole turn of the flood's requests for the group commit.
      // Refused requests (a flood of bad signatures, say) keep the group commit (the error path's draft lacks it).
      alone: success,
      info: {
        request: result.kind,
        ...(result.kind === 'poll' ? { challenges: result.value.length } : {}),
        ...(declined ? { decline: true, ...(result.declineReason ? { decline_reason: result.declineReason } : {}) } : {}),
      },
    };
  };
  router.get('/ttype/:type', endpoint);
  router.post('/ttype/:type', endpoint);
  return router;
}
