/**
 * The one error family. Every error a client may see is an MfaError carrying eduMFA's numeric code, the HTTP
 * status and whether the message is shown with the `ERR<code>: ` prefix (eduMFA prefixes all but auth, policy
 * and not-found errors). A failed login is NOT an error: it is an Outcome value.
 */
export class MfaError extends Error {
  readonly code: number;
  readonly status: number;
  readonly prefixed: boolean;
  readonly headers: Record<string, string>;
  constructor(
    code: number,
    status: number,
    message: string,
    opts: { prefixed?: boolean; headers?: Record<string, string>; cause?: unknown; stack?: false } = {},
  ) {
    // `stack: false` — refusals a flood makes by the thousand (429, 503) skip capturing a stack trace nobody reads.
    const limit = Error.stackTraceLimit;
    if (opts.stack === false) Error.stackTraceLimit = 0;
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    Error.stackTraceLimit = limit;
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.prefixed = opts.prefixed ?? true;
    this.headers = opts.headers ?? {};
  }
  /** The message as the client sees it. */
  get wireMessage(): string {
    return this.prefixed ? `ERR${this.code}: ${this.message}` : this.message;
  }
}

/** 905, HTTP 400 — missing or malformed parameters. */
export class ParameterError extends MfaError {
  constructor(message: string, cause?: unknown) {
    super(905, 400, message, { cause });
  }
}
export const missingParameter = (name: string): ParameterError => new ParameterError(`Missing parameter: '${name}'`);

/** 904, HTTP 400 — unknown user or realm. */
export class UserError extends MfaError {
  constructor(message: string) {
    super(904, 400, message);
  }
}
/** 401, HTTP 400 — validation-time failures that eduMFA reports as ValidateError. */
export class ValidateError extends MfaError {
  constructor(message: string) {
    super(401, 400, message);
  }
}
/** 303, HTTP 403, no prefix — policy denials and conflicts. */
export class PolicyError extends MfaError {
  constructor(message: string) {
    super(303, 403, message, { prefixed: false });
  }
}
/** 601, HTTP 404, no prefix. */
export class NotFoundError extends MfaError {
  constructor(message: string) {
    super(601, 404, message, { prefixed: false });
  }
}
/** HTTP 401, no prefix; code 4031–4306 as eduMFA's AuthError. */
export class AuthError extends MfaError {
  constructor(message: string, code = 4031) {
    super(code, 401, message, { prefixed: false });
  }
}
/** 10, HTTP 400 — the deliberately uniform smartphone failure (`Could not verify signature!`). */
export class SignatureError extends MfaError {
  constructor(message = 'Could not verify signature!') {
    super(10, 400, message);
  }
}
/** 302, HTTP 400 — admin-side configuration problems (unknown channel, bad gateway config). */
export class ConfigAdminError extends MfaError {
  constructor(message: string) {
    super(302, 400, message);
  }
}
/** HTTP 400 — eduMFA's TokenAdminError: 1007 a revoked (locked) token, 1103 already assigned, 2012 lost-token rules. */
export class TokenAdminError extends MfaError {
  constructor(code: number, message: string) {
    super(code, 400, message);
  }
}
export const tokenLocked = (): TokenAdminError => new TokenAdminError(1007, 'This action is not possible, since the token is locked');
/** -600, HTTP 500 — the database is unreachable or failed. Detail goes to the log only. */
export class DatabaseError extends MfaError {
  /** Which database failed (`postgres db.example.org:5432/pushgate`; never credentials), when the thrower knows it. */
  readonly database: string | undefined;
  constructor(cause?: unknown, database?: string) {
    super(-600, 500, 'A database error occurred.', { prefixed: false, cause });
    this.database = database;
  }
}
/** -500, HTTP 500 — anything unexpected. Detail goes to the log only. */
export class InternalError extends MfaError {
  constructor(cause?: unknown) {
    super(-500, 500, 'An internal error occurred.', { prefixed: false, cause });
  }
}
/** 503 with Retry-After — capacity limits (wait mode), draining. */
export class UnavailableError extends MfaError {
  constructor(message: string, retryAfterSeconds: number) {
    super(503, 503, message, { prefixed: false, headers: { 'Retry-After': String(retryAfterSeconds) }, stack: false });
  }
}
/**
 * 903 (eduMFA's ServerError code), HTTP 503 with Retry-After — a realm's user store (LDAP / Active Directory) cannot
 * be reached, or refused the service account. The message names the realm only; which server failed and why goes to
 * the log (the cause). A login is never decided without the user store: no passOnNoUser, no "unknown user".
 */
export class UserStoreError extends MfaError {
  constructor(realm: string, retryAfterSeconds: number, cause?: unknown) {
    super(903, 503, `The user store of realm ${realm} is not available; try again later.`, {
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
      cause,
    });
  }
}
/**
 * 499 (nginx's "client closed request") — the client went away before its request was worked on (its PIN check was
 * dropped unhashed). Nobody reads the answer; the code names the case in the audit row and the metrics.
 */
export class ClientGoneError extends MfaError {
  constructor() {
    super(499, 499, 'The client went away; the request was dropped.', { prefixed: false });
  }
}
/**
 * 429 with Retry-After — back-off (server/auth/throttle.ts): too many failed PIN/password attempts for a user or an
 * end-user address, or too many challenges triggered for a user. eduMFA has no throttling error, so the code is the
 * HTTP status, as for UnavailableError (503); 429 is none of eduMFA's codes. No `ERR` prefix, like 503.
 */
export class TooManyRequestsError extends MfaError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
    super(429, 429, message, { prefixed: false, headers: { 'Retry-After': String(seconds) }, stack: false });
    this.retryAfterSeconds = seconds;
  }
}
/** 405 — method not allowed on an endpoint. */
export class MethodError extends MfaError {
  constructor(message: string) {
    super(405, 405, message, { prefixed: false });
  }
}
/** Request body too large. */
export class PayloadTooLargeError extends MfaError {
  // The rest of the body is not read: the connection ends with the 413.
  constructor(limit: number) {
    super(905, 413, `Request body exceeds ${limit} bytes.`, { headers: { Connection: 'close' } });
  }
}
/** Configuration file errors at start-up; not an HTTP error. `path` is the exact config path. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
