/**
 * Wait mode (policies `edupush_wait` / `push_wait`): /validate/check sends the push and answers in the same request
 * once the phone has answered. The request holds no thread: it awaits the AnswerBus, re-reading its challenge
 * rows only when woken (or at the slow safety-net interval). A decline ends the wait at once; when the user has
 * several push tokens all get the push and the first answer wins; a disconnect frees the waiter immediately;
 * a timeout is REJECT and counts as a failed attempt. Capacity limits answer 503 + Retry-After, never queue.
 */
import type { Deps } from '../deps.ts';
import type { Config } from '../config.ts';
import type { PolicyDef } from '../../policies/types.ts';
import type { TokenRegistry } from '../../tokens/index.ts';
import { UnavailableError } from '../../core/errors.ts';
import type { RequestInfo } from '../../core/request_scope.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import type { RequestPolicies } from './context.ts';
import { createChallenges, transactionStatus } from './challenges.ts';
import { DECLINED_MESSAGE, type ChallengeOut, type Outcome } from './outcome.ts';
import type { AnswerListener } from './answers.ts';
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

/** Whoever runs the wait of a slot: told when the server shuts down while the slot is held. */
export interface WaitHolder {
  shutdown(): void;
}

/** A taken capacity slot. */
export interface WaitSlot {
  /** abortAll ran while the slot was held, before a holder was set (the holder must not start waiting). */
  readonly aborted: boolean;
  /** Told by abortAll (a plain object reference: no listener or signal per wait). */
  holder: WaitHolder | undefined;
  leave(): void;
}

class Slot implements WaitSlot {
  aborted = false;
  holder: WaitHolder | undefined = undefined;
  private left = false;
  readonly userKey: string;
  private readonly release: (slot: Slot) => void;
  constructor(userKey: string, release: (slot: Slot) => void) {
    this.userKey = userKey;
    this.release = release;
  }
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.release(this);
  }
}

