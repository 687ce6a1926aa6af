/**
 * Wait mode (policies `edupush_wait` / `push_wait`): /validate/check sends the push and answers in the same request
 * once the phone has answered. The request holds no thread: it awaits the AnswerBus, re-reading its challenge
 * rows only when woken (or at the slow safety-net interval). A decline ends the wait at once; when the user has
 * several push tokens all get the push and the first answer wins; a disconnect frees the waiter immediately;
 * a timeout is REJECT and counts as a failed attempt. Capacity limits answer 503 + Retry-After, never queue.
 */
import type { Deps } from '../deps.ts';
import { UnavailableError } from '../errors.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import type { RequestPolicies } from './context.ts';
import { createChallenges, transactionStatus } from './challenges.ts';
import type { Outcome } from './outcome.ts';
import type { WaitResult } from './answers.ts';
import type { UserInfo } from './users.ts';

export interface WaitRegistry {
  readonly active: number;
  readonly draining: boolean;
  /** Stop admitting waits (SIGTERM). */
  drain(): void;
  /** Resolves when no wait is running. */
  idle(): Promise<void>;
  /** Ends every running wait now (with a 503 to its client). */
  abortAll(): void;
  enter(userKey: string): WaitSlot;
}

/** A taken capacity slot. `signal` is the registry's shutdown signal (aborted by abortAll). */
export interface WaitSlot {
  readonly signal: AbortSignal;
  /** Called by abortAll while the slot is held (a plain callback: no listener object per wait). */
  onShutdown: (() => void) | undefined;
  leave(): void;
}

export function createWaitRegistry(deps: Pick<Deps, 'config' | 'events'>): WaitRegistry {
  let active = 0;
  let draining = false;
  const perUser = new Map<string, number>();
  let shutdown = new AbortController();
  const held = new Set<WaitSlot>();
  let idleWaiters: Array<() => void> = [];
  const { maxConcurrent, maxPerUser } = deps.config.wait;
  return {
    get active() { return active; },
    get draining() { return draining; },
    drain() { draining = true; },
    idle() { return active === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve)); },
    abortAll() {
      shutdown.abort();
      shutdown = new AbortController();
      for (const slot of [...held]) slot.onShutdown?.();
    },
    enter(userKey) {
      if (draining) { deps.events.emit('wait.rejected', { reason: 'draining' }); throw new UnavailableError('The server is shutting down; try again.', 5); }
      if (active >= maxConcurrent) { deps.events.emit('wait.rejected', { reason: 'capacity' }); throw new UnavailableError('Too many logins are waiting for an answer; try again shortly.', 5); }
      const mine = perUser.get(userKey) ?? 0;
      if (mine >= maxPerUser) { deps.events.emit('wait.rejected', { reason: 'per_user' }); throw new UnavailableError('Too many logins of this user are waiting for an answer.', 10); }
      active++;
      perUser.set(userKey, mine + 1);
      let left = false;
      const slot: WaitSlot = {
        signal: shutdown.signal,
        onShutdown: undefined,
        leave() {
          if (left) return;
          left = true;
          held.delete(slot);
          active--;
          const n = (perUser.get(userKey) ?? 1) - 1;
          if (n <= 0) perUser.delete(userKey); else perUser.set(userKey, n);
          if (active === 0) { const w = idleWaiters; idleWaiters = []; for (const f of w) f(); }
        },
      };
      held.add(slot);
      return slot;
    },
  };
}

/** The wait in seconds configured for these push tokens (the largest), or 0. */
export function waitSeconds(deps: Deps, tokens: readonly TokenRecord[], rp: RequestPolicies): number {
  let max = 0;
  for (const type of new Set(tokens.map((t) => t.type))) {
    const name = `${type}_wait`;
    if (!deps.policies.actions.has(name) && ![...deps.policies.actions.values()].some((a) => a.name === name)) continue;
    const v = rp.action<number>(name, 'authentication');
    if (typeof v === 'number' && v > max) max = v;
  }
  return max;
}

/** What a running wait keeps: a few fields per token, not the records (no decrypted keys held for the wait). */
export interface WaitToken { readonly id: number; readonly serial: string; readonly type: string; readonly otpLen: number; readonly failCount: number; readonly maxFail: number }

/** A started wait: challenges stored and sent, a capacity slot taken. Hand it to finishWait (which releases the slot). */
export interface WaitPlan {
  readonly kind: 'wait';
  readonly transactionId: string;
  readonly tokens: readonly WaitToken[];
  readonly started: number;
  readonly deadline: number;
  readonly policies: readonly string[];
  readonly slot: WaitSlot;
}

/**
 * Starts a wait for out-of-band tokens whose PIN matched: takes a capacity slot (503 when full), stores and sends
 * the challenges. Returns null when no wait policy applies (the caller answers with a normal CHALLENGE).
 * Split from finishWait so that nothing of the request's token-list decision stays reachable while it waits.
 */
