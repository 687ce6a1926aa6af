/**
 * How a request is answered — shared by the app's middleware frame (server/app.ts) and by a request that left that
 * frame early: a push wait (wait mode) answers on the raw Node response, so a waiting login holds neither Koa's
 * middleware frames nor its parameters while the phone is being asked.
 */
import type { ServerResponse } from 'node:http';
import type { Deps } from './deps.ts';
import { errorEnvelope, type Envelope } from './envelope.ts';
import { DatabaseError, InternalError, MfaError } from '../core/errors.ts';
import type { AuditEntry } from './store/audit_repo.ts';
import type { AppContext } from './app.ts';

/**
 * An audit row before the time and the client address are added; `alone`: written at once, not with the rows of its
 * turn (AuditInsertOptions — only for requests a flood cannot produce in bulk).
 */
export type AuditDraft = Omit<AuditEntry, 'time' | 'client'> & { readonly alone?: boolean };

/** A response independent of Koa. `body: null` is an explicitly empty body (radiuscheck). */
export interface Reply {
  readonly status: number;
  readonly body: Envelope | null;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An error as the eduMFA envelope, with the `request.failed` event; unexpected errors are -500 (detail: log only). */
export function errorReply(
  deps: Pick<Deps, 'events' | 'clock'> & { readonly store?: Pick<Deps['store'], 'name'> },
  method: string,
  path: string,
  raw: unknown,
): { reply: Reply; error: MfaError } {
  const error = raw instanceof MfaError ? raw : new InternalError(raw);
  const cause = error.status >= 500 ? (error.cause ?? raw) : undefined;
  const causeCode = (cause as { code?: unknown } | null | undefined)?.code;
  // A database failure names the database (never its credentials), not only the driver's `connect ECONNREFUSED …`.
  const database = error instanceof DatabaseError ? (error.database ?? deps.store?.name) : undefined;
  const message = cause instanceof Error ? cause.message : error.message;
  deps.events.emit('request.failed', {
    method,
    path,
    status: error.status,
    code: error.code,
    error: database ? `database ${database}: ${message}` : message,
    ...(typeof causeCode === 'string' || typeof causeCode === 'number' ? { errorCode: String(causeCode) } : {}),
    ...(database ? { database } : {}),
    ...(cause instanceof Error && cause.stack ? { stack: cause.stack } : {}),
  });
  return { reply: { status: error.status, body: errorEnvelope(deps.clock.now(), error), headers: error.headers }, error };
}

/** Headers of every response: no caching; while draining, keep-alive connections end with this response. */
export function commonHeaders(deps: Pick<Deps, 'waits'>): Record<string, string> {
  return deps.waits.draining ? { 'Cache-Control': 'no-cache', Connection: 'close' } : { 'Cache-Control': 'no-cache' };
}

/**
 * Writes the audit row; true when it is stored. A failed write is never silent: `audit.write_failed` carries the
 * action, the outcome and the database's error (SQL without values: no secrets), and /metrics counts it.
 */
export async function writeAudit(
  deps: Pick<Deps, 'store' | 'clock' | 'events'>,
  draft: AuditDraft,
  client: string | null,
  admin: string | null,
): Promise<boolean> {
  try {
    const { alone, ...entry } = draft;
    await deps.store.audit.insert({ ...entry, time: deps.clock.now(), client, admin: admin ?? draft.admin ?? null }, { alone });
    return true;
  } catch (err) {
    const cause = err instanceof MfaError && err.cause !== undefined ? err.cause : err;
    const code = (cause as { code?: unknown } | null)?.code;
    deps.events.emit('audit.write_failed', {
      action: draft.action,
      outcome: draft.outcome,
      error: `database ${deps.store.name}: ${cause instanceof Error ? cause.message : String(cause)}`,
      ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
    });
    return false;
  }
}

/**
 * What a request answers when its audit row cannot be written — fail closed for logins: an ACCEPT without its audit
 * row becomes -600 "A database error occurred." (HTTP 500). Nobody is let in without a trace; the OTP is spent (the
 * token's state changed before), the user simply logs in again. Every other outcome (REJECT, CHALLENGE, an admin
 * action that already happened, an error) is answered as it is: refusing it would hide a change that was made, and
 * the failure is reported (`audit.write_failed`, pushgate_audit_write_failures_total) for an alarm.
 */
export const failsClosed = (draft: AuditDraft): boolean => draft.outcome === 'ACCEPT';

/** Writes the audit row of a settled request; returns the reply that replaces its answer when it must fail closed. */
export async function auditOrRefuse(
  deps: Pick<Deps, 'store' | 'clock' | 'events'>,
  method: string,
  path: string,
  draft: AuditDraft,
  client: string | null,
  admin: string | null,
): Promise<Reply | null> {
  if ((await writeAudit(deps, draft, client, admin)) || !failsClosed(draft)) return null;
  return errorReply(deps, method, path, new DatabaseError(new Error(`the audit row of an ${draft.outcome} could not be written`))).reply;
}

/**
 * Answers on the raw response of a request that left Koa (`ctx.respond = false`), with the headers Koa would have
 * written for the same body. A client that has gone gets nothing (its wait was ended by the disconnect).
 */
export function sendReply(deps: Pick<Deps, 'waits'>, res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  res.statusCode = reply.status;
  for (const [k, v] of Object.entries(commonHeaders(deps))) res.setHeader(k, v);
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
  if (reply.body === null) {
    if (reply.status !== 204 && reply.status !== 304) res.setHeader('Content-Length', '0');
    res.end();
    return;
  }
  const json = JSON.stringify(reply.body);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(json)));
  res.end(json);
}

/**
 * An AbortSignal that fires when the client goes away before its response ended: 'close' of the raw response while
 * it is not yet written. Work queued for the request (its PIN check) is dropped when it fires.
 */
export function clientGoneSignal(res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  if (res.closed) {
    if (!res.writableEnded) ac.abort();
  } else {
    res.once('close', () => {
      if (!res.writableEnded) ac.abort();
    });
  }
  return ac.signal;
}

/**
 * Takes a request out of Koa's hands: Koa writes nothing for it (`ctx.respond = false`), the app frame ends now,
 * and the caller answers later with sendReply on the returned raw response. The request's parameters (which hold
 * the pass) are dropped from the context, which Koa keeps reachable until the response ends.
 */
export function leaveKoa(ctx: Pick<AppContext, 'respond' | 'res' | 'state'>): ServerResponse {
  ctx.respond = false;
  ctx.state.params = LEFT;
  return ctx.res;
}

const gone = (): never => {
  throw new Error('the parameters of a request that left Koa are gone');
};
/** The parameters of a request that left Koa: any read is a programming error. */
const LEFT: AppContext['state']['params'] = {
  get: gone,
  require: gone,
  requireNonEmpty: gone,
  has: gone,
  raw: gone,
  all: gone,
  bodySha256: gone,
};