export function createWaitRegistry(deps: Pick<Deps, 'config' | 'events'>): WaitRegistry {
  let active = 0;
  let draining = false;
  const perUser = new Map<string, number>();
  const held = new Set<Slot>();
  let idleWaiters: Array<() => void> = [];
  const { maxConcurrent, maxPerUser } = deps.config.wait;
  const release = (slot: Slot) => {
    held.delete(slot);
    active--;
    const n = (perUser.get(slot.userKey) ?? 1) - 1;
    if (n <= 0) perUser.delete(slot.userKey);
    else perUser.set(slot.userKey, n);
    if (active === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };
  return {
    get active() {
      return active;
    },
    get draining() {
      return draining;
    },
    drain() {
      draining = true;
    },
    idle() {
      return active === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
    },
    abortAll() {
      for (const slot of [...held]) {
        slot.aborted = true;
        slot.holder?.shutdown();
      }
    },
    enter(userKey) {
      if (draining) {
        deps.events.emit('wait.rejected', { reason: 'draining' });
        throw new UnavailableError('The server is shutting down; try again.', 5);
      }
      if (active >= maxConcurrent) {
        deps.events.emit('wait.rejected', { reason: 'capacity' });
        throw new UnavailableError('Too many logins are waiting for an answer; try again shortly.', 5);
      }
      const mine = perUser.get(userKey) ?? 0;
      if (mine >= maxPerUser) {
        deps.events.emit('wait.rejected', { reason: 'per_user' });
        throw new UnavailableError('Too many logins of this user are waiting for an answer.', 10);
      }
      active++;
      perUser.set(userKey, mine + 1);
      const slot = new Slot(userKey, release);
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

/**
 * Configuration that makes a wait policy useless, as warnings (the server still runs). pushgate itself never cuts a
 * wait short (no request timeout: server/main.ts `listen`); the challenge's validity does — after it the phone's
 * answer is refused, so the rest of a longer wait can only end in a timeout.
 */
export function waitPolicyWarnings(config: Pick<Config, 'challenge'>, policies: readonly PolicyDef[], registry: TokenRegistry): string[] {
  const out: string[] = [];
  for (const p of policies) {
    if (!p.active || p.scope !== 'authentication') continue;
    for (const type of registry.list()) {
      const seconds = p.actions[`${type.type}_wait`];
      if (typeof seconds !== 'number' || seconds <= 0) continue;
      const own = config.challenge.typeValiditySeconds[type.type];
      const validity = own ?? config.challenge.validitySeconds;
      if (seconds <= validity) continue;
      const from = own !== undefined ? `challenge.type_validity_seconds.${type.type}` : 'challenge.validity_seconds';
      out.push(
        `policy '${p.name}': ${type.type}_wait is ${seconds} s, but ${type.type} challenges are valid for ${validity} s (${from}); `
          + `the phone's answer is refused after ${validity} s, so a longer wait can only end in a timeout. `
          + `Set challenge.type_validity_seconds.${type.type} to at least ${seconds}, or lower the wait.`,
      );
    }
  }
  return out;
}

/** What a running wait keeps: a few fields per token, not the records (no decrypted keys held for the wait). */
export interface WaitToken {
  readonly id: number;
  readonly serial: string;
  readonly type: string;
  readonly otpLen: number;
  readonly failCount: number;
  readonly maxFail: number;
}

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
export async function startWait(
  deps: Deps,
  tokens: readonly TokenRecord[],
  rp: RequestPolicies,
  user: UserInfo | null,
  opts: { transactionId?: string; onCreated?: (challenges: readonly ChallengeOut[]) => Promise<void> } = {},
): Promise<WaitPlan | null> {
  const seconds = waitSeconds(deps, tokens, rp);
  if (seconds <= 0) return null;
  const slot = deps.waits.enter(user ? `${user.name}@${user.realm}` : `serial:${tokens[0]?.serial}`);
  try {
    const started = deps.clock.now();
    const challenges = await createChallenges(deps, tokens, rp, { noProofs: true, transactionId: opts.transactionId });
    await opts.onCreated?.(challenges);
    const transactionId = challenges[0]!.transactionId;
    deps.events.emit('wait.started', { transactionId });
    return {
      kind: 'wait',
      transactionId,
      started,
      deadline: started + seconds * 1000,
      policies: rp.matched(),
      slot,
      tokens: tokens.map((t) => ({
        id: t.id,
        serial: t.serial,
        type: t.type,
        otpLen: t.otpLen,
        failCount: t.failCount,
        maxFail: t.maxFail,
      })),
    };
  } catch (err) {
    slot.leave();
    throw err;
  }
}

/** The REJECT message of a wait that ended without the phone's answer (the wire: `detail.message`, free text). */
export function waitTimeoutMessage(waitedMs: number): string {
  return `no answer from the phone within ${Math.round(waitedMs / 1000)} s`;
}

/** How a wait reports its end, exactly once: an outcome, or an error (503 at shutdown, a database error). */
export type WaitDone = (err: unknown, outcome?: Outcome) => void;

/**
 * Waits for the phone's answer (or decline, timeout, disconnect, shutdown) and settles the transaction once.
 * `onGone` registers a "the client went away" callback and returns its unregistration.
 */
export function finishWait(deps: Deps, plan: WaitPlan, onGone: ((fn: () => void) => () => void) | undefined, done: WaitDone): void {
  new PendingWait(deps, plan, done).start(onGone); // never throws: every failure goes to `done`
}

type Stop = 'disconnect' | 'shutdown';

/**
 * One waiting login: an AnswerListener and a WaitHolder, driven by callbacks (a notification, its timer, the
 * client's disconnect, shutdown) — no suspended async frame, promise chain or closure per step while it waits.
 * The transaction is read when the wait starts (after the listener is registered, so no answer is missed), on
 * every notification, at every safety-net interval and at the deadline; reads never overlap (a notification
 * during a read asks for one more).
 */
class PendingWait implements AnswerListener, WaitHolder {
  readonly transactionId: string;
  private state: 'waiting' | 'reading' | 'ending' = 'waiting';
  private again = false;
  /** A notification came since the last read started. */
  private woken = false;
  private expired = false;
  private stopped: Stop | null = null;
  private reported = false;
  private cancelTimer: (() => void) | null = null;
  private forgetGone: (() => void) | undefined = undefined;
  private readonly deps: Deps;
  private readonly plan: WaitPlan;
  private readonly done: WaitDone;
  /**
   * The waiting login's request: a wake-up comes from elsewhere (the phone's request, another node, a timer, the
   * client's disconnect), and what it leads to — events, the answer, the audit row — belongs to this request.
   */
  private readonly request: RequestInfo | undefined;

  constructor(deps: Deps, plan: WaitPlan, done: WaitDone) {
    this.deps = deps;
    this.plan = plan;
    this.done = done;
    this.transactionId = plan.transactionId;
    this.request = deps.scope.current();
  }

  /** Runs `fn` in the waiting login's request scope. */
  private inScope(fn: () => void): void {
    this.deps.scope.run(this.request, fn);
  }

  start(onGone: ((fn: () => void) => () => void) | undefined): void {
    try {
      const { slot } = this.plan;
      slot.holder = this;
      this.deps.answers.listen(this);
      this.arm();
      this.forgetGone = onGone?.(() => this.inScope(() => this.stop('disconnect')));
      if (slot.aborted) this.stop('shutdown');
      else if (this.state === 'waiting') this.read();
    } catch (err) {
      this.end(err);
    }
  }

  onAnswer(): void {
    this.inScope(() => {
      this.woken = true;
      this.read();
    });
  }
  onBusClosed(): void {
    this.inScope(() => this.stop('shutdown'));
  }
  shutdown(): void {
    this.inScope(() => this.stop('shutdown'));
  }

  /** The safety-net re-read timer, or the deadline when that comes first. */
  private arm(): void {
    const { deps, plan } = this;
    const ms = Math.max(0, Math.min(plan.deadline - deps.clock.now(), deps.config.wait.safetyRereadMs));
    this.cancelTimer = deps.clock.schedule(ms, () => this.inScope(() => this.onTimer()));
  }

  private onTimer(): void {
    this.cancelTimer = null;
    if (this.state === 'ending') return;
    if (this.deps.clock.now() >= this.plan.deadline) this.expired = true;
    else this.arm();
    this.read();
  }

  private read(): void {
    if (this.state === 'ending' || this.stopped) return;
    if (this.state === 'reading') {
      this.again = true;
      return;
    }
    this.state = 'reading';
    this.again = false;
    const woken = this.woken;
    this.woken = false;
    decide(this.deps, this.plan, woken).then(
      (decided) => {
        this.state = 'waiting';
        if (decided) this.answered(decided);
        else if (this.stopped) this.stop(this.stopped);
        else if (this.again)
          this.read(); // woken (or the deadline came) during the read: read once more first
        else if (this.expired) this.timedOut();
      },
      (err: unknown) => this.end(err),
    );
  }

  /** Disconnect or shutdown: the rows go (no later answer can use them), then the client hears why. */
  private stop(why: Stop): void {
    this.stopped ??= why;
    if (this.state !== 'waiting') return; // a running read finishes first (and wins if it found an answer)
    this.state = 'ending';
    const { deps, transactionId, plan } = this;
    deps.store.challenges.deleteTransaction(transactionId).then(
      () => {
        deps.events.emit('wait.finished', { transactionId, result: this.stopped!, ms: deps.clock.now() - plan.started });
        if (this.stopped === 'shutdown') this.end(new UnavailableError('The server is shutting down; the login was not completed.', 5));
        else
          this.end(undefined, {
            kind: 'reject',
            message: 'The client went away.',
            serials: plan.tokens.map((t) => t.serial),
            policies: plan.policies,
          });
      },
      (err: unknown) => this.end(err),
    );
  }

  private answered(o: Outcome): void {
    const ms = this.deps.clock.now() - this.plan.started;
    this.deps.events.emit('wait.finished', {
      transactionId: this.transactionId,
      result: o.kind === 'accept' ? 'accept' : 'decline',
      ms,
      wakeMs: ms,
    });
    this.end(undefined, o);
  }

  /** The deadline passed without an answer (the last read found none): REJECT, and a failed attempt per token. */
  private timedOut(): void {
    this.state = 'ending';
    const { deps, transactionId, plan } = this;
    const { tokens } = plan;
    deps.store.challenges
      .deleteTransaction(transactionId)
      .then(() =>
        deps.store.tokens.incrementFailCount(
          tokens.map((t) => t.id),
          deps.clock.now(),
        ),
      )
      .then(
        (counts) => {
          for (const t of tokens)
            deps.events.emit('token.fail_counter', { serial: t.serial, failCount: counts.get(t.id) ?? t.failCount, maxFail: t.maxFail });
          deps.events.emit('wait.finished', { transactionId, result: 'timeout', ms: deps.clock.now() - plan.started });
          const single = tokens.length === 1 ? tokens[0] : undefined;
          // eduMFA says "wrong otp value" here; detail.message is free text the plugins show, so say what happened.
          this.end(undefined, {
            kind: 'reject',
            message: waitTimeoutMessage(plan.deadline - plan.started),
            serial: single?.serial,
            type: single?.type,
            otpLen: single?.otpLen,
            serials: tokens.map((t) => t.serial),
            policies: plan.policies,
          });
        },
        (err: unknown) => this.end(err),
      );
  }

  /** Releases everything the wait held, then reports (once). */
  private end(err: unknown, outcome?: Outcome): void {
    if (this.reported) return;
    this.reported = true;
    this.state = 'ending';
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.deps.answers.unlisten(this);
    this.forgetGone?.();
    this.forgetGone = undefined;
    this.plan.slot.holder = undefined;
    this.plan.slot.leave();
    this.done(err, outcome);
  }
}

/**
 * Reads the transaction: accepted → consume it once and ACCEPT; declined → DECLINED; else null.
 * `woken`: a phone has answered. With one token the likely answer, an accept, is tried first as the conditional
 * delete itself — one round trip instead of a read and a delete; a decline (or a lost race) falls back to the read.
 */
async function decide(deps: Deps, plan: WaitPlan, woken: boolean): Promise<Outcome | null> {
  const { transactionId, tokens, policies } = plan;
  if (woken && tokens.length === 1 && (await deps.store.challenges.consumeAccepted(transactionId, deps.clock.now()))) {
    return succeed(deps, plan, tokens[0]!);
  }
  const rows = await deps.store.challenges.byTransaction(transactionId);
  const now = deps.clock.now();
  const status = transactionStatus(rows, now);
  if (status === 'pending') return null;
  if (status === 'declined') {
    const row = rows.find((r) => r.status === 'declined')!;
    await deps.store.challenges.deleteTransaction(transactionId);
    const token = tokens.find((t) => t.serial === row.serial);
    return { kind: 'declined', message: DECLINED_MESSAGE, serial: row.serial, type: token?.type, serials: [row.serial], policies };
  }
  for (const row of rows.filter((r) => r.status === 'accepted')) {
    const token = tokens.find((t) => t.serial === row.serial) ?? tokens[0]!;
    if (!(await deps.store.challenges.consume(row.id, 'accepted', now))) continue;
    if (rows.length > 1) await deps.store.challenges.deleteTransaction(transactionId); // the other tokens' challenges
    return succeed(deps, plan, token);
  }
  return null;
}

/** The login is won (its challenge consumed): the token's success, unless it was locked meanwhile. */
async function succeed(deps: Deps, plan: WaitPlan, token: WaitToken): Promise<Outcome> {
  const { policies } = plan;
  if (!(await deps.store.tokens.recordSuccess(token.id, null, deps.clock.now()))) {
    return {
      kind: 'reject',
      message: `matching 1 tokens, Failcounter exceeded`,
      serial: token.serial,
      type: token.type,
      serials: [token.serial],
      policies,
    };
  }
  return {
    kind: 'accept',
    message: 'matching 1 tokens',
    serial: token.serial,
    type: token.type,
    otpLen: token.otpLen,
    serials: [token.serial],
    policies,
  };
}
