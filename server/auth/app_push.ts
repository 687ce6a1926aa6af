/**
 * The push API and approval chains of applications (issue 15). Each push is a normal challenge on the user's
 * existing push token (edupush / push), created by the trigger algorithm (server/auth/trigger.ts) — so the push
 * fatigue limits, number matching and the phone's protocol are those of a login. A push row (store/app_pushes_repo.ts)
 * is decided once: `settlePush` reads the transaction's challenges and moves the row with one conditional UPDATE;
 * only the winner acts (webhook, statistics event, the next step of a chain). It runs on the answer path (the
 * `challenge.answered` event of the node that took the phone's answer: `watchAppPushAnswers`), when a client reads
 * the push or approval, and for expiry from the server's sweep (`expireOverduePushes`) — any of them may win, none
 * twice.
 *
 * Chains: ordered — step n+1 is claimed (waiting → sending, conditional) by whoever won step n's approval, so it is
 * sent once; a No or a timeout ends the chain (declined / expired), and the steps never asked are `skipped`.
 * Parallel — every step is sent at once; all Yes → approved; the first No (or timeout) ends it and withdraws the
 * other pending pushes (their challenges deleted, their push fatigue places freed without a strike).
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { ParameterError, PolicyError, ValidateError } from '../../core/errors.ts';
import type { ApplicationRecord } from '../store/apps_repo.ts';
import type { AppPushRecord, ApprovalMode, ApprovalRecord, PushStatus } from '../store/app_pushes_repo.ts';
import { newTransactionId } from './challenges.ts';
import { triggerChallenges } from './trigger.ts';
import { withdrawPushLogin } from './push_fatigue.ts';
import { queueWebhook } from './webhooks.ts';
import { PUSH_VARIANTS, actionNames } from '../../tokens/push/variants.ts';
import type { ActionValue } from '../../policies/types.ts';
import { COLUMN_LIMITS, charLength } from '../store/limits.ts';

export const PUSH_TIMEOUT_MIN_S = 10;
export const PUSH_TIMEOUT_MAX_S = 3600;
export const APPROVERS_MAX = 20;
export const QUESTION_MAX = 500;
export const CONTEXT_MAX = 2000;
export const MATCHING = ['never', 'on_risk', 'always'] as const;

export interface PushInput {
  readonly user: string;
  readonly realm?: string;
  readonly question: string;
  readonly title?: string;
  readonly context?: Record<string, unknown> | null;
  /** Seconds; default: the configured challenge validity. */
  readonly timeoutSeconds?: number;
  readonly matching?: (typeof MATCHING)[number];
}

export interface ApprovalInput {
  readonly approvers: readonly string[];
  readonly realm?: string;
  readonly mode: ApprovalMode;
  readonly question: string;
  readonly title?: string;
  readonly timeoutSeconds?: number;
}

const FINAL: readonly PushStatus[] = ['approved', 'declined', 'expired', 'withdrawn', 'failed', 'skipped'];
const OPEN: readonly PushStatus[] = ['sending', 'pending'];

const newId = (prefix: string) => `${prefix}_${crypto.randomBytes(12).toString('hex')}`;

export function checkQuestion(question: string, title: string | undefined): void {
  if (question.trim() === '') throw new ParameterError("Missing parameter: 'question'");
  if (charLength(question) > QUESTION_MAX)
    throw new ParameterError(`Parameter 'question' is too long (at most ${QUESTION_MAX} characters).`);
  if (title !== undefined && charLength(title) > COLUMN_LIMITS.app_pushes.title)
    throw new ParameterError(`Parameter 'title' is too long (at most ${COLUMN_LIMITS.app_pushes.title} characters).`);
}

export function timeoutMs(deps: Deps, seconds: number | undefined): number {
  if (seconds === undefined) return deps.config.challenge.validitySeconds * 1000;
  if (!Number.isInteger(seconds) || seconds < PUSH_TIMEOUT_MIN_S || seconds > PUSH_TIMEOUT_MAX_S)
    throw new ParameterError(`The timeout must be a whole number of seconds from ${PUSH_TIMEOUT_MIN_S} to ${PUSH_TIMEOUT_MAX_S}.`);
  return seconds * 1000;
}

/** The user an application may push to: known in its realm (an application bound to a realm reaches only that one). */
async function resolveFor(deps: Deps, app: ApplicationRecord, user: string, realm: string | undefined) {
  const u = await deps.realms.resolveUser(user, realm ?? app.realm ?? undefined);
  if (app.realm && u.realm !== app.realm) throw new PolicyError('The application may not send pushes to users of this realm.');
  return u;
}

