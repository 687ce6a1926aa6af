/**
 * Helpers for wait-mode tests (edupush_wait / push_wait): an abortable /validate/check, "parked" detection without
 * time (server-side state), and a TCP reachability probe for the optional PostgreSQL / Redis services.
 */
import net from 'node:net';
import type { Reply, TestWorld } from './test_app.ts';
import type { AuditRow } from '../../server/store/audit_repo.ts';
import { until } from './kit.ts';

/** POST /validate/check (form) that the caller can abort like a client that goes away. */
export function abortableCheck(w: TestWorld, params: Record<string, string>): { reply: Promise<Reply | 'aborted'>; abort(): void } {
  const ac = new AbortController();
  const reply = (async (): Promise<Reply | 'aborted'> => {
    try {
      const res = await fetch(`${w.url}/validate/check`, {
        method: 'POST',
        signal: ac.signal,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(params).toString(),
      });
      const text = await res.text();
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body, headers: res.headers, text };
    } catch (err) {
      if (ac.signal.aborted) return 'aborted';
      throw err;
    }
  })();
  return { reply, abort: () => ac.abort() };
}

/** Resolves once `n` requests of this world are parked on the answer bus (registered waiters, no timer involved). */
export async function parked(w: TestWorld, n = 1): Promise<void> {
  await until(() => w.deps.waits.active === n && w.deps.answers.waiting === n);
}

/** Transaction ids of the waits started in this world, in order. */
export function startedWaits(w: TestWorld): string[] {
  return w.seen.filter((e) => e.name === 'wait.started').map((e) => (e.payload as { transactionId: string }).transactionId);
}

/** Results of the finished waits (`wait.finished`), in order. */
export function finishedWaits(w: TestWorld): string[] {
  return w.seen.filter((e) => e.name === 'wait.finished').map((e) => (e.payload as { result: string }).result);
}

/** True when a TCP connection to host:port succeeds within `ms` (real time; only to decide whether to skip). */
export function reachable(port: number, host = '127.0.0.1', ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A free loopback port (listen(0), read, close), for servers whose port must be known before they start. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * Audit rows matching `pred`, once there are at least `n` of them: for rows whose request got no reply to wait for
 * (a client that went away), the write may still be landing. Re-reads after each audit insert that finishes (the
 * world records its store calls), so it waits for the write itself, not for a number of event-loop turns.
 */
export async function auditRowsWhen(w: TestWorld, pred: (row: AuditRow) => boolean, n = 1): Promise<AuditRow[]> {
  const inserted = () => w.storeCalls.filter((c) => c.repo === 'audit' && c.method === 'insert' && c.settled).length;
  for (;;) {
    const before = inserted();
    const rows = (await w.deps.store.audit.tail(10_000)).filter(pred);
    if (rows.length >= n) return rows;
    try {
      await until(() => inserted() > before);
    } catch {
      throw new Error(`expected ${n} matching audit rows, found ${rows.length}, and no audit insert is under way`);
    }
  }
}
