/**
 * The OpenAPI 3.1 description of every HTTP endpoint, served at `GET /openapi.json` (server/routes/openapi.ts).
 *
 * A typed module rather than a YAML file: it is compiled into build/ with the rest of server/ (no copy step, no file
 * to find at run time, no YAML parse at start-up), ships in the npm package like every other source, and the wire
 * names it shares with the code (the version, the column limits) come from the same constants. The document is
 * plain JSON data; tests/server/openapi*.test.ts validate it as OpenAPI 3.1 and every real response against it.
 *
 * Shapes are those of server/envelope.ts (the eduMFA envelope), server/routes/*.ts and what they call. Parameters
 * are described as the server reads them (server/params.ts): query string, urlencoded form, multipart form or a JSON
 * object — on a POST the query string counts too (the query wins over the form, JSON over both).
 */
import { VERSION, VERSION_NUMBER } from './envelope.ts';
import { COLUMN_LIMITS } from './store/limits.ts';
import { AUDIT_COLUMNS } from './auth/audit_api.ts';

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it) or any other part of the document: plain JSON data. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const schemaRef = (name: string): Obj => ({ $ref: `#/components/schemas/${name}` });
const responseRef = (name: string): Obj => ({ $ref: `#/components/responses/${name}` });
const headerRef = (name: string): Obj => ({ $ref: `#/components/headers/${name}` });

const str = (description: string, extra: Obj = {}): Obj => ({ type: 'string', description, ...extra });
/** A request parameter: a string in a query or form; a JSON body may give a number or boolean (read as its text). */
const scalar = (description: string, extra: Obj = {}): Obj => ({ type: ['string', 'number', 'boolean'], description, ...extra });
const int = (description: string, extra: Obj = {}): Obj => ({ type: 'integer', description, ...extra });
const bool = (description: string): Obj => ({ type: 'boolean', description });
const strings: Obj = { type: 'object', additionalProperties: { type: 'string' } };
const object = (properties: Obj, required: string[] = Object.keys(properties), extra: Obj = {}): Obj => ({
  type: 'object',
  required,
  properties,
  additionalProperties: false,
  ...extra,
});

// ---------------------------------------------------------------------------------------------------------------
// Request parameters

/** A named parameter set: used as the body schema of a POST and turned into query parameters for a GET. */
interface ParamSet {
  readonly properties: Obj;
  readonly required?: readonly string[];
  /** Other parameters are read too (filters, type-specific enrollment options). */
  readonly open?: boolean;
}

const USER = scalar('The user name (login name in the realm). Surrounding white space is removed.', {
  maxLength: COLUMN_LIMITS.tokens.username,
});
const REALM = scalar('The realm; the default realm when absent.', { maxLength: COLUMN_LIMITS.tokens.realm });
const SERIAL = scalar('The token serial.', { maxLength: COLUMN_LIMITS.tokens.serial });
const CLIENT = scalar(
  "The end user's address, read only from a trusted proxy (`server.trusted_proxies`); otherwise the peer (or X-Forwarded-For from a trusted proxy).",
);
const TRANSACTION_ID = scalar('The transaction id of a challenge (alias: `state`).', {
  maxLength: COLUMN_LIMITS.challenges.transaction_id,
});

const PARAMS: Record<string, ParamSet> = {
  CheckParams: {
    properties: {
      user: USER,
      realm: REALM,
      serial: scalar('Check only this token (instead of, or with, a user).', { maxLength: COLUMN_LIMITS.tokens.serial }),
      pass: scalar(
        'PIN followed by the OTP value; with a `transaction_id` the OTP value (or empty, to ask whether the push was approved).',
      ),
      transaction_id: TRANSACTION_ID,
      state: scalar('Alias of `transaction_id`.'),
      type: scalar('Only tokens of this type.'),
      exception: scalar("`1`/`true`: eduMFA's exception flag."),
      client: CLIENT,
    },
    required: ['pass'],
  },
  TriggerChallengeParams: {
    properties: { user: USER, realm: REALM, serial: SERIAL, type: scalar('Only tokens of this type.'), client: CLIENT },
  },
  PollTransactionParams: { properties: { transaction_id: TRANSACTION_ID, state: scalar('Alias of `transaction_id`.') } },
  AuthParams: {
    properties: { username: scalar("The administrator's name."), password: scalar("The administrator's password.") },
    required: ['username', 'password'],
  },
  InitParams: {
    properties: {
      type: scalar('Token type (default `hotp`): hotp, totp, spass, pw, edupush, push.'),
      serial: scalar("The serial; generated from the type's prefix when absent."),
      user: USER,
      realm: REALM,
      pin: scalar('The token PIN.'),
      description: scalar('Free text.', { maxLength: COLUMN_LIMITS.tokens.description }),
      genkey: scalar("`1`: the server makes the OTP key (hotp, totp) or the push token's enrollment (edupush, push)."),
      otpkey: scalar('The OTP key in hex (hotp, totp) when the server does not make it.'),
      otplen: scalar('6 or 8 digits (hotp, totp).'),
      hashlib: scalar('sha1, sha256 or sha512 (hotp, totp).'),
      timeStep: scalar('30 or 60 seconds (totp).'),
    },
    required: [],
    open: true,
  },
  TokenListParams: {
    properties: {
      user: USER,
      realm: REALM,
      serial: scalar('Serial filter (`*` wildcards).'),
      type: scalar('Token type filter.'),
      tokenrealm: scalar('Token realm filter.'),
      resolver: scalar('Resolver filter (`*` wildcards).'),
      userid: scalar('User id filter.'),
      description: scalar('Description filter.'),
      rollout_state: scalar('Rollout state filter.'),
      assigned: scalar('`true`/`false`.'),
      active: scalar('`true`/`false`.'),
      infokey: scalar('With `infovalue`: tokens whose info has this value.'),
      infovalue: scalar('See `infokey`.'),
      page: scalar('Page number (from 1).'),
      pagesize: scalar('Entries per page (default 15, at most 1000).'),
      sortby: scalar('Column to sort by (default serial).'),
      sortdir: scalar('`asc` (default) or `desc`.'),
    },
  },
  SerialParams: { properties: { serial: SERIAL } },
  SetPinParams: {
    properties: { serial: SERIAL, otppin: scalar('The new PIN (empty removes it).'), pin: scalar('Alias of `otppin`.') },
  },
  AssignParams: {
    properties: { serial: SERIAL, user: USER, realm: REALM, pin: scalar('A new PIN for the token.') },
    required: ['serial', 'user'],
  },
  SelectorParams: { properties: { serial: SERIAL, user: USER, realm: REALM } },
  SetParams: {
    properties: {
      serial: SERIAL,
      user: USER,
      realm: REALM,
      description: scalar('Free text.', { maxLength: COLUMN_LIMITS.tokens.description }),
      max_failcount: scalar('An integer ≥ 1.'),
      count_window: scalar('An integer from 1 to 1000.'),
      sync_window: scalar('An integer from 1 to 100000.'),
      hashlib: scalar('sha1, sha256 or sha512 (hotp, totp).'),
      validity_period_start: scalar('eduMFA date (`2026-08-21T10:00+0200`); empty removes it.'),
      validity_period_end: scalar('eduMFA date; empty removes it.'),
    },
  },
  ResyncParams: {
    properties: { serial: SERIAL, user: USER, realm: REALM, otp1: scalar('An OTP value.'), otp2: scalar('The next OTP value.') },
    required: ['otp1', 'otp2'],
  },
  ResolverParams: {
    properties: {
      type: scalar('Only resolvers of this type (fileresolver, anyresolver, ldapresolver).'),
      editable: scalar('`1`: editable resolvers only.'),
    },
  },
  UserListParams: {
    properties: {
      realm: REALM,
      resolver: scalar('Only the users of this resolver.'),
      user: scalar('User name pattern (`*` at start and/or end).'),
      username: scalar('Alias of `user`.'),
      email: scalar('Attribute filter; so are givenname, surname, phone, userid.'),
    },
    open: true,
  },
  AuditParams: {
    properties: {
      page: scalar('Page number (from 1).'),
      page_size: scalar('Entries per page (default 15, at most 1000).'),
      sortorder: scalar('`desc` (default) or `asc`.'),
      timelimit: scalar('Only entries this recent: a number with s, m, h, d or y (`1d`).'),
      date: scalar('A date prefix such as `2026-08-21*`.'),
      number: scalar('The entry number.'),
      action: scalar(
        'Filter (`*` wildcards); so are user, realm, client, administrator, info, outcome, transaction_id, request_id, serial, policies.',
      ),
      success: scalar('`1`/`true` or `0`/`false`.'),
      resolver: scalar('Entries of the realms of this resolver.'),
    },
    open: true,
  },
  PushParams: {
    properties: {
      user: USER,
      realm: REALM,
      question: scalar('The question the phone shows (at most 500 characters).'),
      title: scalar("The title the phone shows; the policy's (`*_title_on_mobile`) when absent.", {
        maxLength: COLUMN_LIMITS.app_pushes.title,
      }),
      context: { description: 'Anything the application wants back with the push and its webhooks: a JSON object (or a text).' },
      timeout: scalar('Seconds the push can be answered (10 to 3600; default: the configured challenge validity).'),
      matching: scalar('Number matching for this push: never, on_risk or always (default: the `push_matching` policy).'),
    },
    required: ['user', 'question'],
  },
  ApprovalParams: {
    properties: {
      approvers: {
        description: 'The approvers: a JSON array of user names (or a comma-separated text), 1 to 20, each once.',
        type: ['array', 'string'],
        items: { type: 'string' },
      },
      realm: REALM,
      mode: scalar('`ordered` (default): one after another, a No or a timeout stops the chain; `parallel`: all at once, all must say Yes.'),
      question: scalar("The question every approver's phone shows."),
      title: scalar('The title the phones show.', { maxLength: COLUMN_LIMITS.app_pushes.title }),
      timeout_seconds: scalar('Seconds each step can be answered (10 to 3600).'),
    },
    required: ['approvers', 'question'],
  },
  ApiWaitParams: {
    properties: { wait: scalar('Long-poll: answer when the state changes or after this many seconds (0 to 60; default 0).') },
  },
  StatsParams: { properties: { since: scalar('First day, YYYY-MM-DD (default: 30 days ago).') } },
  DeviceDiscoveryParams: {
    properties: {
      realm: scalar('The realm whose authentication mode to report (default: the policies without a realm).'),
      nonce: scalar('A client nonce (8–128 characters of `A–Z a–z 0–9 . _ ~ + / = -`): the server signs `pushgate-v2|nonce|<nonce>`.'),
    },
  },
  DeviceEnrollParams: {
    properties: {
      serial: SERIAL,
      enrollment_credential: scalar('The enrollment credential from the enrollment URL.'),
      pubkey: scalar('The device key: SubjectPublicKeyInfo DER, base64 (RSA 2048–4096, EC P-256 or Ed25519).'),
      auth_mode: scalar('`strict` (biometrics before every signature) or `lax`.'),
      fbtoken: scalar('An FCM registration token for wake-ups (empty or absent: no push).'),
      enc_pubkey: scalar('Ed25519 devices: an EC P-256 key (SPKI, base64) payloads are sealed to.'),
      signature: scalar('base64url signature over `pushgate-v2|enroll|serial|credential|pubkey|auth_mode|fbtoken|enc_pubkey`.'),
    },
    required: ['serial', 'enrollment_credential', 'pubkey', 'auth_mode', 'signature'],
  },
  DevicePollParams: {
    properties: { wait: scalar('Seconds to hold the request open without a change (0 … `device.poll_seconds`, the default).') },
  },
  DeviceAnswerParams: {
    properties: {
      serial: SERIAL,
      decision: scalar('`accept` or `decline`.'),
      reason: scalar('Why the user declined (at most 200 characters; signed).'),
      signature: scalar('base64url signature over `pushgate-v2|answer|<id>|<serial>|accept` or `…|decline|<reason>`.'),
    },
    required: ['serial', 'decision', 'signature'],
  },
  SmartphonePollParams: {
    properties: {
      serial: SERIAL,
      timestamp: scalar("ISO 8601 time of the poll (within ±1 minute of the server's clock)."),
      signature: scalar("The phone's signature over `serial|timestamp`, base32."),
    },
    required: ['serial', 'timestamp', 'signature'],
  },
};

