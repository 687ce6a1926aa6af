/**
 * /validate/check, /validate/triggerchallenge, /validate/polltransaction — eduMFA's wire format (protocol.md §6).
 * Each endpoint: read params → authorize → run the algorithm → render the envelope; the audit row is set on
 * ctx.state and written by the app.
 */
import type { ServerResponse } from 'node:http';
import Router, { type RouterContext } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { MfaError, ParameterError, TooManyRequestsError, missingParameter } from '../../core/errors.ts';
import { checkLength, identifierParam, type Params } from '../params.ts';
import { COLUMN_LIMITS } from '../store/limits.ts';
import { decideCheck } from '../auth/check.ts';
import { clientGoneSignal } from '../respond.ts';
import { finishWait, type WaitPlan } from '../auth/wait.ts';
import { auditOrRefuse, errorReply, leaveKoa, sendReply, type AuditDraft, type Reply } from '../respond.ts';
import { triggerChallenges } from '../auth/trigger.ts';
import { transactionStatus } from '../auth/challenges.ts';
import { challengeDetail, okEnvelope, outcomeEnvelope, type OutcomeOptions } from '../envelope.ts';
import { requireAdmin, requireApiKey, requireApplication } from './auth.ts';
import { authWebhook } from '../auth/webhooks.ts';
import { requestPolicies, type RequestPolicies } from '../auth/context.ts';
import { AUTHENTICATION, type Outcome } from '../auth/outcome.ts';
import { resolvedUserKey, throttleAddress, userKeyOf, type Attempt } from '../auth/throttle.ts';
import { rememberLogin } from '../auth/push_risk.ts';
import type { UserInfo } from '../auth/users.ts';
import type { ApplicationRecord } from '../store/apps_repo.ts';

/** A transaction id as /validate/check accepts it: as wide as its column. */
const TRANSACTION_ID = new RegExp(`^[0-9A-Za-z_-]{1,${COLUMN_LIMITS.challenges.transaction_id}}$`);

/** user/serial/realm/type parameters shared by check and triggerchallenge, with eduMFA's input checks. */
export function readSubject(params: Params): Subject {
  return checkSubject(subjectOf(params));
}

/** user/serial/realm/type as given (empty = absent), not yet checked. */
function subjectOf(params: Params): Subject {
  return {
    user: identifierParam(params, 'user'),
    serial: identifierParam(params, 'serial'),
    realm: identifierParam(params, 'realm'),
    type: params.get('type') || undefined,
  };
}

function checkSubject(subject: Subject): Subject {
  const { user, serial } = subject;
  if (!user && !serial) throw new ParameterError('You need to specify a serial or a user.');
  if (serial?.includes('*')) throw new ParameterError('Invalid serial number.');
  if (user?.includes('%')) throw new ParameterError('Invalid user.');
  return subject;
}