/**
 * POST /api/v1/push: one push to one user; answers with the push row once it is out, and the challenge's message —
 * with number matching (`matching`, or the `push_matching` policy) it carries the code the service must show its
 * user, the same code the phone shows.
 */
export async function createAppPush(
  deps: Deps,
  app: ApplicationRecord,
  input: PushInput,
  client: string,
): Promise<{ push: AppPushRecord; message: string }> {
  checkQuestion(input.question, input.title);
  const context = input.context ?? null;
  if (context !== null && charLength(JSON.stringify(context)) > CONTEXT_MAX)
    throw new ParameterError(`Parameter 'context' is too long (at most ${CONTEXT_MAX} characters of JSON).`);
  const ms = timeoutMs(deps, input.timeoutSeconds);
  const user = await resolveFor(deps, app, input.user, input.realm);
  const id = newId('psh');
  await deps.store.appPushes.insert({
    id,
    appId: app.id,
    username: user.name,
    realm: user.realm,
    status: 'sending',
    transactionId: newTransactionId(),
    question: input.question,
    title: input.title ?? '',
    context,
    matching: input.matching ?? null,
    timeoutMs: ms,
    createdAt: deps.clock.now(),
  });
  const push = (await deps.store.appPushes.byId(id))!;
  const message = await sendPush(deps, app, push, client);
  return { push: (await deps.store.appPushes.byId(id))!, message };
}

/**
 * Sends a push row that is `sending` (its transaction id is set): the trigger algorithm creates the challenge on the
 * user's push tokens with the application's question, title, matching and timeout. A refusal (no push token, push
 * fatigue limits) marks the row failed and is thrown.
 */
async function sendPush(deps: Deps, app: ApplicationRecord, push: AppPushRecord, client: string): Promise<string> {
  const overrides: Record<string, ActionValue> = {};
  for (const v of PUSH_VARIANTS) {
    overrides[actionNames(v).textOnMobile] = push.question;
    if (push.title) overrides[actionNames(v).titleOnMobile] = push.title;
  }
  if (push.matching) overrides.push_matching = push.matching;
  // A login code ("type this code at the login") means nothing to an application's push; an approval chain has no
  // screen to show a matching code on, so its steps never ask for one.
  overrides.push_code_to_login = false;
  if (push.approvalId) overrides.push_matching = 'never';
  let message: string;
  try {
    const result = await triggerChallenges(deps, {
      user: push.username,
      realm: push.realm,
      client,
      address: null,
      transactionId: push.transactionId!,
      outOfBandOnly: true,
      overrides,
      validityMs: push.timeoutMs,
      appPush: true,
    });
    if (!result.challenges.length) throw new ValidateError('The user has no usable push token.');
    message = result.challenges[0]!.message;
  } catch (err) {
    if (await deps.store.appPushes.finish(push.id, ['sending'], 'failed', deps.clock.now())) {
      if (push.approvalId) await endApproval(deps, push.approvalId, 'expired');
    }
    throw err;
  }
  const now = deps.clock.now();
  if (!(await deps.store.appPushes.markSent(push.id, push.transactionId!, now, now + push.timeoutMs))) {
    // Decided while it was being sent: answered already (fine), or its chain ended and withdrew it — then the
    // challenge that was just made must go too, or the phone would show a question nobody waits for.
    const current = await deps.store.appPushes.byId(push.id);
    if (current?.status === 'withdrawn') {
      await deps.store.challenges.deleteTransaction(push.transactionId!);
      await withdrawPushLogin(deps, push.transactionId!);
    }
  }
  deps.events.emit('app.push_sent', {
    application: app.name,
    pushId: push.id,
    transactionId: push.transactionId!,
    ...(push.approvalId ? { approvalId: push.approvalId } : {}),
  });
  void queueWebhook(deps, app, 'challenge.created', pushView({ ...push, sentAt: now, expiresAt: now + push.timeoutMs }, 'pending'));
  return message;
}

/** Decides a push from its challenges (approved, declined, or expired once its time is up), once; returns it as it is now. */
export async function settlePush(deps: Deps, push: AppPushRecord): Promise<AppPushRecord> {
  if (!OPEN.includes(push.status) || !push.transactionId) return push;
  const now = deps.clock.now();
  const rows = await deps.store.challenges.byTransaction(push.transactionId);
  const accepted = rows.find((r) => r.status === 'accepted');
  const declined = rows.find((r) => r.status === 'declined');
  const deadline = push.expiresAt ?? push.createdAt + push.timeoutMs;
  const to: PushStatus | null = accepted ? 'approved' : declined ? 'declined' : deadline <= now ? 'expired' : null;
  if (!to) return push;
  const serial = accepted?.serial ?? declined?.serial ?? null;
  if (!(await deps.store.appPushes.finish(push.id, OPEN, to, now, serial))) return (await deps.store.appPushes.byId(push.id)) ?? push;
  const settled = { ...push, status: to, answeredAt: now, answeredSerial: serial };
  await afterSettled(deps, settled);
  return settled;
}

