/**
 * The PIN limiter: at most `max` tasks run at once; the rest wait in a bounded, fair queue.
 *
 * - Fair: one FIFO queue per key (a user, an admin name), and the keys are served in rotation (round robin). A key
 *   that floods only lengthens its own queue: any other key's job is started within the next `max` free slots,
 *   however many jobs the flooder has queued. The key is the user (with the end-user address when a trusted proxy
 *   names it: server/auth/check.ts pinJobOf), never the peer address alone, because every login of an institution
 *   may come from one IdP address.
 * - Bounded: at most `maxQueue` jobs wait in all, at most `maxQueuePerKey` of them for one key, and none longer than
 *   `maxWaitMs`. Beyond that a job is refused at once (UnavailableError, HTTP 503 with Retry-After) and never runs.
 *   Refused at once, too: a job that could not be started within `maxWaitMs` anyway, judged by the jobs already
 *   waiting and the measured time of a task (a moving average of the last tasks' durations on the clock; 50 ms
 *   assumed until the first one ends). So the queue's length follows what the hasher really does: a burst of 64
 *   logins is served when a check takes 1–30 ms, and refused early only as far as the deadline would refuse it late.
 *   The per-key bound keeps a single flooding key from filling the whole queue: its extra jobs are refused while
 *   other keys still find room.
 * - Work without a job (CLI, an authenticated admin's enrollment or PIN change) has no client that gives up and
 *   no flood to fear: it takes its turns under one internal key, is never refused and never expires, and does not
 *   count against `maxQueue`.
 * - Honest about departed clients: a job whose AbortSignal fires while it waits leaves the queue without running
 *   (ClientGoneError); a job whose signal has fired before it gets a slot never runs either.
 * Time comes from the injected clock (the deadline is a clock timer, and re-checked when a job is dequeued).
 */
import type { Clock } from '../../core/clock.ts';
import { ClientGoneError, UnavailableError } from '../../core/errors.ts';

/** Who a job is for, and whether its client is still there. */
export interface QueueJob {
  /** The fairness key: jobs of one key run in FIFO order, keys take turns. */
  readonly key: string;
  /** Aborted when the client went away: the job is dropped before it runs. */
  readonly signal?: AbortSignal;
}

export type RejectReason = 'queue_full' | 'key_full' | 'deadline' | 'client_gone';

export interface LimiterOptions {
  readonly max: number;
  readonly maxQueue: number;
  readonly maxQueuePerKey: number;
  readonly maxWaitMs: number;
  readonly clock: Clock;
  /** Told about every job that was refused or dropped (for events and metrics). */
  readonly onReject?: (reason: RejectReason, key: string) => void;
  /** Told when a client's job (one with a QueueJob) gets its slot, with how long it waited (for events and metrics). */
  readonly onStart?: (waitedMs: number, key: string) => void;
  /** What the jobs are, in refusals: `checking PINs` / `PIN checks` by default. */
  readonly noun?: { readonly doing: string; readonly jobs: string };
}

/** A task's assumed duration (ms) until one has been measured: argon2id at the OWASP parameters on a slow core. */
export const ASSUMED_TASK_MS = 50;
/** Weight of the newest task in the moving average of task durations. */
const TASK_MS_WEIGHT = 0.2;

/** The key of work that names no job (CLI, enrollment): one shared internal key, unbounded. */
export const INTERNAL_KEY = '-';

interface Waiter {
  readonly key: string;
  readonly enqueuedAt: number;
  /** A client's job (bounded, with a deadline), not internal work. */
  readonly bounded: boolean;
  /** The slot is ours (already counted in `running`). */
  readonly start: () => void;
  readonly fail: (reason: RejectReason) => void;
}

export class Limiter {
  private running = 0;
  private queued = 0;
  /** Of `queued`, the internal work (not counted against maxQueue). */
  private internal = 0;
  /** Per-key FIFO queues; the Map's insertion order is the rotation (a served key moves to the back). */
  private readonly queues = new Map<string, Waiter[]>();
  readonly max: number;
  readonly maxQueue: number;
  readonly maxQueuePerKey: number;
  readonly maxWaitMs: number;
  private readonly clock: Clock;
  private readonly onReject: (reason: RejectReason, key: string) => void;
  private readonly onStart: (waitedMs: number, key: string) => void;
  /** Moving average of task durations (ms), measured on the clock. */
  private meanTaskMs = ASSUMED_TASK_MS;
  private readonly noun: { readonly doing: string; readonly jobs: string };