/** The JSON Schema of a parameter set (a request body). */
function paramSchema(name: string): Obj {
  const p = PARAMS[name]!;
  return {
    type: 'object',
    properties: p.properties,
    ...(p.required?.length ? { required: [...p.required] } : {}),
    ...(p.open ? { description: 'Further parameters are read too (see the operation).' } : {}),
  };
}

/** The query parameters of a GET (or DELETE) from a parameter set. */
function queryParameters(name: string): Obj[] {
  const p = PARAMS[name]!;
  return Object.entries(p.properties).map(([key, schema]) => {
    const { description, ...rest } = schema as Obj;
    return {
      name: key,
      in: 'query',
      required: p.required?.includes(key) ?? false,
      description: description as string,
      schema: { ...rest, type: 'string' },
    };
  });
}

const pathParam = (name: string, description: string): Obj => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
});

/** A request body read as form, multipart or JSON (server/params.ts). */
function requestBody(name: string, required = false): Obj {
  const schema = schemaRef(name);
  return {
    required,
    description:
      'Form-urlencoded, multipart or a JSON object (JSON numbers and booleans are read as their text). Query-string parameters are read too: the query wins over the form, JSON over both.',
    content: {
      'application/x-www-form-urlencoded': { schema },
      'multipart/form-data': { schema },
      'application/json': { schema },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Responses

const COMMON_HEADERS: Obj = { 'Cache-Control': headerRef('CacheControl'), 'X-Request-Id': headerRef('RequestId') };

function jsonResponse(description: string, schema: Obj, headers: Obj = {}): Obj {
  return { description, headers: { ...COMMON_HEADERS, ...headers }, content: { 'application/json': { schema } } };
}

/** The eduMFA success envelope around `value` (server/envelope.ts okEnvelope). */
function envelope(
  value: Obj,
  o: { detail?: Obj | 'absent'; detailOptional?: boolean; id?: number; authentication?: readonly string[] } = {},
): Obj {
  const result: Obj = {
    type: 'object',
    required: ['status', 'value', ...(o.authentication ? ['authentication'] : [])],
    additionalProperties: false,
    properties: {
      status: { const: true },
      value,
      ...(o.authentication ? { authentication: { enum: [...o.authentication] } } : {}),
    },
  };
  const properties: Obj = {
    jsonrpc: schemaRef('JsonRpc'),
    id: { const: o.id ?? 1 },
    time: schemaRef('Time'),
    version: schemaRef('Version'),
    versionnumber: schemaRef('VersionNumber'),
    result,
  };
  const required = ['jsonrpc', 'id', 'time', 'version', 'versionnumber', 'result'];
  const detail = o.detail ?? { type: 'object', maxProperties: 0 };
  if (detail !== 'absent') {
    properties.detail = detail;
    if (!o.detailOptional) required.push('detail');
  }
  return { type: 'object', required, properties, additionalProperties: false };
}

const ok = (description: string, value: Obj, o: Parameters<typeof envelope>[1] = {}): Obj => jsonResponse(description, envelope(value, o));

const ERRORS_PUBLIC = { '400': responseRef('BadRequest'), '413': responseRef('PayloadTooLarge'), '500': responseRef('ServerError') };
const ERRORS_ADMIN = {
  ...ERRORS_PUBLIC,
  '401': responseRef('Unauthorized'),
  '403': responseRef('Forbidden'),
  '404': responseRef('NotFound'),
};
/** A PIN is hashed in the PIN queue, which refuses with 503 + Retry-After when it is full. */
const HASHES_A_PIN = { '503': responseRef('Unavailable') };
const ERRORS_VALIDATE = {
  ...ERRORS_PUBLIC,
  '403': responseRef('Forbidden'),
  '429': responseRef('TooManyRequests'),
  '503': responseRef('Unavailable'),
};

// ---------------------------------------------------------------------------------------------------------------
// Operations

const ADMIN_SECURITY: Json = [{ adminJwt: [] }];
/**
 * /validate/*: open, or with an API key where an `api_key_required` policy applies, or signed by an application
 * (required where an `application_required` policy applies).
 */
const VALIDATE_SECURITY: Json = [{}, { validateApiKey: [] }, { appSignature: [] }];
/** The application API: always signed. */
const APP_SECURITY: Json = [{ appSignature: [] }];

interface OpSpec {
  readonly tag: string;
  readonly summary: string;
  readonly description?: string;
  readonly id: string;
  readonly params?: string;
  readonly path?: readonly Obj[];
  readonly security?: Json;
  readonly responses: Obj;
}

/** One operation; GET takes its parameter set from the query, POST from the body. */
function operation(method: 'get' | 'post' | 'delete', s: OpSpec): Obj {
  const out: Obj = {
    tags: [s.tag],
    summary: s.summary,
    operationId: method === 'get' || method === 'delete' ? s.id : `${s.id}Post`,
    ...(s.description ? { description: s.description } : {}),
  };
  const parameters: Obj[] = [...(s.path ?? [])];
  if (s.params && method !== 'post') parameters.push(...queryParameters(s.params));
  if (parameters.length) out.parameters = parameters;
  if (s.params && method === 'post') out.requestBody = requestBody(s.params, (PARAMS[s.params]!.required?.length ?? 0) > 0);
  if (s.security !== undefined) out.security = s.security;
  out.responses = s.responses;
  return out;
}

/** GET and POST of one handler. */
const getAndPost = (s: OpSpec): Obj => ({ get: operation('get', s), post: operation('post', s) });
const postOnly = (s: OpSpec): Obj => ({ post: { ...operation('post', s), operationId: s.id } });

const CHECK_RESPONSES = {
  '200': ok(
    "The login's outcome: `result.value` true only for ACCEPT; `detail` holds the message, the token (or the challenges of a CHALLENGE). Absent when `no_detail_on_success` / `no_detail_on_fail` applies.",
    { type: 'boolean' },
    { id: 2, authentication: ['ACCEPT', 'REJECT', 'CHALLENGE', 'DECLINED'], detail: schemaRef('CheckDetail'), detailOptional: true },
  ),
  ...ERRORS_VALIDATE,
};

const SERIAL_IN_PATH = pathParam('serial', 'The token serial.');

const TOKEN_ACTIONS: Array<[string, string, string]> = [
  ['enable', 'Enable a token', 'enable'],
  ['disable', 'Disable a token (its open challenges are withdrawn)', 'disable'],
  ['reset', 'Reset the fail counter', 'reset'],
  ['setpin', 'Set the token PIN', 'setpin'],
];

const ADMIN_ACTIONS: Array<{ path: string; summary: string; id: string; params: string; value: Obj; description?: string }> = [
  {
    path: 'unassign',
    summary: 'Remove the owner (and PIN) of a token, or of all tokens of a user',
    id: 'tokenUnassign',
    params: 'SelectorParams',
    value: int('How many tokens were unassigned.'),
  },
  {
    path: 'set',
    summary: 'Set token attributes',
    id: 'tokenSet',
    params: 'SetParams',
    value: int('How many attributes were set.'),
    description: 'count_auth_max, count_auth_success_max and use_timeshift are refused (400).',
  },
  {
    path: 'resync',
    summary: 'Resynchronise an HOTP/TOTP token with two consecutive OTP values',
    id: 'tokenResync',
    params: 'ResyncParams',
    value: bool('Whether the values matched (false is HTTP 200 too).'),
  },
  {
    path: 'revoke',
    summary: 'Revoke a token (for good), or all tokens of a user',
    id: 'tokenRevoke',
    params: 'SelectorParams',
    value: int('How many tokens were revoked.'),
  },
  {
    path: 'unblock',
    summary: "Clear the push back-off and decline lock of the token's owner and free their open push logins",
    id: 'tokenUnblock',
    params: 'SerialParams',
    value: object({ backoff: int('Back-off rows cleared (the lock among them).'), open_logins: int('Open push logins freed.') }, [
      'backoff',
      'open_logins',
    ]),
    description: 'pushgate\'s own (push fatigue, README "Security"), under the admin right `reset`; the CLI\'s `token unblock`.',
  },
  {
    path: 'lost',
    summary: 'Lost token: a temporary password token `lost<serial>` replaces it',
    id: 'tokenLost',
    params: 'SelectorParams',
    value: schemaRef('LostToken'),
  },
];

function paths(): Obj {
  const p: Obj = {};
  p['/validate/check'] = getAndPost({
    tag: 'validate',
    summary: "Check a user's (or a token's) PIN and OTP value, or answer / poll a challenge",
    description:
      "The IdP plugins' login call. A PIN attempt is counted by the back-off (429 with Retry-After when over budget). With `edupush_wait` / `push_wait` the answer comes once the phone has answered (503 with Retry-After when too many logins wait).",
    id: 'validateCheck',
    params: 'CheckParams',
    security: VALIDATE_SECURITY,
    responses: CHECK_RESPONSES,
  });
  p['/validate/radiuscheck'] = getAndPost({
    tag: 'validate',
    summary: 'The check for RADIUS servers: 204 on success, 400 without a body otherwise',
    id: 'validateRadiuscheck',
    params: 'CheckParams',
    security: VALIDATE_SECURITY,
    responses: {
      '204': { description: 'ACCEPT.', headers: COMMON_HEADERS },
      '400': {
        description:
          'Anything but ACCEPT, and any error of the check, without a body. A request the server could not read (a broken body, a parameter too long) is answered with the error envelope.',
        headers: COMMON_HEADERS,
        'x-body-optional': true,
        content: { 'application/json': { schema: schemaRef('ErrorEnvelope') } },
      },
      '413': responseRef('PayloadTooLarge'),
      '429': responseRef('TooManyRequests'),
      '500': responseRef('ServerError'),
    },
  });
  p['/validate/samlcheck'] = getAndPost({
    tag: 'validate',
    summary: 'The check for SAML IdPs: `result.value = {auth, attributes}`',
    id: 'validateSamlcheck',
    params: 'CheckParams',
    security: VALIDATE_SECURITY,
    responses: {
      '200': ok(
        "The outcome; on success the user's attributes.",
        object({ auth: { type: 'boolean' }, attributes: schemaRef('SamlAttributes') }),
        { id: 2, authentication: ['ACCEPT', 'REJECT', 'CHALLENGE', 'DECLINED'], detail: schemaRef('CheckDetail') },
      ),
      ...ERRORS_VALIDATE,
    },
  });
  p['/validate/triggerchallenge'] = getAndPost({
    tag: 'validate',
    summary: "Trigger challenges for a user's (or a token's) challenge-response tokens (admin)",
    id: 'validateTriggerchallenge',
    params: 'TriggerChallengeParams',
    security: ADMIN_SECURITY,
    responses: {
      '200': ok('How many challenges were triggered; `detail` lists them.', int('The number of challenges.'), {
        id: 2,
        authentication: ['CHALLENGE', 'REJECT'],
        detail: schemaRef('ChallengeDetail'),
      }),
      ...ERRORS_ADMIN,
      '429': responseRef('TooManyRequests'),
    },
  });
  const pollResponses = {
    '200': ok(
      'Whether the transaction was approved by the phone (`value` true only then).',
      { type: 'boolean' },
      {
        id: 2,
        authentication: ['ACCEPT', 'REJECT', 'DECLINED'],
        detail: object({ challenge_status: { enum: ['accept', 'declined', 'pending'] } }),
      },
    ),
    ...ERRORS_PUBLIC,
    '403': responseRef('Forbidden'),
  };
  p['/validate/polltransaction'] = {
    get: operation('get', {
      tag: 'validate',
      summary: 'Whether a push transaction was approved (does not finish the login)',
      id: 'validatePolltransaction',
      params: 'PollTransactionParams',
      security: VALIDATE_SECURITY,
      responses: pollResponses,
    }),
  };
  p['/validate/polltransaction/{transactionId}'] = {
    get: operation('get', {
      tag: 'validate',
      summary: 'Whether a push transaction was approved (the transaction id in the path)',
      id: 'validatePolltransactionPath',
      path: [pathParam('transactionId', 'The transaction id.')],
      security: VALIDATE_SECURITY,
      responses: pollResponses,
    }),
  };
  p['/auth'] = postOnly({
    tag: 'admin',
    summary: 'Administrator login: a JWT for the `Authorization` header of the admin endpoints',
    id: 'auth',
    params: 'AuthParams',
    responses: {
      '200': ok(
        "The token and the administrator's rights.",
        object({
          token: str('The JWT (send it as `Authorization: <token>`; `Bearer` is accepted too).'),
          role: { const: 'admin' },
          username: { type: 'string' },
          realm: { type: 'string' },
          rights: { type: 'array', items: { type: 'string' } },
        }),
      ),
      ...ERRORS_PUBLIC,
      '401': responseRef('Unauthorized'),
      '429': responseRef('TooManyRequests'),
      '503': responseRef('Unavailable'),
    },
  });
  p['/token/init'] = postOnly({
    tag: 'token',
    summary: "Enroll a token (step 1; push tokens finish with the phone's step 2 at /ttype/{type})",
    id: 'tokenInit',
    params: 'InitParams',
    security: ADMIN_SECURITY,
    responses: {
      '200': ok(
        "The new token; `detail` has its serial, rollout state and the type's enrollment data.",
        { const: true },
        {
          detail: schemaRef('InitDetail'),
        },
      ),
      ...ERRORS_ADMIN,
      ...HASHES_A_PIN,
    },
  });
  p['/token/'] = {
    get: operation('get', {
      tag: 'token',
      summary: 'List and search tokens (also without the trailing slash)',
      description: "eduMFA's filters, sort and paging. Admin policies without `tokenlist` give the empty list.",
      id: 'tokenList',
      params: 'TokenListParams',
      security: ADMIN_SECURITY,
      responses: { '200': ok('One page of tokens.', schemaRef('TokenPage')), ...ERRORS_ADMIN },
    }),
  };
  p['/token/{serial}'] = {
    delete: operation('delete', {
      tag: 'token',
      summary: 'Delete a token',
      id: 'tokenDelete',
      path: [SERIAL_IN_PATH],
      security: ADMIN_SECURITY,
      responses: { '200': ok('Deleted.', { const: 1 }), ...ERRORS_ADMIN },
    }),
  };
  for (const [action, summary, id] of TOKEN_ACTIONS) {
    const spec = (withPath: boolean): OpSpec => ({
      tag: 'token',
      summary: withPath ? `${summary} (serial in the path)` : summary,
      id: `token${id[0]!.toUpperCase()}${id.slice(1)}${withPath ? 'Path' : ''}`,
      params: action === 'setpin' ? 'SetPinParams' : 'SerialParams',
      ...(withPath ? { path: [SERIAL_IN_PATH] } : {}),
      description: 'A revoked token is refused (400, ERR1007).',
      security: ADMIN_SECURITY,
      responses: { '200': ok('Done.', { const: 1 }), ...ERRORS_ADMIN, ...(action === 'setpin' ? HASHES_A_PIN : {}) },
    });
    p[`/token/${action}`] = postOnly(spec(false));
    p[`/token/${action}/{serial}`] = postOnly(spec(true));
  }
  p['/token/assign'] = postOnly({
    tag: 'token',
    summary: 'Assign a token to a user',
    id: 'tokenAssign',
    params: 'AssignParams',
    security: ADMIN_SECURITY,
    responses: { '200': ok('Assigned.', { const: true }), ...ERRORS_ADMIN, ...HASHES_A_PIN },
  });
  for (const a of ADMIN_ACTIONS) {
    const spec = (withPath: boolean): OpSpec => ({
      tag: 'token',
      summary: withPath ? `${a.summary} (serial in the path)` : a.summary,
      id: `${a.id}${withPath ? 'Path' : ''}`,
      params: a.params,
      ...(withPath ? { path: [SERIAL_IN_PATH] } : {}),
      ...(a.description ? { description: a.description } : {}),
      security: ADMIN_SECURITY,
      responses: { '200': ok('Done.', a.value), ...ERRORS_ADMIN },
    });
    p[`/token/${a.path}`] = postOnly(spec(false));
    p[`/token/${a.path}/{serial}`] = postOnly(spec(true));
  }
  p['/realm/'] = {
    get: operation('get', {
      tag: 'system',
      summary: 'The realms (also without the trailing slash)',
      id: 'realmList',
      security: ADMIN_SECURITY,
      responses: { '200': ok('Realm name → realm.', { type: 'object', additionalProperties: schemaRef('Realm') }), ...ERRORS_ADMIN },
    }),
  };
  const resolvers = ok('Resolver name → resolver.', { type: 'object', additionalProperties: schemaRef('Resolver') });
  p['/resolver/'] = {
    get: operation('get', {
      tag: 'system',
      summary: 'The resolvers (user stores; also without the trailing slash)',
      id: 'resolverList',
      params: 'ResolverParams',
      security: ADMIN_SECURITY,
      responses: { '200': resolvers, ...ERRORS_ADMIN },
    }),
  };
  p['/resolver/{name}'] = {
    get: operation('get', {
      tag: 'system',
      summary: 'One resolver (an empty object when there is none of that name)',
      id: 'resolverGet',
      params: 'ResolverParams',
      path: [pathParam('name', 'The resolver name (case-insensitive).')],
      security: ADMIN_SECURITY,
      responses: { '200': resolvers, ...ERRORS_ADMIN },
    }),
  };
  p['/user/'] = {
    get: operation('get', {
      tag: 'system',
      summary: 'The users of a realm or resolver, filtered by attributes (also without the trailing slash)',
      id: 'userList',
      params: 'UserListParams',
      security: ADMIN_SECURITY,
      responses: { '200': ok('The users.', { type: 'array', items: schemaRef('User') }), ...ERRORS_ADMIN },
    }),
  };
  p['/audit/'] = {
    get: operation('get', {
      tag: 'system',
      summary: 'Search the audit log (also without the trailing slash)',
      id: 'auditSearch',
      params: 'AuditParams',
      security: ADMIN_SECURITY,
      responses: { '200': ok('One page of audit entries.', schemaRef('AuditPage')), ...ERRORS_ADMIN },
    }),
  };
  p['/ttype/{type}'] = {
    get: {
      tags: ['smartphone'],
      summary: 'The phone polls for its open challenges (signed)',
      operationId: 'smartphonePoll',
      parameters: [pathParam('type', 'The push token type: `edupush` or `push`.'), ...queryParameters('SmartphonePollParams')],
      responses: {
        '200': ok(
          "The open challenges, newest first, each with the server's signature.",
          {
            type: 'array',
            items: schemaRef('SmartphoneData'),
          },
          { detail: 'absent' },
        ),
        ...ERRORS_PUBLIC,
        '403': responseRef('Forbidden'),
      },
    },
    post: {
      tags: ['smartphone'],
      summary: 'The phone: enrollment step 2, answering a challenge, or a new Firebase token',
      description:
        'Classified by its parameters: `fbtoken` and `pubkey` → enrollment step 2; `nonce` and `signature` → an answer (`decline` to decline); `new_fb_token`, `timestamp` and `signature` → a Firebase token update. A refused answer is 400 (ERR10 wrong signature, ERR401 expired, already answered or token disabled); an unknown serial is 404.',
      operationId: 'smartphonePost',
      parameters: [pathParam('type', 'The push token type: `edupush` or `push`.')],
      requestBody: {
        required: true,
        description: 'Form-urlencoded, multipart or a JSON object, as the apps send it.',
        content: Object.fromEntries(
          ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'].map((t) => [
            t,
            { schema: schemaRef('SmartphoneRequest') },
          ]),
        ),
      },
      responses: {
        '200': jsonResponse(
          "Enrollment step 2 (`value` true, `detail` with the server's public key), or an answer / update that landed (`value` true, no `detail`).",
          {
            oneOf: [
              envelope({ const: true }, { detail: schemaRef('EnrollmentComplete') }),
              envelope({ const: true }, { detail: 'absent' }),
            ],
          },
        ),
        ...ERRORS_PUBLIC,
        '404': responseRef('NotFound'),
      },
    },
  };
  const PUSH_CREATED = (value: Obj): Obj => ({
    ...value,
    required: [...(value.required as string[]), 'message'],
    properties: {
      ...(value.properties as Obj),
      message: str(
        "The challenge's message; with number matching it holds the code the service shows its user (the phone shows the same).",
      ),
    },
  });
  const PUSH_VALUE = object({
    id: str('The push id.', { pattern: '^psh_[0-9a-f]{24}$' }),
    status: { enum: ['pending', 'approved', 'declined', 'expired', 'failed'] },
    user: str('The user asked.'),
    realm: str("The user's realm."),
    transaction_id: { type: ['string', 'null'], description: 'The transaction id of the challenge.' },
    question: str('The question.'),
    title: str('The title ("" when the policy\'s).'),
    context: { type: ['object', 'null'], description: 'What the application sent along.' },
    created_at: int('Epoch ms.'),
    expires_at: { type: ['integer', 'null'], description: 'Epoch ms until the push can be answered.' },
    answered_at: { type: ['integer', 'null'], description: 'Epoch ms of the answer (or of the expiry).' },
    answered_by: {
      oneOf: [
        { type: 'null' },
        object({ user: str('Who answered.'), serial: { type: ['string', 'null'], description: 'With which token.' } }),
      ],
    },
  });
  const APPROVAL_VALUE = object({
    id: str('The approval id.', { pattern: '^apr_[0-9a-f]{24}$' }),
    status: { enum: ['pending', 'approved', 'declined', 'expired'] },
    mode: { enum: ['ordered', 'parallel'] },
    question: str('The question.'),
    title: str('The title.'),
    timeout_seconds: { type: 'number', description: 'Per step.' },
    created_at: int('Epoch ms.'),
    finished_at: { type: ['integer', 'null'], description: 'Epoch ms the chain ended.' },
    steps: {
      type: 'array',
      items: object({
        user: str('The approver.'),
        realm: str("The approver's realm."),
        status: {
          enum: ['waiting', 'pending', 'approved', 'declined', 'expired', 'withdrawn', 'skipped', 'failed'],
          description: 'waiting: not asked yet (ordered); skipped: never asked (the chain ended); withdrawn: asked, then withdrawn.',
        },
        answered_at: { type: ['integer', 'null'], description: 'Epoch ms of a Yes or No.' },
      }),
    },
  });
  const API_ERRORS = {
    '400': responseRef('BadRequest'),
    '401': responseRef('SignatureRefused'),
    '403': responseRef('Forbidden'),
    '413': responseRef('PayloadTooLarge'),
    '429': responseRef('TooManyRequests'),
    '500': responseRef('ServerError'),
    '503': responseRef('Unavailable'),
  };
  const API_GET_ERRORS = { ...API_ERRORS, '404': responseRef('NotFound') };
  const ID_IN_PATH = pathParam('id', 'The id the POST answered.');
  p['/api/v1/push'] = postOnly({
    tag: 'applications',
    summary: "Send a push to a user's phone (a challenge on their edupush / push token)",
    description:
      'Signed by an application (`pushgate app add`). The push fatigue limits of a login apply (429 with Retry-After). `result.value.status` is `pending` until the phone answers.',
    id: 'appPush',
    params: 'PushParams',
    security: APP_SECURITY,
    responses: { '200': ok('The push is out.', PUSH_CREATED(PUSH_VALUE)), ...API_ERRORS },
  });
  p['/api/v1/push/{id}'] = {
    get: operation('get', {
      tag: 'applications',
      summary: 'The state of a push: pending, approved, declined or expired, who and when (long-poll with `wait`)',
      id: 'appPushStatus',
      params: 'ApiWaitParams',
      path: [ID_IN_PATH],
      security: APP_SECURITY,
      responses: { '200': ok('The push.', PUSH_VALUE), ...API_GET_ERRORS },
    }),
  };
  p['/api/v1/approvals'] = postOnly({
    tag: 'applications',
    summary: 'Ask a chain of approvers, in order or all at once',
    description:
      "ordered: a No or a timeout stops the chain (the rest are never asked); parallel: all must say Yes, the first No ends it and withdraws the others' pushes.",
    id: 'appApproval',
    params: 'ApprovalParams',
    security: APP_SECURITY,
    responses: { '200': ok('The approval; its first push(es) are out.', APPROVAL_VALUE), ...API_ERRORS },
  });
  p['/api/v1/approvals/{id}'] = {
    get: operation('get', {
      tag: 'applications',
      summary: 'The state of an approval chain and its steps (long-poll with `wait` until it completes)',
      id: 'appApprovalStatus',
      params: 'ApiWaitParams',
      path: [ID_IN_PATH],
      security: APP_SECURITY,
      responses: { '200': ok('The approval.', APPROVAL_VALUE), ...API_GET_ERRORS },
    }),
  };
  p['/application/{name}/stats'] = {
    get: operation('get', {
      tag: 'applications',
      summary: "An application's statistics per day (pushes, approvals, declines, timeouts, median and p95 time to answer)",
      id: 'appStats',
      params: 'StatsParams',
      path: [pathParam('name', 'The application name.')],
      security: ADMIN_SECURITY,
      responses: {
        '200': ok(
          'One entry per UTC day with pushes.',
          object({
            application: str('The name.'),
            days: {
              type: 'array',
              items: object({
                day: str('YYYY-MM-DD (UTC).'),
                challenges: int('Pushes sent.'),
                approvals: int('Approved.'),
                declines: int('Declined.'),
                timeouts: int('Expired unanswered.'),
                withdrawn: int('Withdrawn (a parallel approval ended).'),
                failed: int('Could not be sent.'),
                median_seconds: { type: ['number', 'null'] },
                p95_seconds: { type: ['number', 'null'] },
              }),
            },
          }),
        ),
        ...ERRORS_ADMIN,
      },
    }),
  };
  const DEVICE_AUTH: Obj = {
    name: 'Authorization',
    in: 'header',
    required: true,
    description:
      '`PushGate-Device serial="…", timestamp="<epoch ms>", signature="<base64url over pushgate-v2|request|GET|<path>|<serial>|<timestamp>>"` — within ±60 s of the server clock.',
    schema: { type: 'string' },
  };
  const DEVICE_ERRORS = { ...ERRORS_PUBLIC, '401': responseRef('Unauthorized'), '503': responseRef('Unavailable') };
  p['/.well-known/pushgate'] = {
    get: operation('get', {
      tag: 'device',
      summary: 'Discovery of the device protocol: accepted keys, authentication mode, server key, capabilities',
      id: 'deviceDiscovery',
      params: 'DeviceDiscoveryParams',
      responses: {
        '200': ok('What a device needs to know before it enrolls (docs/device-protocol.md).', schemaRef('DeviceDiscovery')),
        ...ERRORS_PUBLIC,
      },
    }),
  };
  p['/pwless/info'] = {
    get: operation('get', {
      tag: 'device',
      summary: "The discovery in PasswordLessAuth's information-flow shape",
      id: 'pwlessInfo',
      params: 'DeviceDiscoveryParams',
      responses: { '200': jsonResponse('The settings and the server key.', schemaRef('PwlessInfo')), ...ERRORS_PUBLIC },
    }),
  };
  p['/device/v2/enroll'] = {
    post: {
      ...operation('post', {
        tag: 'device',
        summary: 'Complete an edupush token with a v2 device key (the token must have been enrolled with `edupush_device_protocol`)',
        id: 'deviceEnroll',
        params: 'DeviceEnrollParams',
        responses: {
          '200': ok('Enrolled.', { const: true }, { detail: schemaRef('DeviceEnrolled') }),
          ...ERRORS_PUBLIC,
          '403': responseRef('Forbidden'),
          '404': responseRef('NotFound'),
        },
      }),
      operationId: 'deviceEnroll',
    },
  };
  p['/device/v2/challenges'] = {
    get: {
      ...operation('get', {
        tag: 'device',
        summary: "Long-poll of the device's pending requests (answers at once when the list differs from If-None-Match)",
        id: 'deviceChallenges',
        params: 'DevicePollParams',
        responses: {
          '200': jsonResponse(
            'The pending requests, newest first (sealed entries with `edupush_device_payload: encrypted`).',
            envelope({ type: 'array', items: schemaRef('DeviceRequest') }, { detail: object({ etag: { type: 'string' } }) }),
            { ETag: { description: 'The state of the list; send it back as If-None-Match.', schema: { type: 'string' } } },
          ),
          '304': {
            description: 'Nothing changed within the wait (or the server is shutting down): poll again with the same ETag.',
            headers: { ETag: { description: 'Unchanged.', schema: { type: 'string' } } },
          },
          ...DEVICE_ERRORS,
        },
      }),
      parameters: [
        DEVICE_AUTH,
        { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } },
        ...queryParameters('DevicePollParams'),
      ],
    },
  };
  p['/device/v2/events'] = {
    get: {
      tags: ['device'],
      summary: 'The pending requests as a Server-Sent Events stream (an `requests` event whenever the list changes)',
      operationId: 'deviceEvents',
      parameters: [DEVICE_AUTH, { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
      responses: {
        '200': {
          description:
            'text/event-stream: `retry: 2000`, then `id: <etag>` / `event: requests` / `data: {"requests":[…]}` on every change, `: keep-alive` comments every `device.sse_keepalive_seconds`; ends after `device.sse_max_seconds`.',
          headers: COMMON_HEADERS,
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...DEVICE_ERRORS,
      },
    },
  };
  p['/device/v2/challenges/{id}/answer'] = {
    post: {
      ...operation('post', {
        tag: 'device',
        summary: 'Approve or decline one pending request (signed with the device key)',
        id: 'deviceAnswer',
        params: 'DeviceAnswerParams',
        path: [pathParam('id', 'The request id (from the pending list).')],
        responses: {
          '200': ok('The server took the answer.', { const: true }, { detail: 'absent' }),
          ...ERRORS_PUBLIC,
          '404': responseRef('NotFound'),
        },
      }),
      operationId: 'deviceAnswer',
    },
  };
  p['/healthz'] = {
    get: {
      tags: ['operations'],
      summary: 'Liveness with a database round trip',
      operationId: 'healthz',
      responses: {
        '200': ok(
          'Alive; the database answered.',
          object({
            status: { const: 'ok' },
            database: str('The database dialect.', { enum: ['sqlite', 'postgres', 'mysql'] }),
            pin_queue: int('PIN checks waiting for a hashing slot.', { minimum: 0 }),
          }),
        ),
        '500': responseRef('ServerError'),
      },
    },
  };
  p['/readyz'] = {
    get: {
      tags: ['operations'],
      summary: 'Readiness for a load balancer: the database and the answer bus (200 when all are ok, else 503)',
      operationId: 'readyz',
      responses: {
        '200': ok('Ready: every check is ok.', schemaRef('Readiness')),
        '503': ok('Not ready: at least one check failed (still the success envelope: a report, not an error).', schemaRef('Readiness')),
        '500': responseRef('ServerError'),
      },
    },
  };
  p['/metrics'] = {
    get: {
      tags: ['operations'],
      summary: 'Prometheus metrics (text exposition format)',
      description:
        'With `metrics.token` set, the request needs `Authorization: Bearer <token>` (401 without). With `metrics.listen` set, /metrics is served on that listener instead of the main port.',
      operationId: 'metrics',
      security: [{}, { metricsToken: [] }],
      responses: {
        '200': {
          description: 'The metrics.',
          headers: { 'Cache-Control': { ...headerRef('CacheControl') }, 'X-Request-Id': headerRef('RequestId') },
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        '401': responseRef('Unauthorized'),
      },
    },
  };
  p['/openapi.json'] = {
    get: {
      tags: ['operations'],
      summary: 'This document (OpenAPI 3.1)',
      operationId: 'openapi',
      responses: {
        '200': {
          description: 'The OpenAPI document.',
          headers: COMMON_HEADERS,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['openapi', 'info', 'paths'],
                properties: { openapi: { const: '3.1.1' }, info: { type: 'object' }, paths: { type: 'object' } },
              },
            },
          },
        },
      },
    },
  };
  Object.assign(p, selfservicePaths());
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// Components

/**
 * The self-service page (server/routes/selfservice.ts) at its default path `/selfservice` (`selfservice.path`),
 * served only with `selfservice.enabled`. HTML for browsers, every POST a form with the session's CSRF token.
 */
function selfservicePaths(): Obj {
  const SECURITY_HEADERS: Obj = {
    'Content-Security-Policy': {
      description: 'No script source at all; frame-ancestors none.',
      required: true,
      schema: { type: 'string', pattern: "frame-ancestors 'none'" },
    },
    'Cache-Control': { description: 'Nothing of the page is stored.', required: true, schema: { const: 'no-store' } },
    'X-Frame-Options': { description: 'Not in a frame.', required: true, schema: { const: 'DENY' } },
    'X-Content-Type-Options': { description: 'No sniffing.', required: true, schema: { const: 'nosniff' } },
    'X-Request-Id': headerRef('RequestId'),
  };
  const htmlPage = (description: string, extraHeaders: Obj = {}): Obj => ({
    description,
    headers: { ...SECURITY_HEADERS, ...extraHeaders },
    content: { 'text/html': { schema: { type: 'string', pattern: '^<!doctype html>' } } },
  });
  const redirect: Obj = {
    description: 'Done: see the page again (Post/Redirect/Get), with a fixed status text (`?done=…`).',
    headers: {
      ...SECURITY_HEADERS,
      Location: { description: 'The page.', required: true, schema: { type: 'string', pattern: '^/' } },
    },
    content: { 'text/html': { schema: { type: 'string' } } },
  };
  const ERRORS: Obj = {
    '400': htmlPage('A form value is wrong (a page that says which).'),
    '403': htmlPage('No session (or it ended), or the form lacks the CSRF token of the session.'),
    '413': responseRef('PayloadTooLarge'),
    '500': htmlPage('A server error (a page without details; the log has them).'),
  };
  const COOKIE = [{ selfserviceSession: [] }];
  const form = (props: Obj, required: string[] = []): Obj => ({
    required: true,
    content: {
      'application/x-www-form-urlencoded': {
        schema: {
          type: 'object',
          properties: { csrf: str("The session's synchronizer token (from the page's forms)."), ...props },
          required: ['csrf', ...required],
        },
      },
    },
  });
  const post = (id: string, summary: string, body: Obj, responses: Obj, description?: string): Obj => ({
    post: {
      tags: ['selfservice'],
      summary,
      ...(description ? { description } : {}),
      operationId: id,
      security: COOKIE,
      requestBody: body,
      responses: { ...ERRORS, ...responses },
    },
  });
  const SERIAL_FIELD = {
    serial: str("The serial of one of your own tokens (another user's serial is 404).", { maxLength: COLUMN_LIMITS.tokens.serial }),
  };
  const p: Obj = {};
  p['/selfservice'] = {
    get: {
      tags: ['selfservice'],
      summary: 'The page: the login form, the second step, or your devices and recent logins',
      operationId: 'selfservicePage',
      parameters: [
        {
          name: 'done',
          in: 'query',
          required: false,
          description: 'Which status text to show after a redirect.',
          schema: { type: 'string' },
        },
      ],
      responses: {
        '200': htmlPage("The page for the state of the session (sets the login form's CSRF cookie when logged out)."),
        '500': ERRORS['500'],
      },
    },
  };
  p['/selfservice/style.css'] = {
    get: {
      tags: ['selfservice'],
      summary: "The page's style sheet",
      operationId: 'selfserviceStyle',
      responses: {
        '200': {
          description: 'CSS.',
          headers: { 'X-Request-Id': headerRef('RequestId') },
          content: { 'text/css': { schema: { type: 'string' } } },
        },
      },
    },
  };
  p['/selfservice/login'] = {
    post: {
      tags: ['selfservice'],
      summary: 'Step 1: user name and realm password',
      description:
        "A wrong password (or an unknown user) is a failed attempt in the back-off (429 with Retry-After when over budget). A right one opens the session for step 2 — or, by the policy `selfservice_first_enrollment`, for a user without any token, a session that may enroll a first one. The form carries `login_csrf`, the value of the login page's cookie.",
      operationId: 'selfserviceLogin',
      requestBody: {
        required: true,
        content: {
          'application/x-www-form-urlencoded': {
            schema: {
              type: 'object',
              properties: {
                login_csrf: str("The login page's double-submit token."),
                user: str('The user name.'),
                password: str('The user store password.'),
              },
              required: ['login_csrf', 'user', 'password'],
            },
          },
        },
      },
      responses: {
        ...ERRORS,
        '303': redirect,
        '401': htmlPage('Wrong user name or password (the same answer for an unknown user), or a user without a token.'),
        '403': htmlPage("The form's login_csrf does not match the login page's cookie."),
        '429': htmlPage('Too many failed attempts.', { 'Retry-After': headerRef('RetryAfter') }),
        '503': htmlPage('The PIN queue is full (password checks): try again.', { 'Retry-After': headerRef('RetryAfter') }),
      },
    },
  };
  const SECOND = {
    '200': htmlPage('The second step again (the push was sent; the phone has not answered yet).'),
    '303': redirect,
    '401': htmlPage('The second factor failed (wrong code, declined on the phone).'),
    '429': htmlPage('Too many failed attempts or challenges.', { 'Retry-After': headerRef('RetryAfter') }),
  };
  p['/selfservice/login/otp'] = post(
    'selfserviceLoginOtp',
    "Step 2: a code of one of the user's OTP tokens",
    form({ otp: str('The one-time password.') }, ['otp']),
    SECOND,
  );
  p['/selfservice/login/push'] = post('selfserviceLoginPush', "Step 2: send a push to the user's phone", form({}), SECOND);
  p['/selfservice/login/push/finish'] = post(
    'selfserviceLoginPushFinish',
    'Step 2: finish after the phone answered',
    form({ code: str('The login code, when the policy asks the user to type one.') }),
    SECOND,
  );
  p['/selfservice/logout'] = post('selfserviceLogout', 'End the session', form({}), { '303': redirect });
  p['/selfservice/tokens/enroll'] = post(
    'selfserviceEnroll',
    'Enroll a token of a type `selfservice.enroll_types` allows: the page with its QR code',
    form({ type: str('totp, edupush or push (as configured).'), description: str('A description.', { maxLength: 255 }) }, ['type']),
    { '200': htmlPage('The QR code to scan (TOTP: and the secret as text, and the form for the first code).'), '303': redirect },
  );
  p['/selfservice/tokens/verify'] = post(
    'selfserviceVerify',
    'The first code of a TOTP token enrolled on the page: makes it active',
    form({ ...SERIAL_FIELD, otp: str('The code the app shows now.') }, ['serial', 'otp']),
    {
      '303': redirect,
      '404': htmlPage('Not a half-enrolled TOTP token of yours.'),
      '429': htmlPage('Too many failed attempts.', { 'Retry-After': headerRef('RetryAfter') }),
    },
    'A wrong code is 400 (a page with the form again) and a failed attempt in the back-off.',
  );
  p['/selfservice/tokens/rename'] = post(
    'selfserviceRename',
    "Change the description of one of the user's own tokens",
    form({ ...SERIAL_FIELD, description: str('The new description.', { maxLength: 255 }) }, ['serial']),
    { '303': redirect, '404': htmlPage('Not a token of yours.') },
  );
  p['/selfservice/tokens/remove'] = post(
    'selfserviceRemove',
    "Remove (delete) one of the user's own tokens",
    form({ ...SERIAL_FIELD, confirm: { const: 'yes', description: 'The confirmation checkbox.' } }, ['serial']),
    { '303': redirect, '404': htmlPage('Not a token of yours.') },
    'Without `confirm=yes` the page is answered 400 and nothing is removed.',
  );
  return p;
}

const CHALLENGE: Obj = {
  type: 'object',
  required: ['transaction_id', 'serial', 'type', 'client_mode', 'message'],
  additionalProperties: false,
  properties: {
    transaction_id: { type: 'string' },
    serial: { type: 'string' },
    type: { type: 'string' },
    client_mode: str('How the client asks the user: interactive, poll, u2f, webauthn.'),
    message: { type: 'string' },
    attributes: { type: 'object', description: 'Only when the type has some (push: `hideResponseInput`).' },
    image: str('A data URI, when the type has one (an enrollment during login: the QR code of the new token).'),
    link: str('Enrollment during login: the enrollment URI the QR code shows (otpauth:// or edumfa-push://).'),
  },
};

/** `detail` of a challenge (server/envelope.ts challengeDetail), also of a triggerchallenge that found no token. */
const CHALLENGE_DETAIL_PROPS: Obj = {
  multi_challenge: { type: 'array', items: schemaRef('Challenge') },
  messages: { type: 'array', items: { type: 'string' } },
  transaction_ids: { type: 'array', items: { type: 'string' } },
  transaction_id: { type: 'string' },
  serial: { type: 'string' },
  type: { type: 'string' },
  client_mode: { type: 'string' },
  attributes: { type: 'object' },
  message: { type: 'string' },
  preferred_client_mode: { type: 'string' },
  image: { type: 'string' },
  link: { type: 'string' },
  enroll_via_multichallenge: { type: 'boolean', description: 'Present (true) on an enrollment-during-login challenge.' },
  enroll_via_multichallenge_optional: { type: 'boolean', description: 'Always false: the enrollment cannot be skipped.' },
};

function components(): Obj {
  const schemas: Obj = {
    JsonRpc: { const: '2.0' },
    Time: { type: 'number', description: 'Server time in seconds since the epoch (with milliseconds as the fraction).' },
    Version: { type: 'string', description: `The server's name and version (\`${VERSION}\`).`, pattern: '^pushgate ' },
    VersionNumber: { type: 'string', description: 'The version number.' },
    ErrorEnvelope: {
      type: 'object',
      description:
        "The eduMFA error envelope. `result.error.code` is eduMFA's numeric code (905 parameters, 904 user, 303 policy, 601 not found, 4031–4306 authentication, 10 signature, 401 validation, 1007/1103/2012 token administration, -500 internal, -600 database) or the HTTP status where eduMFA has none (404, 405, 429, 503); the message carries the `ERR<code>: ` prefix except for authentication, policy, not-found and capacity errors. pushgate does not sign responses: eduMFA's optional `signature` key is never present.",
      required: ['jsonrpc', 'id', 'time', 'version', 'detail', 'result'],
      additionalProperties: false,
      properties: {
        jsonrpc: schemaRef('JsonRpc'),
        id: { const: 1 },
        time: schemaRef('Time'),
        version: schemaRef('Version'),
        detail: { type: 'null' },
        result: object({
          status: { const: false },
          error: object({ code: { type: 'integer' }, message: { type: 'string' } }),
        }),
      },
    },
    DeviceDiscovery: object(
      {
        protocol: { const: 'pushgate-device' },
        versions: { type: 'array', items: { type: 'string' } },
        accepted_keys: { type: 'object', description: 'Key types with their lengths and signature algorithms.' },
        authentication_mode: { enum: ['strict', 'lax'] },
        accepts_nonce: { const: true },
        server_key: object({
          key_type: { const: 'ed25519' },
          key_length: { const: 256 },
          signature_algorithm: { const: 'Ed25519' },
          key_data: str('SPKI, base64.'),
        }),
        nonce: str('The nonce sent.'),
        signed_nonce: str('base64url Ed25519 signature over `pushgate-v2|nonce|<nonce>`.'),
        capabilities: { type: 'array', items: { type: 'string' } },
        encryption: { type: 'array', items: { type: 'object' } },
        endpoints: strings,
        connection: object({
          poll_seconds: { type: 'integer' },
          sse_keepalive_seconds: { type: 'integer' },
          sse_max_seconds: { type: 'integer' },
          max_per_device: { type: 'integer' },
        }),
      },
      [
        'protocol',
        'versions',
        'accepted_keys',
        'authentication_mode',
        'accepts_nonce',
        'server_key',
        'capabilities',
        'encryption',
        'endpoints',
        'connection',
      ],
    ),
    PwlessInfo: object(
      {
        success: { const: true },
        code: { const: 'success' },
        settings: object({
          accepted_keys: { type: 'object' },
          authentication_mode: { enum: ['strict', 'lax'] },
          accepts_nonce: { const: true },
        }),
        public_key: object({
          key_data: { type: 'string' },
          key_type: { const: 'raw' },
          key_length: { const: 256 },
          signature_algorithm: { const: 'Ed25519' },
          certificate: { type: 'null' },
        }),
        nonce: { type: 'string' },
        signed_nonce: { type: 'string' },
      },
      ['success', 'code', 'settings', 'public_key'],
    ),
    DeviceEnrolled: object({
      serial: { type: 'string' },
      rollout_state: { const: 'enrolled' },
      protocol: { const: '2' },
      key_type: { enum: ['rsa', 'ec', 'ed25519'] },
      auth_mode: { enum: ['strict', 'lax'] },
      channel: str('The push channel of the token (`longpoll`, `poll only` or a push.channels name).'),
      public_key: str("The token's server key (PKCS#1 body): it signs each request's v1 string."),
    }),
    DeviceRequest: {
      oneOf: [
        object({
          id: { type: 'string' },
          serial: { type: 'string' },
          created_at: int('Epoch ms.'),
          expires_at: int('Epoch ms.'),
          application: { type: 'string' },
          title: { type: 'string' },
          question: { type: 'string' },
          code: { type: ['string', 'null'] },
          code_kind: { enum: ['match', 'login_code', null] },
          client: { type: ['string', 'null'] },
          realm: { type: ['string', 'null'] },
          location: { type: 'null' },
          signature: { type: 'string' },
        }),
        object({
          id: { type: 'string' },
          serial: { type: 'string' },
          created_at: { type: 'integer' },
          expires_at: { type: 'integer' },
          sealed: str('base64url; version byte 0x01 (ECDH P-256) or 0x02 (RSA-OAEP).'),
        }),
      ],
    },
    Challenge: CHALLENGE,
    ChallengeDetail: object(CHALLENGE_DETAIL_PROPS, ['multi_challenge', 'messages', 'transaction_ids']),
    CheckDetail: {
      type: 'object',
      description:
        'A decision: `message` (and `serial`, `type`, `otplen` of the token that decided; `challenge_status: declined` for a declined push; `user`, `user-realm`, `user-resolver` by policy on success). A challenge: the challenge detail.',
      additionalProperties: false,
      properties: {
        ...CHALLENGE_DETAIL_PROPS,
        otplen: { type: 'integer' },
        challenge_status: { const: 'declined' },
        user: { ...strings, description: "AUTHZ `add_user_in_response`: the user's attributes (`password` always empty)." },
        'user-realm': { type: 'string' },
        'user-resolver': { type: 'string' },
      },
    },
    SamlAttributes: {
      type: 'object',
      description: 'Empty unless the login succeeded for a user.',
      additionalProperties: false,
      properties: Object.fromEntries(
        ['username', 'realm', 'resolver', 'email', 'givenname', 'surname', 'phone'].map((k) => [k, { type: 'string' }]),
      ),
    },
    InitDetail: {
      type: 'object',
      required: ['serial', 'rollout_state'],
      additionalProperties: false,
      properties: {
        serial: { type: 'string' },
        rollout_state: str("`clientwait` for a push token until the phone's step 2, else empty."),
        googleurl: schemaRef('EnrollmentUrl'),
        oathurl: schemaRef('EnrollmentUrl'),
        otpkey: {
          type: 'object',
          required: ['description', 'value', 'value_b32', 'img'],
          additionalProperties: false,
          properties: {
            description: { type: 'string' },
            value: str('The seed (`seed://<hex>`).'),
            value_b32: { type: 'string' },
            img: str('A QR code PNG as a data URI.'),
          },
        },
        enrollment_credential: str('Push tokens: the one-time credential of step 2.'),
        pushurl: schemaRef('EnrollmentUrl'),
      },
    },
    EnrollmentUrl: object({
      description: { type: 'string' },
      value: str('The URL for the authenticator app.'),
      img: str('The URL as a QR code PNG, a data URI.'),
    }),
    Token: {
      type: 'object',
      description: 'A token as GET /token/ shows it (eduMFA names; no secrets).',
      required: [
        'id',
        'serial',
        'tokentype',
        'active',
        'revoked',
        'locked',
        'rollout_state',
        'description',
        'otplen',
        'count',
        'failcount',
        'maxfail',
        'count_window',
        'sync_window',
        'username',
        'user_realm',
        'realms',
        'resolver',
        'user_id',
        'info',
        'created',
        'last_auth',
      ],
      additionalProperties: false,
      properties: {
        id: { type: 'integer' },
        serial: { type: 'string' },
        tokentype: { type: 'string' },
        active: { type: 'boolean' },
        revoked: { type: 'boolean' },
        locked: bool("eduMFA's name for revoked."),
        rollout_state: { type: 'string' },
        description: { type: 'string' },
        otplen: { type: 'integer' },
        count: { type: 'integer' },
        failcount: { type: 'integer' },
        maxfail: { type: 'integer' },
        count_window: { type: 'integer' },
        sync_window: { type: 'integer' },
        username: { type: 'string' },
        user_realm: { type: 'string' },
        realms: { type: 'array', items: { type: 'string' } },
        resolver: { type: 'string' },
        user_id: { type: 'string' },
        user_editable: { const: false },
        info: { ...strings, description: 'Token info (hashlib, timeStep, validity_period_start/end, …).' },
        created: int('Epoch milliseconds.'),
        last_auth: { type: ['integer', 'null'], description: 'Epoch milliseconds of the last successful login.' },
      },
    },
    TokenPage: object({
      tokens: { type: 'array', items: schemaRef('Token') },
      count: int('Matching tokens in all pages.'),
      current: { type: 'integer' },
      next: { type: ['integer', 'null'] },
      prev: { type: ['integer', 'null'] },
    }),
    LostToken: object({
      serial: str("The replacement's serial, `lost<serial>`."),
      init: { const: true },
      user: { const: true },
      pin: { const: true },
      valid_to: { const: 'xxxx' },
      password: str('The temporary password (log in with PIN + password).'),
      end_date: str('Until when the replacement is valid (eduMFA date).'),
      disable: int('1 when the lost token was active and is now disabled.', { enum: [0, 1] }),
    }),
    Realm: object({
      id: { type: 'integer' },
      option: { type: 'string' },
      default: { type: 'boolean' },
      resolver: {
        type: 'array',
        items: object({ name: { type: 'string' }, type: { type: 'string' }, priority: { type: ['integer', 'null'] } }),
      },
    }),
    Resolver: object({
      type: { enum: ['fileresolver', 'anyresolver', 'ldapresolver'] },
      resolvername: { type: 'string' },
      censor_keys: { type: 'array', items: { type: 'string' } },
      data: {
        type: 'object',
        description:
          "A file store: `{fileName}`. An LDAP store: eduMFA's LDAP resolver keys (LDAPURI, LDAPBASE, BINDDN, LOGINNAMEATTRIBUTE, LDAPSEARCHFILTER, UIDTYPE, …), BINDPW censored.",
      },
    }),
    User: object({
      username: { type: 'string' },
      userid: { type: 'string' },
      givenname: { type: 'string' },
      surname: { type: 'string' },
      email: { type: 'string' },
      phone: { type: 'string' },
      resolver: { type: 'string' },
      editable: { const: false },
    }),
    AuditEntry: object(
      {
        number: { type: 'integer' },
        date: str('ISO 8601 (UTC).', { format: 'date-time' }),
        action: { type: 'string' },
        success: { enum: [0, 1] },
        serial: str('Comma-separated serials.'),
        user: { type: 'string' },
        realm: { type: 'string' },
        resolver: { type: 'string' },
        administrator: { type: 'string' },
        info: str('JSON text, or empty.'),
        edumfa_server: str('The node that wrote the entry (databases that record it).'),
        policies: str('Comma-separated policy names.'),
        client: { type: 'string' },
        outcome: str('ACCEPT, REJECT, CHALLENGE, DECLINED, OK, FAIL or ERROR.'),
        transaction_id: { type: 'string' },
        request_id: str("The request's id (`X-Request-Id`), empty for rows written before it was recorded."),
        application: str('The application that signed the request (X-Pushgate-App), empty for unsigned requests.'),
      },
      // every column the audit API writes (server/auth/audit_api.ts), but the node: not every database recorded it
      AUDIT_COLUMNS.filter((c) => c !== 'edumfa_server'),
    ),
    AuditPage: object({
      auditdata: { type: 'array', items: schemaRef('AuditEntry') },
      auditcolumns: { type: 'array', items: { type: 'string' } },
      count: { type: 'integer' },
      current: { type: 'integer' },
      next: { type: ['integer', 'null'] },
      prev: { type: ['integer', 'null'] },
    }),
    SmartphoneData: object({
      nonce: { type: 'string' },
      question: { type: 'string' },
      serial: { type: 'string' },
      title: { type: 'string' },
      sslverify: { enum: ['0', '1'] },
      url: { type: 'string' },
      signature: str("The server's signature over `nonce|url|serial|question|title|sslverify`, base32."),
    }),
    EnrollmentComplete: object({
      serial: { type: 'string' },
      rollout_state: { const: 'enrolled' },
      public_key: str("The server's public key for this token (PKCS#1, base64 without the PEM armour)."),
    }),
    SmartphoneRequest: {
      type: 'object',
      required: ['serial'],
      properties: {
        serial: SERIAL,
        enrollment_credential: scalar('Step 2: the credential from the QR code.'),
        fbtoken: scalar('Step 2: the Firebase registration token (empty for poll-only apps).'),
        pubkey: scalar("Step 2: the phone's public key (SPKI DER, base64 or base64url)."),
        nonce: scalar("Answer: the challenge's nonce."),
        signature: scalar("Answer / update: the phone's signature, base32."),
        decline: scalar('Answer: `1`/`true` to decline.'),
        new_fb_token: scalar('Update: the new Firebase registration token.'),
        timestamp: scalar('Update: ISO 8601 time (within ±5 minutes).'),
      },
    },
    ReadinessCheck: {
      type: 'object',
      required: ['ok', 'ms'],
      additionalProperties: false,
      properties: { ok: { type: 'boolean' }, ms: { type: 'number', minimum: 0 }, error: { type: 'string' } },
    },
    Readiness: object({
      ready: { type: 'boolean' },
      checks: {
        type: 'object',
        description: '`database`, `answer_bus` (and `ldap` where configured).',
        required: ['database', 'answer_bus'],
        properties: { database: schemaRef('ReadinessCheck'), answer_bus: schemaRef('ReadinessCheck') },
        additionalProperties: schemaRef('ReadinessCheck'),
      },
    }),
  };
  for (const name of Object.keys(PARAMS)) schemas[name] = paramSchema(name);

  const error = (description: string, headers: Obj = {}): Obj => jsonResponse(description, schemaRef('ErrorEnvelope'), headers);
  const responses: Obj = {
    BadRequest: error(
      'Missing or malformed parameters (905), unknown user or realm (904), a refused phone request (10, 401), a token administration refusal (1007, 1103, 2012).',
    ),
    Unauthorized: error('No, an invalid or an expired administrator JWT (4031–4306), or wrong administrator credentials.'),
    SignatureRefused: error(
      'A signed request was refused (4031): the same answer for an unknown or disabled application, a bad signature, a timestamp outside the window or a reused nonce.',
    ),
    Forbidden: error('A policy refuses the request (303): an admin right, an API key the policy requires, polling not allowed.'),
    NotFound: error('The token, realm or URL does not exist (601, 404).'),
    PayloadTooLarge: error('The request body is larger than `server.body_limit_bytes`; the connection is closed.', {
      Connection: headerRef('ConnectionClose'),
    }),
    TooManyRequests: error('The back-off: too many failed attempts for this user or address, or too many challenges (429).', {
      'Retry-After': headerRef('RetryAfter'),
    }),
    ServerError: error('An internal (-500) or database (-600) error; also an ACCEPT whose audit row could not be written (fail closed).'),
    Unavailable: error('A capacity limit (PIN queue, waiting logins) or draining (503); try again after Retry-After.', {
      'Retry-After': headerRef('RetryAfter'),
    }),
  };
  return {
    schemas,
    responses,
    headers: {
      CacheControl: { description: 'Responses are not cached.', required: true, schema: { const: 'no-cache' } },
      RequestId: {
        description: "The request's id (from a sane incoming `X-Request-Id`, else generated), as in its log lines and audit row.",
        required: true,
        schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
      },
      RetryAfter: { description: 'Seconds to wait before trying again.', required: true, schema: { type: 'string', pattern: '^[0-9]+$' } },
      ConnectionClose: { description: 'The connection ends with this response.', schema: { const: 'close' } },
    },
    securitySchemes: {
      adminJwt: {
        type: 'apiKey',
        in: 'header',
        name: 'Authorization',
        description: 'The JWT from POST /auth, as is (eduMFA sends no `Bearer`; `Bearer <jwt>` is accepted too).',
      },
      validateApiKey: {
        type: 'apiKey',
        in: 'header',
        name: 'Authorization',
        description: 'Where an `api_key_required` policy applies: a JWT of this server with role `validate` (`pushgate apikey create`).',
      },
      metricsToken: { type: 'http', scheme: 'bearer', description: 'The `metrics.token` of the configuration, when set.' },
      selfserviceSession: {
        type: 'apiKey',
        in: 'cookie',
        name: '__Host-pushgate_ss',
        description:
          'The self-service session cookie (HttpOnly, SameSite=Strict, Secure); `pushgate_ss` when `selfservice.cookie_secure` is false.',
      },
      appSignature: {
        type: 'apiKey',
        in: 'header',
        name: 'X-Pushgate-Signature',
        description:
          'A request signed by an application (`pushgate app add`): `X-Pushgate-App: <id>`, `X-Pushgate-Timestamp: <unix seconds>` (within ±5 minutes), `X-Pushgate-Nonce: <16–128 of [A-Za-z0-9_-], never reused>`, `X-Pushgate-Signature: <lowercase hex HMAC-SHA256 with the secret over METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n lowercase hex SHA-256 of the raw body>`. Any wrong part: the same 401.',
      },
    },
  };
}

/**
 * The document. `serverUrl` (the configured `server.public_url`) becomes its one server entry; without it the
 * paths are relative to wherever the document was fetched from.
 */
export function openApiDocument(serverUrl?: string): Obj {
  return {
    openapi: '3.1.1',
    info: {
      title: 'pushgate',
      version: VERSION_NUMBER,
      summary: 'An eduMFA/privacyIDEA-compatible MFA challenge server with push tokens',
      description:
        "Every response is the eduMFA JSON envelope except radiuscheck's bare statuses, /metrics (Prometheus text) and this document. The wire is eduMFA's: the phone apps and the IdP plugins talk to pushgate unchanged. Not listed per operation: an unknown URL is 404 and a method a path does not take is 405 (both the error envelope); HEAD is answered wherever GET is.",
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    ...(serverUrl ? { servers: [{ url: serverUrl.replace(/\/+$/, '') }] } : {}),
    tags: [
      { name: 'validate', description: 'Logins: the IdP plugins and RADIUS/SAML servers.' },
      { name: 'smartphone', description: 'The authenticator apps (push tokens).' },
      { name: 'device', description: 'The open device protocol v2 (docs/device-protocol.md): discovery, v2 devices, long-poll and SSE.' },
      { name: 'token', description: 'Token administration (administrator JWT).' },
      { name: 'admin', description: 'Administrator login.' },
      { name: 'system', description: 'Realms, resolvers, users and the audit log (administrator JWT).' },
      { name: 'operations', description: 'Health, readiness, metrics and this document.' },
      {
        name: 'selfservice',
        description: 'The self-service page for users (HTML; only with `selfservice.enabled`, at `selfservice.path`).',
      },
      { name: 'applications', description: 'Services signing their requests (`pushgate app add`): pushes, approval chains, statistics.' },
    ],
    paths: paths(),
    components: components(),
  };
}
