/**
 * /validate/check, /validate/triggerchallenge, /validate/polltransaction — eduMFA's wire format (protocol.md §6).
 * Each endpoint: read params → authorize → run the algorithm → render the envelope; the audit row is set on
 * ctx.state and written by the app.
 */
import Router, { type RouterContext } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { MfaError, ParameterError, missingParameter } from '../errors.ts';
import { requestAudit } from '../audit_defaults.ts';
import type { Params } from '../params.ts';
import { checkAuth, type CheckRequest } from '../auth/check.ts';
import { triggerChallenges } from '../auth/trigger.ts';
import { transactionStatus } from '../auth/challenges.ts';
import { challengeDetail, okEnvelope, outcomeEnvelope } from '../envelope.ts';
import { requireAdmin } from './auth.ts';
import { requestPolicies } from '../auth/context.ts';
import { AUTHENTICATION, type Outcome } from '../auth/outcome.ts';

/** user/serial/realm/type parameters shared by check and triggerchallenge, with eduMFA's input checks. */
export function readSubject(params: Params): { user?: string; realm?: string; serial?: string; type?: string } {
  const user = params.get('user') || undefined;
  const serial = params.get('serial') || undefined;
  if (!user && !serial) throw new ParameterError('You need to specify a serial or a user.');
  if (serial !== undefined && serial.includes('*')) throw new ParameterError('Invalid serial number.');
  if (user !== undefined && user.includes('%')) throw new ParameterError('Invalid user.');
  return { user, serial, realm: params.get('realm') || undefined, type: params.get('type') || undefined };
}

