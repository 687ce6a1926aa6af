/**
 * The structured log: pino writes every event (core/events.ts) as one JSON line — business code emits events and
 * never logs; this writer subscribes. Each line carries the time (the injected clock), the level, the event name,
 * a short `msg`, the event's fields and, when the event happened while a request was being served, `req_id` (the
 * request's X-Request-Id, from the RequestScope the app's frame opens). Secrets are redacted by pino before a line is
 * written, whatever event carries them. Pretty, coloured lines (pino-pretty) only on a terminal or when asked for.
 *
 * Why pino: the Node ecosystem's structured JSON logger — fast, levels, child loggers, redaction built in, and the
 * line shape (`level`, `time`, `msg`) that log shippers (Vector, Fluent Bit, Promtail, journald) already parse.
 */
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { type Clock, systemClock } from '../core/clock.ts';
import type { EventMap, EventName, Events } from '../core/events.ts';
import type { RequestScope } from '../core/request_scope.ts';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * Field names whose values never reach a line: request secrets (pass, PIN, OTP key, the phone's signature, the
 * Authorization header, JWTs and API keys, Firebase registration tokens), at the top of an event and one level down.
 */
const SECRET_KEYS = [
  'pass',
  'password',
  'pin',
  'otpkey',
  'signature',
  'authorization',
  'Authorization',
  'token',
  'jwt',
  'fbtoken',
  'new_fb_token',
  'enrollment_credential',
  'secret',
];
export const REDACT_PATHS: readonly string[] = SECRET_KEYS.flatMap((k) => [k, `*.${k}`]);

/** The level of each event (payload-dependent where one event name covers both outcomes). */
const EVENT_LEVELS: { readonly [K in EventName]: LogLevel | ((payload: EventMap[K]) => LogLevel) } = {
  'server.started': 'info',
  'server.stopping': 'info',
  'server.stopped': 'info',
  'config.warning': 'warn',
  'policies.reloaded': 'info',
  'policies.reload_failed': 'warn',
  'audit.write_failed': 'error',
  'request.started': 'debug',
  'request.finished': 'debug',
  // 503: a refusal under load (PIN queue, wait limit), told by its own warn event — not a fault of the server
  'request.failed': (e) => (e.status === 503 ? 'warn' : e.status >= 500 ? 'error' : 'info'),
  'policy.matched': 'debug',
  'admin.login': (e) => (e.success ? 'info' : 'warn'),
  'check.result': 'info',
  'token.fail_counter': 'info',
  'token.locked': 'warn',
  'token.enrolled': 'info',
  'token.stale_device': 'warn',
  'enrollment.login_started': 'info',
  'enrollment.login_completed': 'info',
  'device.enrolled': 'info',
  'token.changed': 'info',
  'challenge.created': 'info',
  'challenge.answered': 'info',
  'challenge.proof': 'info',
  'delivery.sent': 'info',
  'delivery.failed': 'warn',
  'wait.started': 'debug',
  'wait.finished': 'info',
  'wait.rejected': 'warn',
  'pin.started': 'debug',
  'pin.rejected': 'warn',
  'readiness.failed': 'warn',
  'ldap.server_down': 'warn',
  'ldap.server_up': 'info',
  'ldap.refused': 'warn',
  'throttle.refused': 'warn',
  'push.declined': 'warn',
  'push.unanswered': 'info',
  'push.reused': 'debug',
  'push.locked': 'warn',
  'push.unblocked': 'info',
  'cleanup.ran': (e) =>
    e.challenges + e.tokens + e.audit + e.loginAddresses + e.pushBackoff + e.selfserviceSessions + e.nonces + e.webhooks > 0
      ? 'info'
      : 'debug',
  'selfservice.login': 'info',
  'selfservice.action': 'info',
  'app.auth_failed': 'warn',
  'app.changed': 'info',
  'app.push_sent': 'info',
  'app.push_settled': 'info',
  'approval.completed': 'info',
  'webhook.queued': 'debug',
  'webhook.attempted': (e) => (e.ok ? 'info' : e.final ? 'error' : 'warn'),
  'events.subscriber_failed': 'error',
  log: (e) => e.level,
};

export function levelOf<K extends EventName>(name: K, payload: EventMap[K]): LogLevel {
  const l = EVENT_LEVELS[name] as LogLevel | ((p: EventMap[K]) => LogLevel);
  return typeof l === 'function' ? l(payload) : l;
}

const who = (user?: string, realm?: string) => (user ? (realm ? `${user}@${realm}` : user) : undefined);

