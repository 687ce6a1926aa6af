/**
 * The API for applications (issue 15), every request signed (server/auth/app_signature.ts, verified by the app's
 * frame before any route runs): POST /api/v1/push, GET /api/v1/push/:id, POST /api/v1/approvals,
 * GET /api/v1/approvals/:id (both GETs long-poll with `wait=<seconds>`), and for administrators
 * GET /application/:name/stats. Answers in the eduMFA envelope, `result.value` = `{id, status, …}`.
 */
import Router, { type RouterContext } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { AuthError, NotFoundError, ParameterError } from '../../core/errors.ts';
import { okEnvelope } from '../envelope.ts';
import { clientGoneSignal } from '../respond.ts';
import { requireAdmin } from './auth.ts';
import { userKeyOf } from '../auth/throttle.ts';
import type { Params } from '../params.ts';
import {
  MATCHING,
  approvalKey,
  approvalView,
  createAppPush,
  createApproval,
  pushView,
  readApproval,
  settlePush,
  type PushInput,
} from '../auth/app_push.ts';
import { appStats } from '../auth/app_stats.ts';
import { SIGNATURE_REFUSED } from '../auth/app_signature.ts';
import type { ApplicationRecord } from '../store/apps_repo.ts';
import { COLUMN_LIMITS } from '../store/limits.ts';

/** The longest long-poll (seconds). */
export const API_WAIT_MAX_S = 60;
const ID = /^[a-z]{3}_[0-9a-f]{24}$/;

type Ctx = RouterContext<AppState>;

function application(ctx: Ctx): ApplicationRecord {
  // The frame verified the signature of every /api/v1/ request; this is a second guard, not the check.
  const app = ctx.state.application;
  if (!app) throw new AuthError(SIGNATURE_REFUSED, 4031);
  return app;
}

function optionalInt(params: Params, name: string): number | undefined {
  const raw = params.get(name);
  if (raw === undefined || raw === '') return undefined;
  if (!/^[0-9]{1,6}$/.test(raw)) throw new ParameterError(`Parameter '${name}' must be a whole number.`);
  return Number(raw);
}

function waitSeconds(params: Params): number {
  const w = optionalInt(params, 'wait') ?? 0;
  if (w > API_WAIT_MAX_S) throw new ParameterError(`Parameter 'wait' must be at most ${API_WAIT_MAX_S} seconds.`);
  return w;
}

function contextOf(params: Params): Record<string, unknown> | null {
  const raw = params.raw('context');
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw === 'object' && !Array.isArray(raw)) return raw as Record<string, unknown>;
  if (typeof raw === 'string') {
    try {
      const doc = JSON.parse(raw) as unknown;
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) return doc as Record<string, unknown>;
    } catch {
      // plain text
    }
    return { text: raw };
  }
  throw new ParameterError("Parameter 'context' must be an object or a text.");
}

function approversOf(params: Params): string[] {
  const raw = params.raw('approvers');
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
  if (!list?.every((u) => typeof u === 'string')) throw new ParameterError("Parameter 'approvers' must be a list of user names.");
  const users = (list as string[]).map((u) => u.trim()).filter(Boolean);
  for (const u of users)
    if (u.length > COLUMN_LIMITS.app_pushes.username) throw new ParameterError("Parameter 'approvers' names a user that is too long.");
  return users;
}

/**
 * Waits (long-poll) until `key` is notified on the answer bus, `untilMs` passes or the client goes; at most `seconds`.
 * Bounded like a waiting login (wait.max_concurrent): 503 with Retry-After beyond it.
 */
async function longPoll(deps: Deps, ctx: Ctx, key: string, seconds: number, untilMs: number | null): Promise<void> {
  const now = deps.clock.now();
  const ms = Math.min(seconds * 1000, untilMs === null ? Infinity : Math.max(0, untilMs - now));
  if (ms <= 0) return;
  const slot = deps.waits.enter(`api:${key}`);
  try {
    await deps.answers.waitFor(key, { timeoutMs: ms, signal: clientGoneSignal(ctx.res) });
  } finally {
    slot.leave();
  }
}

