/**
 * Readiness (GET /readyz): may a load balancer send this node traffic now? A list of named checks — the database,
 * the answer bus, and whatever is added later (LDAP) — run side by side, each bounded by a timeout on the injected
 * clock, so a hung database makes the node "not ready" within the timeout instead of hanging the probe.
 * The reply names each check's result and time; a failure's reason in the reply is short (the endpoint needs no
 * login, and a driver's message may name internal hosts), its full text goes to the `readiness.failed` event.
 */
import type { Clock } from '../core/clock.ts';
import type { Events } from '../core/events.ts';
import { MfaError } from '../core/errors.ts';

export interface ReadinessCheck {
  /** The name in the reply (`database`, `answer_bus`, `ldap`, …). */
  readonly name: string;
  /** Resolves when the dependency works now; rejects (or outlasts the timeout) when it does not. */
  run(): Promise<void>;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
}
export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Record<string, CheckReport>;
}

export interface Readiness {
  /** Adds a check (a name may be used once). */
  add(check: ReadinessCheck): void;
  readonly names: readonly string[];
  run(): Promise<ReadinessReport>;
}

/** How long one check may take: a load balancer's probe typically times out after 2–5 s. */
export const READINESS_TIMEOUT_MS = 1500;

class CheckTimeout extends Error {}

/** The reason shown in the reply: a timeout, the public message of an MfaError, else only the error's class. */
function publicReason(err: unknown, timeoutMs: number): string {
  if (err instanceof CheckTimeout) return `timed out after ${timeoutMs} ms`;
  if (err instanceof MfaError) return err.wireMessage;
  return err instanceof Error && err.message ? err.message.slice(0, 200) : 'failed';
}

export function createReadiness(
  deps: { clock: Clock; events: Events },
  checks: readonly ReadinessCheck[] = [],
  timeoutMs = READINESS_TIMEOUT_MS,
): Readiness {
  const list: ReadinessCheck[] = [];
  const readiness: Readiness = {
    add(check) {
      if (list.some((c) => c.name === check.name)) throw new Error(`readiness check ${check.name} is already registered`);
      list.push(check);
    },
    get names() {
      return list.map((c) => c.name);
    },
    async run() {
      const reports = await Promise.all(
        list.map(async (check): Promise<[string, CheckReport]> => {
          const started = deps.clock.now();
          let cancel = () => {};
          const timeout = new Promise<never>((_, reject) => {
            cancel = deps.clock.schedule(timeoutMs, () => reject(new CheckTimeout()));
          });
          try {
            await Promise.race([check.run(), timeout]);
            return [check.name, { ok: true, ms: deps.clock.now() - started }];
          } catch (err) {
            const ms = deps.clock.now() - started;
            const error = publicReason(err, timeoutMs);
            deps.events.emit('readiness.failed', {
              check: check.name,
              ms,
              error: err instanceof MfaError && err.cause !== undefined ? String(err.cause) : String(err),
            });
            return [check.name, { ok: false, ms, error }];
          } finally {
            cancel();
          }
        }),
      );
      return { ready: reports.every(([, r]) => r.ok), checks: Object.fromEntries(reports) };
    },
  };
  for (const c of checks) readiness.add(c);
  return readiness;
}