/** A short sentence for `msg` (what a person reads in the pretty output); the fields carry the details. */
export function messageOf(name: EventName, p: Record<string, unknown>): string {
  const e = p as Record<string, string | number | boolean | undefined> & { serials?: string[] };
  switch (name) {
    case 'server.started':
      return `listening on ${e.host}:${e.port} (database ${e.database})`;
    case 'server.stopping':
      return `stopping (${e.reason})`;
    case 'server.stopped':
      return `stopped (${e.reason})`;
    case 'request.started':
      return `${e.method} ${e.path}`;
    case 'request.finished':
      return `${e.method} ${e.path} ${e.status} in ${e.ms} ms${e.aborted ? ' (client went away)' : ''}`;
    case 'request.failed':
      return `${e.method} ${e.path} failed: ${e.status} ${e.error}`;
    case 'admin.login':
      return e.success
        ? `admin ${e.username} logged in from ${e.client}`
        : `admin login of ${e.username} from ${e.client} failed (${e.reason})`;
    case 'check.result': {
      const subject = who(e.user as string | undefined, e.realm as string | undefined) ?? e.serials?.join(',') ?? '?';
      return `${e.outcome} ${subject} from ${e.client}: ${e.message}`;
    }
    case 'policy.matched':
      return `${e.scope} policies: ${(p.policies as string[]).join(', ') || 'none'}`;
    case 'wait.finished':
      return `push wait ${e.transactionId}: ${e.result}`;
    case 'log':
      return String(e.msg);
    case 'config.warning':
      return String(e.message);
    case 'ldap.server_down':
      return `LDAP server ${e.url} of realm ${e.realm} failed, skipped for ${e.retrySeconds} s: ${e.error}`;
    case 'ldap.server_up':
      return `LDAP server ${e.url} of realm ${e.realm} answers again`;
    case 'ldap.refused':
      return `LDAP ${e.operation} refused in realm ${e.realm}: ${e.error}`;
    default:
      return name;
  }
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  clock: Clock;
  /** server.node_name, on every line. */
  node: string;
  /** Where lines go (default stdout); `auto` is JSON unless this is stdout and stdout is a terminal. */
  destination?: DestinationStream;
  /** Whether stdout is a terminal (default process.stdout.isTTY). */
  isTty?: boolean;
}

/** Whether `auto` means pretty here. */
export function prettyWanted(format: LogFormat, toStdout: boolean, isTty: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && toStdout && isTty);
}

