/**
 * AnswerBus: wakes requests waiting for a phone's answer (push_wait / edupush_wait).
 * In one process a waiter is only a pending promise in a Map — no thread, no polling loop. Across processes a
 * transport carries the transaction id (PostgreSQL LISTEN/NOTIFY or Redis pub/sub). A wake-up is only a hint:
 * the waiter re-reads its challenge rows; a slow safety-net re-read covers a lost notification.
 */
import type { Clock } from '../clock.ts';

export type WaitResult = 'notified' | 'timeout' | 'aborted';

export interface AnswerBus {
  /**
   * Registers a waiter: `promise` resolves when `notify(transactionId)` is called here or on another node, after
   * `timeoutMs`, or with `aborted` when `cancel()` is called. No signal objects: a waiter is a closure in a Map.
   */
  wait(transactionId: string, timeoutMs: number): { promise: Promise<WaitResult>; cancel(): void };
  /** `wait` with an AbortSignal instead of `cancel`. */
  waitFor(transactionId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<WaitResult>;
  /** Wakes local waiters and publishes to the other nodes. Call after the state change is committed. */
  notify(transactionId: string): void;
  /** Number of pending waits in this process. */
  readonly waiting: number;
  close(): Promise<void>;
}

/** Carries notifications between processes. `publish` must not throw; `onMessage` delivers remote ones. */
export interface BusTransport {
  readonly name: string;
  start(onMessage: (transactionId: string) => void): Promise<void>;
  publish(transactionId: string): void;
  close(): Promise<void>;
}

export function createAnswerBus(clock: Clock, transport: BusTransport | null = null, onError: (err: unknown) => void = () => {}): AnswerBus & { start(): Promise<void> } {
  const waiters = new Map<string, Set<(r: WaitResult) => void>>();
  let count = 0;
  const wakeLocal = (transactionId: string) => {
    const set = waiters.get(transactionId);
    if (!set) return;
    waiters.delete(transactionId);
    for (const resolve of set) resolve('notified');
  };
  const bus: AnswerBus & { start(): Promise<void> } = {
    get waiting() { return count; },
    async start() { if (transport) await transport.start(wakeLocal); },
    wait(transactionId, timeoutMs) {
      let finish!: (r: WaitResult) => void;
      const promise = new Promise<WaitResult>((resolve) => {
        let set = waiters.get(transactionId);
        if (!set) { set = new Set(); waiters.set(transactionId, set); }
        count++;
        let done = false;
        finish = (r: WaitResult) => {
          if (done) return;
          done = true;
          cancelTimer();
          const s = waiters.get(transactionId);
          if (s) { s.delete(finish); if (!s.size) waiters.delete(transactionId); }
          count--;
          resolve(r);
        };
        const cancelTimer = clock.schedule(timeoutMs, () => finish('timeout'));
        set.add(finish);
      });
      return { promise, cancel: () => finish('aborted') };
    },
    waitFor(transactionId, { timeoutMs, signal }) {
      if (signal?.aborted) return Promise.resolve('aborted');
      const w = bus.wait(transactionId, timeoutMs);
      if (!signal) return w.promise;
      const onAbort = () => w.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      return w.promise.finally(() => signal.removeEventListener('abort', onAbort));
    },
    notify(transactionId) {
      wakeLocal(transactionId);
      if (transport) {
        try { transport.publish(transactionId); } catch (err) { onError(err); }
      }
    },
    async close() {
      for (const [tid] of waiters) {
        const set = waiters.get(tid);
        waiters.delete(tid);
        for (const finish of set ?? []) finish('aborted');
      }
      if (transport) await transport.close();
    },
  };
  return bus;
}