export function validateRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/validate' });

  /** What a check request named: enough to render its answer and audit row, without the pass or the parameters. */
  interface CheckCall {
    readonly method: string;
    readonly action: string;
    readonly subject: Subject;
    readonly client: string;
    readonly transactionId: string | undefined;
    /** For the audit row of an answer given after the request left Koa (a push wait). */
    readonly requestId: string;
    /** The user as the realm resolved it once for this request (outcomeWho), or only the client. */
    who: Who;
    /** The application that signed the request (its audit row and its `auth.*` webhook). */
    readonly application: ApplicationRecord | undefined;
  }
  type Render = (outcome: Outcome, who: Who) => Reply;
  /** For radiuscheck: an error is an answer too (400 without a body), not an error envelope. */
  type Failed = (err: unknown) => Reply;

  /** A successful login teaches the user's address (push number matching "on risk": server/auth/push_risk.ts). */
  const remember = async (call: CheckCall): Promise<void> => {
    const who = call.who;
    if (who.user) await rememberLogin(deps, who.user, call.client);
  };

  /** The reply, audit row and `check.result` event of an outcome. */
  const settle = (call: CheckCall, outcome: Outcome, render: Render): { reply: Reply; audit: AuditDraft } => {
    const who = call.who;
    const audit: AuditDraft = {
      action: `${call.method} ${call.action}`,
      username: who.user?.name ?? call.subject.user ?? null,
      realm: who.user?.realm ?? call.subject.realm ?? null,
      success: outcome.kind === 'accept',
      outcome: AUTHENTICATION[outcome.kind],
      serials: outcome.serials,
      policies: outcome.policies,
      transactionId: outcome.kind === 'challenge' ? (outcome.challenges[0]?.transactionId ?? null) : (call.transactionId ?? null),
      info: {
        message:
          outcome.kind !== 'challenge'
            ? outcome.message
            : outcome.enrollment
              ? `enrollment via multichallenge: ${outcome.enrollment}`
              : 'challenge triggered',
      },
    };
    deps.events.emit('check.result', {
      user: call.subject.user,
      realm: call.subject.realm,
      serials: [...outcome.serials],
      outcome: AUTHENTICATION[outcome.kind],
      message: outcome.kind === 'challenge' ? 'challenge' : outcome.message,
      policies: [...outcome.policies],
      transactionId: call.transactionId,
      client: call.client,
      ...(outcome.kind === 'challenge' && outcome.repeated ? { reused: true as const } : {}),
    });
    if (call.application && (outcome.kind === 'accept' || outcome.kind === 'reject' || outcome.kind === 'declined'))
      authWebhook(deps, call.application, outcome.kind === 'accept', {
        user: who.user?.name ?? call.subject.user ?? null,
        realm: who.user?.realm ?? call.subject.realm ?? null,
        serials: [...outcome.serials],
        transaction_id: call.transactionId ?? null,
      });
    return { reply: render(outcome, who), audit: { ...audit, application: call.application?.name ?? null } };
  };

  /** The reply and audit row of a failed check (a push wait that failed after it left Koa, or radiuscheck's errors). */
  const settleError = (call: CheckCall, err: unknown, failed: Failed | undefined): { reply: Reply; audit: AuditDraft } => {
    const base: AuditDraft = {
      action: `${call.method} ${call.action}`,
      success: false,
      outcome: 'ERROR',
      username: call.subject.user ?? null,
      realm: call.subject.realm ?? null,
      serials: call.subject.serial ? [call.subject.serial] : [],
      application: call.application?.name ?? null,
    };
    if (failed) {
      deps.events.emit('log', { level: 'info', msg: `${call.action} failed`, error: String(err) });
      return { reply: failed(err), audit: { ...base, info: { error: err instanceof MfaError ? err.wireMessage : 'internal error' } } };
    }
    const { reply, error } = errorReply(deps, call.method, call.action, err);
    return { reply, audit: { ...base, info: { error: error.wireMessage } } };
  };

  /**
   * Runs /validate/check's algorithm and answers. A decision answers at once through Koa. A push wait leaves Koa's
   * middleware chain (`ctx.respond = false`) and answers on the raw response when the phone has answered: a waiting
   * login then holds the connection, its slim WaitPlan and the CheckCall — no Koa frames, no parameters, no pass.
   */
  const runCheck = async (ctx: RouterContext<AppState>, action: string, render: Render, failed?: Failed): Promise<void> => {
    const { params } = ctx.state;
    const call: CheckCall = {
      method: ctx.method,
      action,
      client: ctx.state.client,
      transactionId: params.get('transaction_id') || undefined,
      subject: subjectOf(params),
      requestId: ctx.state.requestId,
      who: { client: ctx.state.client },
      application: ctx.state.application,
    };
    let settled: { reply: Reply; audit: AuditDraft };
    try {
      checkSubject(call.subject);
      call.who = await outcomeWho(deps, call.subject, call.client);
      requireApplication(deps, ctx, call.who);
      await requireApiKey(deps, ctx, call.who);
      const pass = params.require('pass');
      if (call.transactionId !== undefined && !TRANSACTION_ID.test(call.transactionId)) throw new ParameterError('Invalid transaction_id.');
      const exception = ['1', 'true', 'True', 'TRUE'].includes(params.get('exception') ?? '');
      // Back-off: a PIN/password attempt is counted before any PIN is hashed (429 when the user or the address is
      // over budget). An answer to a challenge (transaction_id) checks no PIN — a wrong OTP there counts on the
      // token's fail counter — and a phone-approved login polls with it: those are not counted here.
      const userKey = call.who.user ? resolvedUserKey(call.who.user) : await userKeyOf(deps.realms, call.subject); // resolved once
      const address = throttleAddress(deps.config, ctx.state.peer, call.client, 'validate');
      const attempt = call.transactionId === undefined ? await deps.throttle.begin({ user: userKey, address }) : null;
      let decided: Awaited<ReturnType<typeof decideCheck>>;
      try {
        decided = await decideCheck(deps, {
          ...call.subject,
          pass,
          transactionId: call.transactionId,
          client: call.client,
          address,
          exception,
          signal: clientGoneSignal(ctx.res),
          beforeChallenge: () => deps.throttle.challenge(userKey),
          heldAttempts: attempt?.userHeld ? 1 : 0,
        });
      } catch (err) {
        if (attempt) await deps.throttle.release(attempt); // an error is no failed attempt
        throw err;
      }
      // A success (also a finalized challenge) starts the user's count again; a challenge or a wait gives the points back.
      const held = attempt ?? { keys: { user: userKey, address: null }, userHeld: false, addressHeld: false };
      if (decided.kind === 'accept') await Promise.all([deps.throttle.succeeded(held), remember(call)]);
      else if (decided.kind !== 'reject') await deps.throttle.release(held);
      if (decided.kind === 'wait') {
        answerAfterWait(ctx, call, decided, render, failed, held);
        return;
      }
      settled = settle(call, decided, render);
    } catch (err) {
      // The app renders the error envelope and the audit row. A back-off refusal stays a 429 with Retry-After on
      // radiuscheck too (its other errors are a bare 400).
      if (!failed || err instanceof TooManyRequestsError) throw err;
      settled = settleError(call, err, failed);
    }
    ctx.body = settled.reply.body; // the body first: Koa turns an explicit null into 204 when the status came first
    ctx.status = settled.reply.status;
    ctx.state.audit = settled.audit;
  };

  const answerAfterWait = (
    ctx: RouterContext<AppState>,
    call: CheckCall,
    plan: WaitPlan,
    render: Render,
    failed: Failed | undefined,
    attempt: Attempt,
  ): void => {
    const res = leaveKoa(ctx);
    finishWait(deps, plan, goneWatcher(res), (err, outcome) => {
      if (outcome?.kind === 'accept') void Promise.all([deps.throttle.succeeded(attempt), remember(call)]); // an approved push resets the user's count
      let settled: { reply: Reply; audit: AuditDraft };
      try {
        settled = outcome ? settle(call, outcome, render) : settleError(call, err, failed);
      } catch (renderErr) {
        settled = settleError(call, renderErr, failed);
      }
      // The audit row first, as for every other request: a login is in the audit before its client hears the answer.
      const audit = { ...settled.audit, requestId: call.requestId };
      void auditOrRefuse(deps, call.method, call.action, audit, call.client, null).then((refused) => {
        try {
          sendReply(deps, res, refused ?? settled.reply);
        } catch (sendErr) {
          deps.events.emit('log', { level: 'error', msg: 'answering a push wait failed', error: String(sendErr) });
        }
      });
    });
  };

  const check = (ctx: RouterContext<AppState>) =>
    runCheck(ctx, '/validate/check', (outcome, who) => {
      const rp = requestPolicies(deps, who);
      return {
        status: 200,
        body: outcomeEnvelope(deps.clock.now(), outcome, {
          ...answerOptions(rp, outcome, who),
          noDetailOnSuccess: rp.action<boolean>('no_detail_on_success'),
          noDetailOnFail: rp.action<boolean>('no_detail_on_fail'),
        }),
      };
    });
  router.get('/check', check);
  router.post('/check', check);

  // RADIUS servers that read only the status: 204 without a body on success, 400 without a body otherwise.
  const radiuscheck = (ctx: RouterContext<AppState>) =>
    runCheck(
      ctx,
      '/validate/radiuscheck',
      (outcome) => ({ status: outcome.kind === 'accept' ? 204 : 400, body: null }),
      () => ({ status: 400, body: null }),
    );
  router.get('/radiuscheck', radiuscheck);
  router.post('/radiuscheck', radiuscheck);

  // SAML IdPs: `result.value = {auth, attributes}` with the user's attributes on success.
  const samlcheck = (ctx: RouterContext<AppState>) =>
    runCheck(ctx, '/validate/samlcheck', (outcome, who) => {
      const auth = outcome.kind === 'accept';
      let attributes: Record<string, unknown> = {};
      if (auth && who.user) {
        const u = who.info;
        attributes = {
          username: who.user.name,
          realm: who.user.realm,
          resolver: who.user.resolver,
          email: u?.email ?? '',
          givenname: u?.givenname ?? '',
          surname: u?.surname ?? '',
          phone: u?.phone ?? '',
        };
      }
      const rp = requestPolicies(deps, who);
      const env = outcomeEnvelope(deps.clock.now(), outcome, answerOptions(rp, outcome, who));
      env.result.value = { auth, attributes };
      return { status: 200, body: env };
    });
  router.get('/samlcheck', samlcheck);
  router.post('/samlcheck', samlcheck);

  const trigger = async (ctx: RouterContext<AppState>) => {
    const { params } = ctx.state;
    ctx.state.audit = {
      action: `${ctx.method} /validate/triggerchallenge`,
      success: false,
      outcome: 'ERROR',
      username: identifierParam(params, 'user') ?? null,
      realm: identifierParam(params, 'realm') ?? null,
    };
    const admin = await requireAdmin(deps, ctx, 'triggerchallenge');
    ctx.state.admin = admin;
    const subject = readSubject(params);
    requireApplication(deps, ctx, await outcomeWho(deps, subject, ctx.state.client));
    await deps.throttle.challenge(await userKeyOf(deps.realms, subject)); // limits.challenges_per_user
    const result = await triggerChallenges(deps, {
      ...subject,
      client: ctx.state.client,
      address: throttleAddress(deps.config, ctx.state.peer, ctx.state.client, 'validate'),
    });
    const detail = result.challenges.length
      ? challengeDetail(result.challenges, result.preferredClientMode)
      : { messages: [], transaction_ids: [], multi_challenge: [] };
    const env = okEnvelope(deps.clock.now(), result.challenges.length, detail, 2);
    env.result.authentication = result.challenges.length ? 'CHALLENGE' : 'REJECT';
    ctx.body = env;
    ctx.state.audit = {
      ...ctx.state.audit,
      success: result.challenges.length > 0,
      outcome: env.result.authentication,
      serials: result.challenges.map((c) => c.serial),
      policies: result.policies,
      transactionId: result.challenges[0]?.transactionId ?? null,
      info: { challenges: result.challenges.length },
    };
  };
  router.get('/triggerchallenge', trigger);
  router.post('/triggerchallenge', trigger);

  const poll = async (ctx: RouterContext<AppState>, transactionId: string | undefined) => {
    ctx.state.audit = { action: 'GET /validate/polltransaction', success: false, outcome: 'ERROR' };
    requireApplication(deps, ctx, { client: ctx.state.client });
    await requireApiKey(deps, ctx, { client: ctx.state.client });
    if (!transactionId) throw missingParameter('transaction_id');
    const rows = await deps.store.challenges.byTransaction(transactionId);
    const status = transactionStatus(rows, deps.clock.now());
    const env = okEnvelope(deps.clock.now(), status === 'accept', { challenge_status: status }, 2); // eduMFA: send_result(..., rid=2)
    env.result.authentication = status === 'accept' ? 'ACCEPT' : status === 'declined' ? 'DECLINED' : 'REJECT';
    ctx.body = env;
    const serials = status === 'accept' ? rows.filter((r) => r.status === 'accepted').map((r) => r.serial) : rows.map((r) => r.serial);
    ctx.state.audit = {
      ...ctx.state.audit,
      success: status === 'accept',
      outcome: env.result.authentication,
      serials,
      transactionId,
      info: { status },
    };
  };
  router.get('/polltransaction', (ctx) => poll(ctx, ctx.state.params.get('transaction_id') || undefined));
  router.get('/polltransaction/:transactionId', (ctx) => poll(ctx, checkLength('transaction_id', ctx.params.transactionId)));
  return router;
}

