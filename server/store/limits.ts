/**
 * The widths of the string columns, in ONE place: the migrations create (and widen) the columns with them, the
 * audit writer cuts its fields to them and the request edge refuses longer parameters with them (server/params.ts).
 *
 * Widths are in characters (Unicode code points), as PostgreSQL's varchar(n) and MariaDB/MySQL's utf8mb4 varchar(n)
 * count them; SQLite enforces none, so the edge and the audit writer are what keep the three databases alike.
 * Migrations that already ran keep the numbers they were written with (001 inlines its widths); a later change of
 * a width here needs a migration that alters the column.
 */
import { ParameterError } from '../../core/errors.ts';

export const COLUMN_LIMITS = {
  tokens: { serial: 40, type: 30, username: 255, realm: 120, rollout_state: 20, pin_hash: 255, description: 255 },
  challenges: { transaction_id: 64, serial: 40, nonce: 64, status: 16, session: 30 },
  admins: { username: 120, password_hash: 255 },
  login_addresses: { realm: 120, username: 255, address: 64 },
  push_logins: { subject: 255, client: 64, transaction_id: 64, state: 16 },
  push_backoff: { subject: 255, client: 64 },
  selfservice_sessions: { id_hash: 64, username: 255, realm: 120, stage: 16, csrf: 64, transaction_id: 64, enrolled: 1000 },
  applications: { id: 40, name: 64, realm: 120, webhook_url: 1000, webhook_events: 255 },
  app_nonces: { app_id: 40, nonce: 128 },
  app_pushes: {
    id: 40,
    app_id: 40,
    approval_id: 40,
    username: 255,
    realm: 120,
    transaction_id: 64,
    status: 16,
    title: 255,
    answered_serial: 40,
  },
  approvals: { id: 40, app_id: 40, mode: 16, status: 16, title: 255 },
  webhook_outbox: { app_id: 40, event: 40, event_id: 40, status: 16, lease_owner: 64, last_error: 255 },
  webhook_attempts: { app_id: 40, error: 255 },
  audit: {
    action: 60,
    outcome: 20,
    username: 255,
    realm: 120,
    serials: 1000,
    client: 64,
    admin: 120,
    transaction_id: 64,
    policies: 1000,
    node: 120,
    request_id: 64,
    /** The application (its name) that signed the request (X-Pushgate-App), migration 012. */
    application: 64,
    /**
     * `info` is a TEXT column: unbounded on PostgreSQL and SQLite, 65,535 bytes on MariaDB/MySQL. 16,000 characters
     * of at most 4 bytes each stay below that on every database.
     */
    info: 16_000,
  },
} as const;

/** The mark at the end of a value that was cut to fit its column (one character). */
export const CUT_MARK = '…';

/**
 * Request parameters that reach a column, with the width of that column: longer values are refused at the edge
 * (HTTP 400, 905, naming the parameter) before any database sees them. `user` may carry an `@realm` suffix; the
 * whole value must fit the user name column. `fbtoken`/`new_fb_token` go into the token's info (a TEXT column);
 * an FCM registration token is about 160 characters.
 */
export const PARAM_LIMITS: Readonly<Record<string, number>> = {
  user: COLUMN_LIMITS.tokens.username,
  realm: COLUMN_LIMITS.tokens.realm,
  serial: COLUMN_LIMITS.tokens.serial,
  type: COLUMN_LIMITS.tokens.type,
  description: COLUMN_LIMITS.tokens.description,
  transaction_id: COLUMN_LIMITS.challenges.transaction_id,
  state: COLUMN_LIMITS.challenges.transaction_id, // eduMFA's alias of transaction_id
  nonce: COLUMN_LIMITS.challenges.nonce,
  username: COLUMN_LIMITS.admins.username, // POST /auth: the administrator's name (audit `admin`)
  client: COLUMN_LIMITS.audit.client,
  fbtoken: 4096,
  new_fb_token: 4096,
};

/**
 * A parameter's value checked against the width of the column it reaches (PARAM_LIMITS): 400 / 905 naming the
 * parameter when it is longer. The request edge checks every parameter (server/params.ts); values from the URL path
 * (`/token/<serial>`) and from the CLI are checked where they are read.
 */
export function checkLength(name: string, value: string): string {
  const limit = PARAM_LIMITS[name];
  if (limit !== undefined && charLength(value) > limit)
    throw new ParameterError(`Parameter '${name}' is too long (at most ${limit} characters).`);
  return value;
}

/** Length in code points (what the databases count), without building an array. */
export function charLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** The first `n` code points of `s` (never half of a surrogate pair). */
function takeChars(s: string, n: number): string {
  let i = 0;
  for (let k = 0; k < n && i < s.length; k++) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
  }
  return s.slice(0, i);
}

/** `s` if it fits `width` characters, else its first `width - 1` characters and CUT_MARK. */
export function fitColumn(s: string, width: number): { value: string; cut: boolean } {
  if (s.length <= width || charLength(s) <= width) return { value: s, cut: false };
  return { value: takeChars(s, width - 1) + CUT_MARK, cut: true };
}
