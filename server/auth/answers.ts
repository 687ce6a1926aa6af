/**
 * AnswerBus: wakes requests waiting for a phone's answer (push_wait / edupush_wait).
 * In one process a waiter is only a pending promise in a Map — no thread, no polling loop. Across processes a
 * transport carries the transaction id (PostgreSQL LISTEN/NOTIFY or Redis pub/sub). A wake-up is only a hint:
 * the waiter re-reads its challenge rows; a slow safety-net re-read covers a lost notification.
 */
import type { Clock } from '../clock.ts';

export type WaitResult = 'notified' | 'timeout' | 'aborted';

export interface AnswerBus {
  /** Resolves when `notify(transactionId)` is called here or on another node, after `timeoutMs`, or on abort. */
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
  return {
    get waiting() { return count; },
    async start() { if (transport) await transport.start(wakeLocal); },
    waitFor(transactionId, { timeoutMs, signal }) {
      if (signal?.aborted) return Promise.resolve('aborted');
      return new Promise<WaitResult>((resolve) => {
        let set = waiters.get(transactionId);
        if (!set) { set = new Set(); waiters.set(transactionId, set); }
        count++;
        const finish = (r: WaitResult) => {
          cancelTimer();
          signal?.removeEventListener('abort', onAbort);
          const s = waiters.get(transactionId);
          if (s) { s.delete(finish); if (!s.size) waiters.delete(transactionId); }
          count--;
          resolve(r);
        };
        const onAbort = () => finish('aborted');
        const cancelTimer = clock.schedule(timeoutMs, () => finish('timeout'));
        signal?.addEventListener('abort', onAbort, { once: true });
        set.add(finish);
      });
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
}