/**
 * The envelope options of a check answer that its policies decide: challenge text, the wire of a decline, and — for
 * a success of a request that named a user (not serial-only, as eduMFA) — the user details of `add_user_in_response`
 * and `add_resolver_in_response`.
 */
function answerOptions(rp: RequestPolicies, outcome: Outcome, who: Who): OutcomeOptions {
  const opts: OutcomeOptions = {
    challengeTextHeader: rp.action<string>('challenge_text_header'),
    challengeTextFooter: rp.action<string>('challenge_text_footer'),
    declinedAuthentication: rp.action<'reject' | 'declined'>('declined_authentication'),
  };
  if (outcome.kind !== 'accept' || !who.user) return opts;
  const user = who.user;
  return {
    ...opts,
    ...(rp.action<boolean>('add_user_in_response') ? { user: userAttributes(user.name, who.info) } : {}),
    ...(rp.action<boolean>('add_resolver_in_response') ? { userRealm: { realm: user.realm, resolver: user.resolver } } : {}),
  };
}

/** Attribute names eduMFA's resolvers report, in their order; a user store gives those it has. */
const USER_ATTRIBUTES = ['userid', 'description', 'email', 'givenname', 'surname', 'phone', 'mobile'] as const;

/** `detail.user` (eduMFA: the resolver's user info with `password` forced to ""): only the attributes the store has. */
function userAttributes(name: string, info: UserInfo | undefined): Record<string, string> {
  const found = info as Readonly<Record<string, unknown>> | undefined;
  const out: Record<string, string> = { username: name };
  for (const key of USER_ATTRIBUTES) {
    const value = found?.[key];
    if (typeof value === 'string' && value !== '') out[key] = value;
  }
  out.password = '';
  return out;
}