export function validateRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/validate' });

  /** Runs /validate/check's algorithm and fills the audit row; the caller renders the outcome. */
  const runCheck = (ctx: RouterContext<AppState>, action: string): Promise<{ outcome: Outcome; who: ReturnType<typeof outcomeWho> }> => {
    const { params } = ctx.state;
    // No audit object while a push wait runs: it is built when the outcome is known (errors: the app builds it).
    const subject = readSubject(params);
    const pass = params.require('pass');
    const transactionId = params.get('transaction_id') || undefined;
    if (transactionId !== undefined && !/^[0-9A-Za-z_-]{1,64}$/.test(transactionId)) throw new ParameterError('Invalid transaction_id.');
    // A client that disconnects frees a push wait at once ('close' before the response ended = gone).
    const onGone = (fn: () => void) => {
      if (ctx.res.closed && !ctx.res.writableEnded) { fn(); return () => {}; } // already gone before the wait began
      const onClose = () => { if (!ctx.res.writableEnded) fn(); };
      ctx.res.once('close', onClose);
      return () => { ctx.res.off('close', onClose); };
    };
    const exception = ['1', 'true', 'True', 'TRUE'].includes(params.get('exception') ?? '');
    const req: CheckRequest = { ...subject, pass, transactionId, client: ctx.state.client, onGone, exception };
    // A promise chain, not an async frame: a waiting login keeps only what the continuation below captures.
    return checkAuth(deps, req).then((outcome) => {
      const who = outcomeWho(deps, req);
      const base = requestAudit(ctx);
      ctx.state.audit = {
        ...base, action: `${ctx.method} ${action}`, username: who.user?.name ?? base.username, realm: who.user?.realm ?? base.realm,
        success: outcome.kind === 'accept', outcome: AUTHENTICATION[outcome.kind], serials: outcome.serials,
        policies: outcome.policies, transactionId: outcome.kind === 'challenge' ? outcome.challenges[0]?.transactionId ?? null : transactionId ?? null,
        info: { message: outcome.kind === 'challenge' ? 'challenge triggered' : outcome.message },
      };
      deps.events.emit('check.result', { user: subject.user, realm: subject.realm, serials: [...outcome.serials], outcome: AUTHENTICATION[outcome.kind], message: outcome.kind === 'challenge' ? 'challenge' : outcome.message, policies: [...outcome.policies], transactionId });
      return { outcome, who };
    });
  };

  const check = (ctx: RouterContext<AppState>) => runCheck(ctx, '/validate/check').then(({ outcome, who }) => {
    const authz = requestPolicies(deps, who);
    ctx.body = outcomeEnvelope(deps.clock.now(), outcome, {
      noDetailOnSuccess: authz.action<boolean>('no_detail_on_success'),
      noDetailOnFail: authz.action<boolean>('no_detail_on_fail'),
    });
  });
  router.get('/check', check);
  router.post('/check', check);

  // RADIUS servers that read only the status: 204 without a body on success, 400 without a body otherwise.
  const radiuscheck = async (ctx: RouterContext<AppState>) => {
    let accepted = false;
    try { accepted = (await runCheck(ctx, '/validate/radiuscheck')).outcome.kind === 'accept'; } catch (err) {
      deps.events.emit('log', { level: 'info', msg: 'radiuscheck failed', error: String(err) });
      ctx.state.audit = { ...requestAudit(ctx), info: { error: err instanceof MfaError ? err.wireMessage : 'internal error' } };
    }
    ctx.body = null; // explicit: no body (set before the status, or Koa would turn null into 204)
    ctx.status = accepted ? 204 : 400;
  };
  router.get('/radiuscheck', radiuscheck);
  router.post('/radiuscheck', radiuscheck);

  // SAML IdPs: `result.value = {auth, attributes}` with the user's attributes on success.
  const samlcheck = async (ctx: RouterContext<AppState>) => {
    const { outcome, who } = await runCheck(ctx, '/validate/samlcheck');
    const auth = outcome.kind === 'accept';
    let attributes: Record<string, unknown> = {};
    if (auth && who.user) {
      const u = deps.realms.get(who.user.realm)?.lookup(who.user.name);
      attributes = { username: who.user.name, realm: who.user.realm, resolver: who.user.resolver, email: u?.email ?? '', givenname: u?.givenname ?? '', surname: u?.surname ?? '', phone: u?.phone ?? '' };
    }
    const env = outcomeEnvelope(deps.clock.now(), outcome);
    env.result.value = { auth, attributes };
    ctx.body = env;
  };
  router.get('/samlcheck', samlcheck);
  router.post('/samlcheck', samlcheck);

  const trigger = async (ctx: RouterContext<AppState>) => {
    const { params } = ctx.state;
    ctx.state.audit = { action: `${ctx.method} /validate/triggerchallenge`, success: false, outcome: 'ERROR', username: params.get('user') ?? null, realm: params.get('realm') ?? null };
    const admin = await requireAdmin(deps, ctx, 'triggerchallenge');
    ctx.state.admin = admin;
    const subject = readSubject(params);
    const result = await triggerChallenges(deps, { ...subject, client: ctx.state.client });
    const detail = result.challenges.length
      ? challengeDetail(result.challenges, result.preferredClientMode)
      : { messages: [], transaction_ids: [], multi_challenge: [] };
    const env = okEnvelope(deps.clock.now(), result.challenges.length, detail, 2);
    env.result.authentication = result.challenges.length ? 'CHALLENGE' : 'REJECT';
    ctx.body = env;
    ctx.state.audit = { ...ctx.state.audit, success: result.challenges.length > 0, outcome: env.result.authentication, serials: result.challenges.map((c) => c.serial), policies: result.policies, transactionId: result.challenges[0]?.transactionId ?? null, info: { challenges: result.challenges.length } };
  };
  router.get('/triggerchallenge', trigger);
  router.post('/triggerchallenge', trigger);

  const poll = async (ctx: RouterContext<AppState>, transactionId: string | undefined) => {
    ctx.state.audit = { action: 'GET /validate/polltransaction', success: false, outcome: 'ERROR' };
    if (!transactionId) throw missingParameter('transaction_id');
    const rows = await deps.store.challenges.byTransaction(transactionId);
    const status = transactionStatus(rows, deps.clock.now());
    const env = okEnvelope(deps.clock.now(), status === 'accept', { challenge_status: status }, 2); // eduMFA: send_result(..., rid=2)
    env.result.authentication = status === 'accept' ? 'ACCEPT' : status === 'declined' ? 'DECLINED' : 'REJECT';
    ctx.body = env;
    const serials = status === 'accept' ? rows.filter((r) => r.status === 'accepted').map((r) => r.serial) : rows.map((r) => r.serial);
    ctx.state.audit = { ...ctx.state.audit, success: status === 'accept', outcome: env.result.authentication, serials, transactionId, info: { status } };
  };
  router.get('/polltransaction', (ctx) => poll(ctx, ctx.state.params.get('transaction_id') || undefined));
  router.get('/polltransaction/:transactionId', (ctx) => poll(ctx, ctx.params.transactionId));
  return router;
}

function outcomeWho(deps: Deps, req: CheckRequest) {
  if (!req.user) return { client: req.client };
  try {
    const u = deps.realms.resolveUser(req.user, req.realm);
    return { user: { name: u.name, realm: u.realm, resolver: u.resolver }, client: req.client };
  } catch {
    return { client: req.client };
  }
}