/** The winner of a push's decision: statistics event, webhook, the approval chain. */
async function afterSettled(deps: Deps, push: AppPushRecord): Promise<void> {
  const app = await deps.store.apps.byId(push.appId);
  const status = push.status as 'approved' | 'declined' | 'expired' | 'withdrawn';
  deps.events.emit('app.push_settled', {
    application: app?.name ?? push.appId,
    pushId: push.id,
    status,
    ...(status !== 'expired' && status !== 'withdrawn' && push.answeredAt !== null
      ? { ms: push.answeredAt - (push.sentAt ?? push.createdAt) }
      : {}),
    ...(push.approvalId ? { approvalId: push.approvalId } : {}),
  });
  if (app && status !== 'withdrawn') void queueWebhook(deps, app, `challenge.${status}`, pushView(push));
  if (push.approvalId) await advanceApproval(deps, push);
}

/** The `challenge.answered` of this node's phone requests settles the application's push of that transaction. */
export function watchAppPushAnswers(deps: Deps): () => void {
  return deps.events.on('challenge.answered', (e) => {
    void (async () => {
      const push = await deps.store.appPushes.byTransaction(e.transactionId);
      if (push) await settlePush(deps, push);
    })().catch((err) => deps.events.emit('log', { level: 'error', msg: 'settling an application push failed', error: String(err) }));
  });
}

/** Pushes past their expiry that nobody read: expired (and their chains ended). Run by the server's timer. */
export async function expireOverduePushes(deps: Deps, limit = 100): Promise<number> {
  let n = 0;
  for (const push of await deps.store.appPushes.overdue(deps.clock.now(), limit)) {
    if ((await settlePush(deps, push)).status !== push.status) n++;
  }
  return n;
}

/** POST /api/v1/approvals. */
export async function createApproval(deps: Deps, app: ApplicationRecord, input: ApprovalInput, client: string): Promise<ApprovalRecord> {
  checkQuestion(input.question, input.title);
  if (input.mode !== 'ordered' && input.mode !== 'parallel') throw new ParameterError("Parameter 'mode' must be ordered or parallel.");
  if (!input.approvers.length || input.approvers.length > APPROVERS_MAX)
    throw new ParameterError(`Parameter 'approvers' must name 1 to ${APPROVERS_MAX} users.`);
  const users = await Promise.all(input.approvers.map((a) => resolveFor(deps, app, a, input.realm)));
  const seen = new Set(users.map((u) => `${u.realm}\u0000${u.name}`));
  if (seen.size !== users.length) throw new ParameterError("Parameter 'approvers' names a user twice.");
  const ms = timeoutMs(deps, input.timeoutSeconds);
  const now = deps.clock.now();
  const id = newId('apr');
  await deps.store.appPushes.insertApproval({
    id,
    appId: app.id,
    mode: input.mode,
    question: input.question,
    title: input.title ?? '',
    timeoutMs: ms,
    steps: users.length,
    createdAt: now,
  });
  // Parallel: every step is sent now. Ordered: step 0 is sent now, the others wait for their turn.
  for (const [step, u] of users.entries()) {
    const sendNow = input.mode === 'parallel' || step === 0;
    await deps.store.appPushes.insert({
      id: newId('psh'),
      appId: app.id,
      approvalId: id,
      step,
      username: u.name,
      realm: u.realm,
      status: sendNow ? 'sending' : 'waiting',
      transactionId: sendNow ? newTransactionId() : null,
      question: input.question,
      title: input.title ?? '',
      timeoutMs: ms,
      createdAt: now,
    });
  }
  for (const push of await deps.store.appPushes.ofApproval(id)) {
    if (push.status !== 'sending') continue;
    try {
      await sendPush(deps, app, push, client);
    } catch (err) {
      // sendPush ended the chain (expired, the other steps withdrawn); the caller hears why.
      deps.events.emit('log', { level: 'warn', msg: 'an approval step could not be sent', approval: id, error: String(err) });
      throw err;
    }
  }
  return (await deps.store.appPushes.approval(id))!;
}