export interface Subject {
  readonly user?: string;
  readonly realm?: string;
  readonly serial?: string;
  readonly type?: string;
}
/** Who a check is for: the user as the realm resolved it (`info`: the store's attributes, read once), and the client. */
interface Who {
  readonly user?: { readonly name: string; readonly realm: string; readonly resolver: string };
  readonly info?: UserInfo;
  readonly client: string;
}

/** The request's user, resolved once; an unknown user or a store that cannot answer leaves only the client (the check itself then fails). */
async function outcomeWho(deps: Deps, subject: Subject, client: string): Promise<Who> {
  if (!subject.user) return { client };
  try {
    const u = await deps.realms.resolveUser(subject.user, subject.realm);
    return { user: { name: u.name, realm: u.realm, resolver: u.resolver }, info: u, client };
  } catch {
    return { client };
  }
}

/**
 * "The client went away" for a push wait: 'close' of the raw response before it ended. Captures only the response.
 * Returns the registration function finishWait expects (it returns the unregistration).
 */
function goneWatcher(res: ServerResponse): (fn: () => void) => () => void {
  return (fn) => {
    if (res.closed && !res.writableEnded) {
      fn();
      return () => {};
    } // already gone before the wait began
    const onClose = () => {
      if (!res.writableEnded) fn();
    };
    res.once('close', onClose);
    return () => {
      res.off('close', onClose);
    };
  };
}
