/**
 * Typed domain events. Business code emits; the log writer, the audit and the metrics subscribe.
 * Emitting never throws into the emitter: a failing subscriber is reported as `events.subscriber_failed`.
 */
export interface EventMap {
  'server.started': { host: string; port: number; database: string };
  'server.stopping': { reason: string };
  /** The last line of a server: everything is closed. */
  'server.stopped': { reason: string };
  'config.warning': { message: string };
  'policies.reloaded': { count: number };
  'policies.reload_failed': { error: string };
  /** An audit row could not be written (see server/respond.ts writeAudit); `error` is the database's message. */
  'audit.write_failed': { action: string; outcome: string; error: string; code?: string };
  /**
   * A request answered with an error envelope. `error`: the message (the cause's for a 5xx); `errorCode`: the
   * cause's code (ECONNREFUSED, 23505, …); `database`: which database failed (a -600; never its password); `stack`
   * only goes to the log at debug.
   */
  'request.failed': {
    method: string;
    path: string;
    status: number;
    code: number;
    error: string;
    errorCode?: string;
    database?: string;
    stack?: string;
  };
  /** A request came in (path without the query string: it may hold the pass; `peer`: the TCP peer's address). */
  'request.started': { method: string; path: string; peer: string };
  /**
   * A request's response ended (`aborted`: the client went away first); `ms` from the first byte of the frame;
   * `route`: the router's pattern (`unmatched` when none), never the raw URL (a bounded metrics label).
   */
  'request.finished': { method: string; path: string; route: string; status: number; ms: number; aborted?: boolean };
  /** The policies of one scope that apply to a request (resolved once per scope and request). */
  'policy.matched': { scope: string; user?: string; realm?: string; client?: string; policies: string[] };
  /** An administrator's POST /auth: who, from where, and why it failed (never the password). */
  'admin.login': { username: string; client: string; success: boolean; reason?: 'unknown_admin' | 'wrong_password' };
  'check.result': {
    user?: string;
    realm?: string;
    serials: string[];
    outcome: string;
    message: string;
    policies: string[];
    transactionId?: string;
    /** The end user's address (the peer, or named by a trusted proxy). */
    client: string;
    /** A CHALLENGE that is this address's open push login again (its pass repeated): no new push was sent. */
    reused?: true;
  };
  'token.fail_counter': { serial: string; failCount: number; maxFail: number };
  'token.locked': { serial: string };
  'token.enrolled': { serial: string; type: string; user?: string; realm?: string };
  /**
   * Enrollment during login (enroll_via_multichallenge): a user without a token passed the password check and got
   * an enrollment challenge for a new token (`replaced`: this user's earlier unfinished ones, deleted).
   */
  'enrollment.login_started': { serial: string; type: string; user: string; realm: string; transactionId: string; replaced: string[] };
  /** The login of an enrollment during login finished: the token is enrolled and the user logged in with it. */
  'enrollment.login_completed': { serial: string; type: string; transactionId: string };
  'token.stale_device': { serial: string; reason: string };
  /** A v2 device completed its enrollment (docs/device-protocol.md). */
  'device.enrolled': { serial: string; keyType: string; authMode: string };
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
  'throttle.refused': {
    limit: 'user' | 'address' | 'challenges' | 'push_user' | 'push_address' | 'push_open' | 'push_locked';
    key: string;
    retryAfterSeconds: number;
  };
  /** "This wasn't me": the phone declined a push login (server/auth/push_fatigue.ts); `client` is the login's end-user address. */
  'push.declined': {
    serial: string;
    transactionId: string;
    user?: string;
    realm?: string;
    client?: string;
    at: number;
    /** The app's decline reason (privacyIDEA's newer apps), when it sent one. */
    reason?: string;
    declinesInRow: number;
  };
  /** An open push login expired without an answer (noticed at the user's next trigger). */
  'push.unanswered': { subject: string; client?: string; transactionId: string };
  /** A repeated trigger from the same address got its open push login again (no new push). */
  'push.reused': { subject: string; client: string; transactionId: string };
  /** push_decline_lock locked the user's push logins. */
  'push.locked': { subject: string; serial: string; declines: number };
  /** An administrator cleared a user's push back-off and lock (`pushgate token unblock`). */
  'push.unblocked': { subject: string; backoff: number; logins: number };
  /** A readiness check (GET /readyz) failed or timed out; `error` is the full reason (the reply carries a short one). */
  'readiness.failed': { check: string; ms: number; error: string };
  /** An LDAP server of a realm did not answer (refused, timed out, TLS): it is skipped for `retrySeconds` (failover). */
  'ldap.server_down': { realm: string; url: string; error: string; retrySeconds: number };
  /** An LDAP server that had failed answers again. */
  'ldap.server_up': { realm: string; url: string };
  /**
   * The directory answered an LDAP error that is not a wrong password: the service account refused, a search refused
   * (wrong base DN, no access), a login name matching several entries, a user's bind refused for another reason.
   */
  'ldap.refused': { realm: string; operation: 'service_bind' | 'search' | 'bind'; error: string };
  /** A signed request was refused (server/auth/app_signature.ts); `reason` is for the operator only, never the client. */
  'app.auth_failed': {
    app: string;
    reason: 'unsigned' | 'malformed' | 'unknown_app' | 'disabled' | 'signature' | 'skew' | 'replay' | 'unsigned_body';
  };
  /** An administrator changed an application (`pushgate app …`). */
  'app.changed': { name: string; action: 'add' | 'rotate-secret' | 'disable' | 'enable' | 'delete' | 'webhook' };
  /** An application's push went out (a push API call or a step of an approval chain). */
  'app.push_sent': { application: string; pushId: string; transactionId: string; approvalId?: string };
  /** An application's push was decided, once (the conditional update's winner); `ms`: time to answer. */
  'app.push_settled': {
    application: string;
    pushId: string;
    status: 'approved' | 'declined' | 'expired' | 'withdrawn';
    ms?: number;
    approvalId?: string;
  };
  /** An approval chain ended, once. */
  'approval.completed': { application: string; approvalId: string; status: 'approved' | 'declined' | 'expired' };
  /** A webhook event was written to the outbox (wakes this node's dispatcher). */
  'webhook.queued': { appId: string; webhookEvent: string; eventId: string };
  /** One delivery attempt of a webhook event; `final`: no further attempt (delivered, or given up). */
  'webhook.attempted': {
    application: string;
    /** The webhook's event name (`event` is the log line's own field). */
    webhookEvent: string;
    eventId: string;
    attempt: number;
    ok: boolean;
    status?: number;
    error?: string;
    ms: number;
    final: boolean;
  };
  /** What one cleanup run (server/store/cleanup.ts runCleanup, `db cleanup`) deleted, by kind of row. */
  'cleanup.ran': {
    challenges: number;
    tokens: number;
    audit: number;
    loginAddresses: number;
    /** Push back-off rows (server/auth/push_fatigue.ts) without a strike for PUSH_BACKOFF_FORGET_MS and without a lock. */
    pushBackoff: number;
    /** Self-service sessions past their idle, absolute or login timeout. */
    selfserviceSessions: number;
    /** Nonces of signed requests past the replay window (server/auth/app_signature.ts). */
    nonces: number;
    /** Webhook outbox rows delivered or given up more than WEBHOOK_RETENTION_DAYS ago, with their attempts. */
    webhooks: number;
  };
  /**
   * A step of a self-service login (server/auth/selfservice.ts): `password` right or wrong, the second factor's
   * outcome, a password-only login by the first-enrollment policy, a logout.
   */
  'selfservice.login': {
    user: string;
    realm: string;
    step: 'password' | 'second_factor' | 'first_enrollment' | 'logout';
    outcome: string;
  };
  /** A self-service action on the user's own token (enroll, verify, rename, remove). */
  'selfservice.action': { user: string; realm: string; action: string; serial: string };
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