export function apiRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();

  router.post('/api/v1/push', async (ctx) => {
    const app = application(ctx);
    const { params } = ctx.state;
    ctx.state.audit = { action: 'POST /api/v1/push', success: false, outcome: 'ERROR', username: params.get('user') ?? null };
    const matching = params.get('matching') || undefined;
    if (matching !== undefined && !(MATCHING as readonly string[]).includes(matching))
      throw new ParameterError(`Parameter 'matching' must be one of ${MATCHING.join(', ')}.`);
    const title = params.get('title');
    const realm = params.get('realm') || undefined;
    const timeoutSeconds = optionalInt(params, 'timeout');
    const input: PushInput = {
      user: params.requireNonEmpty('user'),
      question: params.requireNonEmpty('question'),
      ...(realm !== undefined ? { realm } : {}),
      ...(title !== undefined ? { title } : {}),
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      ...(matching !== undefined ? { matching: matching as PushInput['matching'] } : {}),
      context: contextOf(params),
    };
    await deps.throttle.challenge(await userKeyOf(deps.realms, { user: input.user, realm })); // limits.challenges_per_user, as a trigger
    const { push, message } = await createAppPush(deps, app, input, ctx.state.client);
    ctx.body = okEnvelope(deps.clock.now(), { ...pushView(push), message });
    ctx.state.audit = {
      ...ctx.state.audit,
      success: true,
      outcome: 'OK',
      username: push.username,
      realm: push.realm,
      transactionId: push.transactionId,
      info: { push: push.id },
    };
  });

  router.get('/api/v1/push/:id', async (ctx) => {
    const app = application(ctx);
    const id = ctx.params.id;
    const wait = waitSeconds(ctx.state.params);
    const read = async () => {
      const p = ID.test(id) ? await deps.store.appPushes.byId(id) : null;
      // Another application's push is as unknown as a missing one.
      if (!p || p.appId !== app.id || p.approvalId !== null) throw new NotFoundError('The requested push could not be found.');
      return settlePush(deps, p);
    };
    let push = await read();
    if (wait > 0 && (push.status === 'pending' || push.status === 'sending') && push.transactionId) {
      await longPoll(deps, ctx, push.transactionId, wait, push.expiresAt);
      push = await read();
    }
    ctx.body = okEnvelope(deps.clock.now(), pushView(push));
  });

  router.post('/api/v1/approvals', async (ctx) => {
    const app = application(ctx);
    const { params } = ctx.state;
    ctx.state.audit = { action: 'POST /api/v1/approvals', success: false, outcome: 'ERROR' };
    const mode = params.get('mode') || 'ordered';
    if (mode !== 'ordered' && mode !== 'parallel') throw new ParameterError("Parameter 'mode' must be ordered or parallel.");
    const title = params.get('title');
    const realm = params.get('realm') || undefined;
    const timeoutSeconds = optionalInt(params, 'timeout_seconds');
    const approval = await createApproval(
      deps,
      app,
      {
        approvers: approversOf(params),
        mode,
        question: params.requireNonEmpty('question'),
        ...(realm !== undefined ? { realm } : {}),
        ...(title !== undefined ? { title } : {}),
        ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      },
      ctx.state.client,
    );
    const read = await readApproval(deps, approval.id);
    ctx.body = okEnvelope(deps.clock.now(), approvalView(read!.approval, read!.steps));
    ctx.state.audit = { ...ctx.state.audit, success: true, outcome: 'OK', info: { approval: approval.id, mode } };
  });

  router.get('/api/v1/approvals/:id', async (ctx) => {
    const app = application(ctx);
    const id = ctx.params.id;
    const wait = waitSeconds(ctx.state.params);
    const read = async () => {
      const r = ID.test(id) ? await readApproval(deps, id) : null;
      if (!r || r.approval.appId !== app.id) throw new NotFoundError('The requested approval could not be found.');
      return r;
    };
    let r = await read();
    if (wait > 0 && r.approval.status === 'pending') {
      const ends = r.steps.filter((s) => s.status === 'pending' && s.expiresAt !== null).map((s) => s.expiresAt!);
      await longPoll(deps, ctx, approvalKey(id), wait, ends.length ? Math.min(...ends) : null);
      r = await read();
    }
    ctx.body = okEnvelope(deps.clock.now(), approvalView(r.approval, r.steps));
  });

  router.get('/application/:name/stats', async (ctx) => {
    await requireAdmin(deps, ctx);
    const app = await deps.store.apps.byName(ctx.params.name);
    if (!app) throw new NotFoundError('The requested application could not be found.');
    const since = ctx.state.params.get('since');
    let from: number | undefined;
    if (since) {
      from = Date.parse(since);
      if (!/^\d{4}-\d{2}-\d{2}$/.test(since) || Number.isNaN(from))
        throw new ParameterError("Parameter 'since' must be a date (YYYY-MM-DD).");
    }
    ctx.body = okEnvelope(deps.clock.now(), { application: app.name, days: await appStats(deps, app.id, from) });
  });
  return router;
}
