import type { Clock } from './clock.ts';
/**
 * Typed domain events. Business code emits; the log writer, the audit and the metrics subscribe.
 * Emitting never throws into the emitter: a failing subscriber is reported as `events.subscriber_failed`.
 */
export interface EventMap {
  'server.started': { host: string; port: number; database: string };
  'server.stopping': { reason: string };
  'config.warning': { message: string };
  'policies.reloaded': { count: number };
  'policies.reload_failed': { error: string };
  /** An audit row could not be written (see server/respond.ts writeAudit); `error` is the database's message. */
  'audit.write_failed': { action: string; outcome: string; error: string; code?: string };
  /** Every HTTP request once its response is finished or its connection closed: the route pattern, never the raw URL. */
  'request.finished': { method: string; route: string; status: number; ms: number };
  'request.failed': { method: string; path: string; status: number; code: number; error: string; stack?: string };
  'check.result': {
    user?: string;
    realm?: string;
    serials: string[];
    outcome: string;
    message: string;
    policies: string[];
    transactionId?: string;
  };
  'token.fail_counter': { serial: string; failCount: number; maxFail: number };
  'token.locked': { serial: string };
  'token.enrolled': { serial: string; type: string; user?: string; realm?: string };
  'token.stale_device': { serial: string; reason: string };
  /** An admin change through the admin API (assign, unassign, set, resync, revoke). */
  'token.changed': {
    serial: string;
    action: 'assign' | 'unassign' | 'set' | 'resync' | 'revoke';
    user?: string;
    realm?: string;
    keys?: string[];
  };
  'challenge.created': { serial: string; transactionId: string; type: string };
  'challenge.answered': { serial: string; transactionId: string; decision: 'accept' | 'decline' };
  /**
   * A push login asks for more than "approve" (issue 11): number matching, a login code or a presence check, and the
   * push risk reasons that made `push_matching: on_risk` apply (empty for `always` and the other proofs).
   */
  'challenge.proof': { serial: string; transactionId: string; proof: 'match' | 'login_code' | 'presence'; reasons: string[] };
  'delivery.sent': { serial: string; channel: string; ms: number };
  'delivery.failed': { serial: string; channel: string; reason: string; ms: number };
  'wait.started': { transactionId: string };
  /** `ms`: how long the wait lasted; `wakeMs` (= ms) only when the phone answered. */
  'wait.finished': {
    transactionId: string;
    result: 'accept' | 'decline' | 'timeout' | 'disconnect' | 'shutdown';
    ms: number;
    wakeMs?: number;
  };
  'wait.rejected': { reason: 'capacity' | 'per_user' | 'draining' };
  /** A PIN check refused by the PIN queue (503) or dropped because its client went away; `key` is the user/admin it was for. */
  'pin.rejected': { reason: 'queue_full' | 'key_full' | 'deadline' | 'client_gone'; key: string };
  /** A client's PIN check got its hashing slot after waiting `waitMs` in the PIN queue (0 when a slot was free). */
  'pin.started': { waitMs: number };
  /** A request refused by the back-off (server/auth/throttle.ts): which limit, the key it counted, the Retry-After. */
  'throttle.refused': { limit: 'user' | 'address' | 'challenges'; key: string; retryAfterSeconds: number };
  /** A readiness check (GET /readyz) failed or timed out; `error` is the full reason (the reply carries a short one). */
  'readiness.failed': { check: string; ms: number; error: string };
  'cleanup.ran': { challenges: number; tokens: number; audit: number; loginAddresses: number };
  'events.subscriber_failed': { event: string; error: string };
  'log': { level: 'debug' | 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown };
}
export type EventName = keyof EventMap;
type Listener<K extends EventName> = (payload: EventMap[K], name: K) => void;
type AnyListener = (name: EventName, payload: unknown) => void;

export class Events {
  private readonly listeners = new Map<EventName, Set<Listener<never>>>();
  private readonly anyListeners = new Set<AnyListener>();

  on<K extends EventName>(name: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(fn as Listener<never>);
    return () => {
      set.delete(fn as Listener<never>);
    };
  }

  onAny(fn: AnyListener): () => void {
    this.anyListeners.add(fn);
    return () => {
      this.anyListeners.delete(fn);
    };
  }

  emit<K extends EventName>(name: K, payload: EventMap[K]): void {
    const set = this.listeners.get(name);
    if (set) for (const fn of set) this.safely(name, () => (fn as Listener<K>)(payload, name));
    for (const fn of this.anyListeners) this.safely(name, () => fn(name, payload));
  }

  private safely(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (name === 'events.subscriber_failed') return;
      this.emit('events.subscriber_failed', { event: name, error: String(err) });
    }
  }
}

/** Writes every event as one JSON line (the structured log). */
export function attachJsonLog(
  events: Events,
  clock: Clock,
  write: (line: string) => void,
  opts: { quiet?: Set<EventName> } = {},
): () => void {
  return events.onAny((name, payload) => {
    if (opts.quiet?.has(name)) return;
    // One line per HTTP request (request.finished) is an access log: debug, not info.
    const level =
      name === 'log'
        ? (payload as { level: string }).level
        : name === 'request.finished'
          ? 'debug'
          : /failed|stale|locked|warning/.test(name)
            ? 'warn'
            : 'info';
    write(JSON.stringify({ time: new Date(clock.now()).toISOString(), level, event: name, ...(payload as object) }));
  });
}
