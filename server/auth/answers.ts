/**
 * AnswerBus: wakes requests waiting for a phone's answer (push_wait / edupush_wait).
 * In one process a waiting login is only a listener object in a Map — no thread, no polling loop. Across processes a
 * transport carries the transaction id (PostgreSQL LISTEN/NOTIFY or Redis pub/sub). A wake-up is only a hint:
 * the waiter re-reads its challenge rows; a slow safety-net re-read covers a lost notification.
 */
import type { Clock } from '../../core/clock.ts';

export type WaitResult = 'notified' | 'timeout' | 'aborted';

/**
 * Something waiting for the answers to one transaction: told of every notification until it stops listening.
 * An object with methods, not a closure: a waiting login registers itself (server/auth/wait.ts), nothing more.
 */
export interface AnswerListener {
  readonly transactionId: string;
  /** A phone answered (here or on another node): re-read the transaction. */
  onAnswer(): void;
  /** The bus is closing: stop waiting. */
  onBusClosed(): void;
}

export interface AnswerBus {
  /** Registers a listener until `unlisten` (a persistent registration; a notification does not remove it). */
  listen(listener: AnswerListener): void;
  unlisten(listener: AnswerListener): void;
  /** One notification or the timeout, as a promise (tools, tests); `signal` ends it with `aborted`. */
  waitFor(transactionId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<WaitResult>;
  /** Wakes local listeners and publishes to the other nodes. Call after the state change is committed. */
  notify(transactionId: string): void;
  /**
   * Calls `fn` with the key of every notification (local or from another node) before the listeners of that key are
   * woken — for a cache that must forget what a notification may have changed; not counted in `waiting`.
   * Returns the function that removes it.
   */
  observe(fn: (transactionId: string) => void): () => void;
  /** Number of registered listeners in this process. */
  readonly waiting: number;
  /** Readiness: rejects when the cross-node transport cannot carry a notification now (in-process: always fine). */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** Carries notifications between processes. `publish` must not throw; `onMessage` delivers remote ones. */
export interface BusTransport {
  readonly name: string;
  start(onMessage: (transactionId: string) => void): Promise<void>;
  publish(transactionId: string): void;
  /** A round trip on the transport's connections; rejects (with a reason) when they are down. */
  check(): Promise<void>;
  close(): Promise<void>;
}

export function createAnswerBus(
  clock: Clock,
  transport: BusTransport | null = null,
  onError: (err: unknown) => void = () => {},
): AnswerBus & { start(): Promise<void> } {
  // Almost every transaction has one listener: it is stored as is, an array only when there are more.
  const listeners = new Map<string, AnswerListener | AnswerListener[]>();
  let count = 0;
  const observers = new Set<(transactionId: string) => void>();
  const each = (entry: AnswerListener | AnswerListener[] | undefined, fn: (l: AnswerListener) => void) => {
    if (entry === undefined) return;
    if (Array.isArray(entry)) {
      for (const l of [...entry]) fn(l);
    } else fn(entry);
  };
  const wakeLocal = (transactionId: string) => {
    for (const fn of observers) fn(transactionId);
    each(listeners.get(transactionId), (l) => l.onAnswer());
  };
  const bus: AnswerBus & { start(): Promise<void> } = {
    get waiting() {
      return count;
    },
    async start() {
      if (transport) await transport.start(wakeLocal);
    },
    observe(fn) {
      observers.add(fn);
      return () => {
        observers.delete(fn);
      };
    },
    listen(l) {
      const entry = listeners.get(l.transactionId);
      if (entry === undefined) listeners.set(l.transactionId, l);
      else if (Array.isArray(entry)) {
        if (entry.includes(l)) return;
        entry.push(l);
      } else {
        if (entry === l) return;
        listeners.set(l.transactionId, [entry, l]);
      }
      count++;
    },
    unlisten(l) {
      const entry = listeners.get(l.transactionId);
      if (entry === l) {
        listeners.delete(l.transactionId);
        count--;
        return;
      }
      if (!Array.isArray(entry)) return;
      const i = entry.indexOf(l);
      if (i < 0) return;
      entry.splice(i, 1);
      count--;
      if (entry.length === 1) listeners.set(l.transactionId, entry[0]!);
    },
    waitFor(transactionId, { timeoutMs, signal }) {
      if (signal?.aborted) return Promise.resolve('aborted');
      return new Promise<WaitResult>((resolve) => {
        const finish = (r: WaitResult) => {
          cancelTimer();
          bus.unlisten(listener);
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        };
        const listener: AnswerListener = { transactionId, onAnswer: () => finish('notified'), onBusClosed: () => finish('aborted') };
        const onAbort = () => finish('aborted');
        const cancelTimer = clock.schedule(timeoutMs, () => finish('timeout'));
        signal?.addEventListener('abort', onAbort, { once: true });
        bus.listen(listener);
      });
    },
    notify(transactionId) {
      wakeLocal(transactionId);
      if (transport) {
        try {
          transport.publish(transactionId);
        } catch (err) {
          onError(err);
        }
      }
    },
    async check() {
      if (transport) await transport.check();
    },
    async close() {
      for (const entry of [...listeners.values()]) each(entry, (l) => l.onBusClosed());
      if (transport) await transport.close();
    },
  };
  return bus;
}