/** The pino logger of a running pushgate (JSON lines, or pino-pretty on a terminal). */
export function createLogger(opts: LoggerOptions): Logger {
  const toStdout = opts.destination === undefined;
  const isPretty = prettyWanted(opts.format, toStdout, opts.isTty ?? process.stdout.isTTY === true);
  // Synchronous writes: a line is out before the next statement runs, so the last lines before an exit are never lost.
  const destination: DestinationStream = isPretty
    ? pretty({
        colorize: toStdout && (opts.isTty ?? process.stdout.isTTY === true),
        sync: true,
        translateTime: 'SYS:standard',
        ignore: 'pid,node',
        singleLine: true,
        destination: opts.destination ? asStream(opts.destination) : 1,
      })
    : (opts.destination ?? pino.destination({ dest: 1, sync: true }));
  return pino(
    {
      level: opts.level,
      base: { node: opts.node, pid: process.pid },
      timestamp: () => `,"time":"${new Date(opts.clock.now()).toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    destination,
  );
}

/** How long repeated refusals of one kind are summed into one line (attachLog); REFUSAL_KEYS_MAX kinds at most. */
export const REFUSAL_WINDOW_MS = 10_000;
export const REFUSAL_KEYS_MAX = 10_000;

/**
 * What makes two refusals "the same" for the log (attachLog), or undefined for an event that is always its own line:
 * a back-off refusal (limit and key), a refused PIN job (reason and key), the request.failed line of a refusal
 * answered 429/503 (method, path, status, code) — its reason is in the throttle.refused / pin.rejected line — and the
 * check.result of a repeated push login (user, realm, address, serials: the open login again, no new push).
 */
export function refusalKey(name: EventName, payload: object): string | undefined {
  if (name === 'throttle.refused') {
    const e = payload as EventMap['throttle.refused'];
    return `${name}\0${e.limit}\0${e.key}`;
  }
  if (name === 'pin.rejected') {
    const e = payload as EventMap['pin.rejected'];
    return `${name}\0${e.reason}\0${e.key}`;
  }
  if (name === 'check.result') {
    // A repeat of an open push login (a push flood with the PIN): a trigger refused without a new push.
    const e = payload as EventMap['check.result'];
    if (e.reused) return `${name}\0${e.user ?? ''}\0${e.realm ?? ''}\0${e.client}\0${e.serials.join(',')}`;
    return undefined;
  }
  if (name === 'request.failed') {
    const e = payload as EventMap['request.failed'];
    if (e.status === 429 || e.status === 503) return `${name}\0${e.method}\0${e.path}\0${e.status}\0${e.code}`;
  }
  return undefined;
}

export interface AttachLogOptions {
  /** Times the refusal windows (default: the system clock). */
  readonly clock?: Clock;
  /** REFUSAL_WINDOW_MS unless given; 0 writes every refusal as its own line. */
  readonly refusalWindowMs?: number;
}

/**
 * Writes every event as one line at its level (EVENT_LEVELS); `req_id` from the request scope. An error's stack
 * (request.failed) is a string field at debug only — at other levels the line has the message and the code.
 *
 * Refusals under a flood (refusalKey: 429/503 answers, back-off and PIN-queue refusals) would otherwise be a few
 * synchronous lines per refused request — the larger part of what a refused request costs. The first refusal of a
 * kind is written at once; the same refusals in the next REFUSAL_WINDOW_MS are counted and written as one line when
 * the window ends (the last one's fields, `repeated: N`, `window_ms`), so the log still counts every refusal
 * (1 + the sum of `repeated`). Each refused request still has its audit row (with its request id) and its /metrics
 * count: those listen to the events, not to the log. Returns the unsubscription (which writes the open windows' lines), and `flush` for those lines alone.
 */
export function attachLog(
  events: Events,
  logger: Logger,
  scope: RequestScope,
  opts: AttachLogOptions = {},
): (() => void) & { flush(): void } {
  const clock = opts.clock ?? systemClock;
  const windowMs = opts.refusalWindowMs ?? REFUSAL_WINDOW_MS;
  interface Window {
    readonly since: number;
    count: number;
    name: EventName;
    level: LogLevel;
    payload: object;
    cancel?: () => void;
  }
  const windows = new Map<string, Window>();

  const fieldsOf = (name: EventName, level: LogLevel, payload: object, reqId?: string): Record<string, unknown> => {
    const fields: Record<string, unknown> = { event: name };
    if (reqId !== undefined) fields.req_id = reqId;
    for (const [k, v] of Object.entries(payload)) {
      if (name === 'log' && (k === 'level' || k === 'msg')) continue;
      if (k === 'stack' && level !== 'debug' && !logger.isLevelEnabled('debug')) continue;
      fields[k] = v;
    }
    return fields;
  };
  const close = (key: string, w: Window) => {
    windows.delete(key);
    w.cancel?.();
    if (w.count === 0) return;
    const fields = { ...fieldsOf(w.name, w.level, w.payload), repeated: w.count, window_ms: windowMs };
    const seconds = Math.round(windowMs / 100) / 10;
    logger[w.level](fields, `${messageOf(w.name, w.payload as Record<string, unknown>)} (and ${w.count} more like it in ${seconds} s)`);
  };

  const off = events.onAny((name, payload) => {
    const level = levelOf(name, payload as never);
    if (!logger.isLevelEnabled(level)) return;
    const key = windowMs > 0 ? refusalKey(name, payload as object) : undefined;
    if (key !== undefined) {
      const now = clock.now();
      const open = windows.get(key);
      if (open && now < open.since + windowMs) {
        open.count++;
        open.payload = payload as object;
        open.level = level;
        open.cancel ??= clock.schedule(open.since + windowMs - now, () => close(key, open));
        return;
      }
      if (open) close(key, open);
      if (windows.size < REFUSAL_KEYS_MAX) windows.set(key, { since: now, count: 0, name, level, payload: payload as object });
    }
    logger[level](fieldsOf(name, level, payload as object, scope.current()?.id), messageOf(name, payload as Record<string, unknown>));
  });
  /** Writes the open windows' lines now. */
  const flush = () => {
    for (const [key, w] of [...windows]) close(key, w);
  };
  return Object.assign(
    () => {
      off();
      flush();
    },
    { flush },
  );
}

/** A destination as the Node stream pino-pretty writes to. */
function asStream(dest: DestinationStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      dest.write(String(chunk));
      callback();
    },
  });
}

/** A pino destination that hands each line (without its newline) to `write` — tests and embedding callers. */
export function lineDestination(write: (line: string) => void): DestinationStream {
  return { write: (s: string) => write(s.endsWith('\n') ? s.slice(0, -1) : s) };
}