/** After a step was decided (by this caller, once): the next step, or the end of the chain. */
async function advanceApproval(deps: Deps, push: AppPushRecord): Promise<void> {
  const approvalId = push.approvalId!;
  const approval = await deps.store.appPushes.approval(approvalId);
  if (approval?.status !== 'pending') return;
  if (push.status === 'declined' || push.status === 'expired') {
    await endApproval(deps, approvalId, push.status);
    return;
  }
  if (push.status !== 'approved') return;
  const steps = await deps.store.appPushes.ofApproval(approvalId);
  if (approval.mode === 'parallel') {
    if (steps.every((s) => s.status === 'approved')) await endApproval(deps, approvalId, 'approved');
    return;
  }
  const next = steps.find((s) => s.step === (push.step ?? 0) + 1);
  if (!next) {
    await endApproval(deps, approvalId, 'approved');
    return;
  }
  const transactionId = newTransactionId();
  if (!(await deps.store.appPushes.claimStep(next.id, transactionId))) return; // another node sends it
  const app = await deps.store.apps.byId(approval.appId);
  if (!app) return;
  await sendPush(deps, app, { ...next, status: 'sending', transactionId }, '').catch((err: unknown) =>
    deps.events.emit('log', { level: 'warn', msg: 'an approval step could not be sent', approval: approvalId, error: String(err) }),
  );
}

/**
 * Ends a chain (pending → final, one conditional UPDATE: only the winner goes on): steps never asked are skipped,
 * pending pushes are withdrawn (their challenges deleted, their push fatigue places freed without a strike).
 */
async function endApproval(deps: Deps, approvalId: string, status: 'approved' | 'declined' | 'expired'): Promise<void> {
  const now = deps.clock.now();
  if (!(await deps.store.appPushes.finishApproval(approvalId, status, now))) return;
  const steps = await deps.store.appPushes.ofApproval(approvalId);
  for (const s of steps) {
    if (s.status === 'waiting') await deps.store.appPushes.finish(s.id, ['waiting'], 'skipped', null);
    else if (OPEN.includes(s.status) && (await deps.store.appPushes.finish(s.id, OPEN, 'withdrawn', now))) {
      if (s.transactionId) {
        await deps.store.challenges.deleteTransaction(s.transactionId);
        await withdrawPushLogin(deps, s.transactionId);
        deps.answers.notify(s.transactionId);
      }
      await afterSettled(deps, { ...s, status: 'withdrawn', answeredAt: now });
    }
  }
  const approval = (await deps.store.appPushes.approval(approvalId))!;
  const app = await deps.store.apps.byId(approval.appId);
  deps.events.emit('approval.completed', { application: app?.name ?? approval.appId, approvalId, status });
  if (app) void queueWebhook(deps, app, 'approval.completed', approvalView(approval, await deps.store.appPushes.ofApproval(approvalId)));
  deps.answers.notify(approvalKey(approvalId));
}

/** The answer bus key a long-poll of an approval waits on. */
export const approvalKey = (id: string) => `approval:${id}`;

/** Reads an approval and settles its open steps (an expired step ends the chain even without the sweep). */
export async function readApproval(deps: Deps, id: string): Promise<{ approval: ApprovalRecord; steps: AppPushRecord[] } | null> {
  let approval = await deps.store.appPushes.approval(id);
  if (!approval) return null;
  if (approval.status === 'pending') {
    for (const s of await deps.store.appPushes.ofApproval(id)) if (OPEN.includes(s.status)) await settlePush(deps, s);
    approval = (await deps.store.appPushes.approval(id))!;
  }
  return { approval, steps: await deps.store.appPushes.ofApproval(id) };
}

/** What the API and the webhooks show of a push. */
export function pushView(p: AppPushRecord, status: PushStatus = p.status): Record<string, unknown> {
  return {
    id: p.id,
    status: status === 'sending' ? 'pending' : status,
    user: p.username,
    realm: p.realm,
    transaction_id: p.transactionId,
    question: p.question,
    title: p.title,
    context: p.context,
    created_at: p.createdAt,
    expires_at: p.expiresAt,
    answered_at: FINAL.includes(status) ? p.answeredAt : null,
    answered_by: status === 'approved' || status === 'declined' ? { user: p.username, serial: p.answeredSerial } : null,
  };
}

export function approvalView(a: ApprovalRecord, steps: readonly AppPushRecord[]): Record<string, unknown> {
  return {
    id: a.id,
    status: a.status,
    mode: a.mode,
    question: a.question,
    title: a.title,
    timeout_seconds: a.timeoutMs / 1000,
    created_at: a.createdAt,
    finished_at: a.finishedAt,
    steps: steps.map((s) => ({
      user: s.username,
      realm: s.realm,
      status: s.status === 'sending' ? 'pending' : s.status,
      answered_at: s.status === 'approved' || s.status === 'declined' ? s.answeredAt : null,
    })),
  };
}