export async function startWait(deps: Deps, tokens: readonly TokenRecord[], rp: RequestPolicies, user: UserInfo | null): Promise<WaitPlan | null> {
  const seconds = waitSeconds(deps, tokens, rp);
  if (seconds <= 0) return null;
  const slot = deps.waits.enter(user ? `${user.name}@${user.realm}` : `serial:${tokens[0]?.serial}`);
  try {
    const started = deps.clock.now();
    const challenges = await createChallenges(deps, tokens, rp);
    const transactionId = challenges[0]!.transactionId;
    deps.events.emit('wait.started', { transactionId });
    return {
      kind: 'wait', transactionId, started, deadline: started + seconds * 1000, policies: rp.matched(), slot,
      tokens: tokens.map((t) => ({ id: t.id, serial: t.serial, type: t.type, otpLen: t.otpLen, failCount: t.failCount, maxFail: t.maxFail })),
    };
  } catch (err) {
    slot.leave();
    throw err;
  }
}

/** Waits for the phone's answer (or decline, timeout, disconnect, shutdown) and settles the transaction once. */
export async function finishWait(deps: Deps, plan: WaitPlan, onGone?: (fn: () => void) => () => void): Promise<Outcome> {
  const { transactionId, tokens, started, deadline, slot } = plan;
  // Why the wait was cut short, if it was; `current` is the registered waiter to cancel then.
  let stopped: 'disconnect' | 'shutdown' | null = slot.signal.aborted ? 'shutdown' : null;
  let current: { cancel(): void } | null = null;
  const halt = (why: 'disconnect' | 'shutdown') => { stopped ??= why; current?.cancel(); };
  slot.onShutdown = () => halt('shutdown');
  const forget = onGone?.(() => halt('disconnect'));
  try {
    const answered = (o: Outcome): Outcome => {
      deps.events.emit('wait.finished', { transactionId, result: o.kind === 'accept' ? 'accept' : 'decline', wakeMs: deps.clock.now() - started });
      return o;
    };
    for (;;) {
      let r: WaitResult = 'aborted';
      if (!stopped) {
        // Register before reading, so an answer that lands between the read and the wait is not missed.
        const waiter = deps.answers.wait(transactionId, Math.max(0, Math.min(deadline - deps.clock.now(), deps.config.wait.safetyRereadMs)));
        current = waiter;
        const decided = await decide(deps, plan);
        if (decided) {
          waiter.cancel();
          return answered(decided);
        }
        r = await waiter.promise;
        current = null;
      }
      if (stopped || r === 'aborted') {
        await deps.store.challenges.deleteTransaction(transactionId);
        if (stopped === 'shutdown') {
          deps.events.emit('wait.finished', { transactionId, result: 'shutdown' });
          throw new UnavailableError('The server is shutting down; the login was not completed.', 5);
        }
        deps.events.emit('wait.finished', { transactionId, result: 'disconnect' });
        return { kind: 'reject', message: 'The client went away.', serials: tokens.map((t) => t.serial), policies: plan.policies };
      }
      if (r === 'timeout' && deps.clock.now() >= deadline) {
        const last = await decide(deps, plan);
        if (last) return answered(last); // an answer whose notification was missed still wins at the deadline
        await deps.store.challenges.deleteTransaction(transactionId);
        const counts = await deps.store.tokens.incrementFailCount(tokens.map((t) => t.id), deps.clock.now());
        for (const t of tokens) deps.events.emit('token.fail_counter', { serial: t.serial, failCount: counts.get(t.id) ?? t.failCount, maxFail: t.maxFail });
        deps.events.emit('wait.finished', { transactionId, result: 'timeout' });
        const single = tokens.length === 1 ? tokens[0] : undefined;
        return { kind: 'reject', message: 'wrong otp value', serial: single?.serial, type: single?.type, otpLen: single?.otpLen, serials: tokens.map((t) => t.serial), policies: plan.policies };
      }
    }
  } finally {
    forget?.();
    slot.onShutdown = undefined;
    slot.leave();
  }
}

/** Reads the transaction: accepted → consume it once and ACCEPT; declined → DECLINED; else null. */
async function decide(deps: Deps, plan: WaitPlan): Promise<Outcome | null> {
  const { transactionId, tokens, policies } = plan;
  const rows = await deps.store.challenges.byTransaction(transactionId);
  const now = deps.clock.now();
  const status = transactionStatus(rows, now);
  if (status === 'pending') return null;
  const byId = new Map(tokens.map((t) => [t.id, t]));
  if (status === 'declined') {
    const row = rows.find((r) => r.status === 'declined')!;
    await deps.store.challenges.deleteTransaction(transactionId);
    const token = tokens.find((t) => t.serial === row.serial);
    return { kind: 'declined', message: 'The challenge was declined.', serial: row.serial, type: token?.type, serials: [row.serial], policies };
  }
  for (const row of rows.filter((r) => r.status === 'accepted')) {
    const token = tokens.find((t) => t.serial === row.serial) ?? [...byId.values()][0]!;
    if (!await deps.store.challenges.consume(row.id, 'accepted', now)) continue;
    await deps.store.challenges.deleteTransaction(transactionId);
    if (!await deps.store.tokens.recordSuccess(token.id, null, now)) {
      return { kind: 'reject', message: `matching 1 tokens, Failcounter exceeded`, serial: token.serial, type: token.type, serials: [token.serial], policies };
    }
    return { kind: 'accept', message: 'matching 1 tokens', serial: token.serial, type: token.type, otpLen: token.otpLen, serials: [token.serial], policies };
  }
  return null;
}