  constructor(o: LimiterOptions) {
    this.max = o.max;
    this.maxQueue = o.maxQueue;
    this.maxQueuePerKey = o.maxQueuePerKey;
    this.maxWaitMs = o.maxWaitMs;
    this.clock = o.clock;
    this.onReject = o.onReject ?? (() => {});
    this.onStart = o.onStart ?? (() => {});
    this.noun = o.noun ?? { doing: 'checking PINs', jobs: 'PIN checks' };
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }
  /** Jobs waiting, all keys together. */
  get waiting(): number {
    return this.queued;
  }
  /** Keys with at least one waiting job. */
  get waitingKeys(): number {
    return this.queues.size;
  }
  /** The longest queue of one key. */
  get longestKeyQueue(): number {
    let n = 0;
    for (const q of this.queues.values()) n = Math.max(n, q.length);
    return n;
  }
  /** Jobs of `key` waiting. */
  waitingFor(key: string): number {
    return this.queues.get(key)?.length ?? 0;
  }

  /** The moving average of task durations (ms) the early refusal works with. */
  get taskMs(): number {
    return this.meanTaskMs;
  }

  /** Whether one more bounded job would wait longer than maxWaitMs: the bounded jobs ahead of it, `max` at a time. */
  private wouldMissDeadline(): boolean {
    const ahead = this.queued - this.internal;
    return ((ahead + 1) / this.max) * this.meanTaskMs > this.maxWaitMs;
  }

  /** Seconds a refused client is told to wait before it tries again. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.maxWaitMs / 1000));
  }

  /**
   * Runs `task` when a slot is free and it is this key's turn; rejects (without running it) when refused. Without a
   * job it is internal work: never refused, no deadline.
   */
  async run<T>(task: () => Promise<T>, job?: QueueJob): Promise<T> {
    const key = job?.key ?? INTERNAL_KEY;
    const signal = job?.signal;
    if (signal?.aborted) throw this.refuse('client_gone', key);
    if (this.running < this.max && this.queued === 0) {
      this.running++;
      if (job) this.onStart(0, key);
    } else {
      if (job) {
        if (this.queued - this.internal >= this.maxQueue) throw this.refuse('queue_full', key);
        if (this.waitingFor(key) >= this.maxQueuePerKey) throw this.refuse('key_full', key);
        if (this.wouldMissDeadline()) throw this.refuse('queue_full', key);
      }
      await this.enqueue(key, !!job, signal);
    }
    const started = this.clock.now();
    try {
      return await task();
    } finally {
      const took = Math.max(0, this.clock.now() - started);
      this.meanTaskMs += TASK_MS_WEIGHT * (took - this.meanTaskMs);
      this.running--;
      this.dispatch();
    }
  }

  /** Waits until `dispatch` hands this job a slot (resolves) or the job is refused or dropped (rejects). */
  private enqueue(key: string, bounded: boolean, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const cleanup = () => {
        settled = true;
        cancelDeadline();
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        key,
        bounded,
        enqueuedAt: this.clock.now(),
        start: () => {
          cleanup();
          resolve();
        },
        fail: (reason) => {
          cleanup();
          reject(this.refuse(reason, key));
        },
      };
      // A job leaving before its turn: out of its queue, then refused.
      const leave = (reason: RejectReason) => {
        if (settled) return;
        this.remove(waiter);
        waiter.fail(reason);
      };
      const onAbort = () => leave('client_gone');
      const cancelDeadline = bounded ? this.clock.schedule(this.maxWaitMs, () => leave('deadline')) : () => {};
      signal?.addEventListener('abort', onAbort, { once: true });
      let q = this.queues.get(key);
      if (!q) {
        q = [];
        this.queues.set(key, q);
      }
      q.push(waiter);
      this.queued++;
      if (!bounded) this.internal++;
      this.dispatch(); // a slot may be free while others wait (never normally: a freed slot is handed on at once)
    });
  }

  private remove(w: Waiter): void {
    const q = this.queues.get(w.key);
    const i = q ? q.indexOf(w) : -1;
    if (!q || i < 0) return;
    q.splice(i, 1);
    this.queued--;
    if (!w.bounded) this.internal--;
    if (!q.length) this.queues.delete(w.key);
  }

  /** Hands free slots to waiting jobs: the first key in the rotation gives its oldest job, then goes to the back. */
  private dispatch(): void {
    while (this.running < this.max && this.queued > 0) {
      const first = this.queues.entries().next().value!;
      const [key, q] = first;
      const w = q.shift()!;
      this.queued--;
      if (!w.bounded) this.internal--;
      this.queues.delete(key);
      if (q.length) this.queues.set(key, q);
      if (w.bounded && this.clock.now() - w.enqueuedAt >= this.maxWaitMs) {
        w.fail('deadline');
        continue;
      } // its timer is late
      this.running++;
      if (w.bounded) this.onStart(this.clock.now() - w.enqueuedAt, w.key);
      w.start();
    }
  }

  private refuse(reason: RejectReason, key: string): Error {
    this.onReject(reason, key);
    if (reason === 'client_gone') return new ClientGoneError();
    const message =
      reason === 'deadline'
        ? `The server is too busy ${this.noun.doing}; try again later.`
        : reason === 'key_full'
          ? `Too many ${this.noun.jobs} of this user are waiting; try again later.`
          : `Too many ${this.noun.jobs} are waiting; try again later.`;
    return new UnavailableError(message, this.retryAfterSeconds);
  }
}
