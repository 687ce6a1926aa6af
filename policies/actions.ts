/**
 * The core policy actions (protocol.md §7.2) and the action registry. Token modules declare their own actions
 * (e.g. `edupush_wait`) as further ActionDef lists and hand them to `buildActionRegistry` together with these.
 */
import type { ActionDef, Scope } from './types.ts';

const def = (d: ActionDef): ActionDef => Object.freeze({ ...d, ...(d.values ? { values: Object.freeze([...d.values]) } : {}) });

const CLIENT_MODES = ['interactive', 'webauthn', 'poll', 'u2f'] as const;

export const CORE_ACTIONS: readonly ActionDef[] = Object.freeze([
  // authentication
  def({
    name: 'otppin',
    scope: 'authentication',
    type: 'enum',
    values: ['tokenpin', 'userstore', 'none'],
    default: 'tokenpin',
    description: 'What the PIN part is checked against: the token PIN, the user store password, or nothing (must be empty).',
  }),
  def({
    name: 'passthru',
    scope: 'authentication',
    type: 'bool',
    default: false,
    description: 'A user without any token authenticates with the user store password alone.',
  }),
  def({
    name: 'passOnNoToken',
    scope: 'authentication',
    type: 'bool',
    default: false,
    description: 'A user without any token is accepted without checking anything.',
  }),
  def({
    name: 'selfservice_first_enrollment',
    scope: 'authentication',
    type: 'bool',
    default: false,
    description:
      'A user without any token may log in to the self-service page with the user store password alone, to enroll a first token.',
  }),
  def({
    name: 'enroll_via_multichallenge',
    scope: 'authentication',
    type: 'enum',
    values: ['edupush', 'push', 'totp'],
    description:
      'Enrollment during login: a user without any token who passed the user store password (passthru) gets a CHALLENGE whose image is the QR code of a new token of this type; the login finishes when the phone has registered (push types) or the first OTP is entered (totp). Off when unset.',
  }),
  def({
    name: 'enroll_via_multichallenge_text',
    scope: 'authentication',
    type: 'string',
    description:
      'The message of an enrollment-during-login challenge (default: "Please scan the QR code!" for the push types, "Please scan the QR code and enter the OTP value!" for totp).',
  }),
  def({
    name: 'passOnNoUser',
    scope: 'authentication',
    type: 'bool',
    default: false,
    description: 'An unknown user is accepted without checking anything.',
  }),
  def({
    name: 'challenge_response',
    scope: 'authentication',
    type: 'list',
    description: 'Token types that may trigger a challenge when the PIN alone is sent.',
  }),
  def({
    name: 'challenge_text',
    scope: 'authentication',
    type: 'string',
    description: 'Message returned to the client when a challenge was triggered.',
  }),
  def({
    name: 'challenge_text_header',
    scope: 'authentication',
    type: 'string',
    description:
      'When challenges were triggered, detail.message becomes this header plus the sorted distinct challenge messages (as <li> items when the header ends with <ul> or <ol>) plus challenge_text_footer.',
  }),
  def({
    name: 'challenge_text_footer',
    scope: 'authentication',
    type: 'string',
    description: 'Appended after the challenge messages when challenge_text_header is set (alone it changes nothing).',
  }),
  def({
    name: 'preferred_client_mode',
    scope: 'authentication',
    type: 'list',
    default: Object.freeze([...CLIENT_MODES]),
    description:
      'Order in which the client should prefer the modes of the triggered challenges (interactive, webauthn, poll, u2f); unknown entries are ignored, as eduMFA does.',
  }),
  def({
    name: 'push_matching',
    scope: 'authentication',
    type: 'enum',
    values: ['never', 'on_risk', 'always'],
    default: 'on_risk',
    description:
      'Number matching for push logins (edupush and push, no app change): the challenge message and the question on the phone show the same code; the user approves only when they match. on_risk: when the user is backed off, logs in from an address with no earlier success, or declined a push recently.',
  }),
  def({
    name: 'push_matching_format',
    scope: 'authentication',
    type: 'enum',
    values: ['words', 'digits'],
    default: 'words',
    description: 'The matching code of push_matching: two words (BIP-39 English list) or four digits.',
  }),
  def({
    name: 'push_code_to_login',
    scope: 'authentication',
    type: 'bool',
    default: false,
    description:
      'Secure push code (edupush and push, no app change): the push carries a one-time code, the challenge is interactive and the user types the code at the login (checked once, like an OTP). Not with a wait policy.',
  }),
  def({
    name: 'increase_failcounter_on_challenge',
    scope: 'authentication',
    type: 'bool',
    default: false,
    description: 'Triggering a challenge increases the fail counter of the token (reset on success).',
  }),
  // push fatigue (server/auth/push_fatigue.ts): every out-of-band (push) token type, on without any policy
  def({
    name: 'push_open_logins',
    scope: 'authentication',
    type: 'int',
    min: 1,
    default: 2,
    description:
      'Open push logins a user may have at once, one per end-user address: a new trigger from an address whose push login is still open answers with that login (no new push); a trigger from another address takes a free place; with none free it is refused (429).',
  }),
  def({
    name: 'push_backoff_start',
    scope: 'authentication',
    type: 'int',
    min: 0,
    default: 30,
    description:
      'Seconds: after an unanswered or declined push, the next push login from that end-user address is refused (429, Retry-After) for this long; each further one in a row multiplies it by push_backoff_factor, up to push_backoff_max. An accept starts again.',
  }),
  def({
    name: 'push_backoff_factor',
    scope: 'authentication',
    type: 'int',
    min: 1,
    default: 2,
    description: 'The factor by which the push back-off grows with each unanswered or declined push in a row (1: no growth).',
  }),
  def({
    name: 'push_backoff_max',
    scope: 'authentication',
    type: 'int',
    min: 0,
    default: 900,
    description: 'Seconds: the longest push back-off.',
  }),
  def({
    name: 'push_backoff_user_after',
    scope: 'authentication',
    type: 'int',
    min: 0,
    default: 3,
    description:
      'Unanswered or declined pushes in a row, over all addresses, before the user as a whole is backed off as well (against an attacker who changes address); 0: from the first.',
  }),
  def({
    name: 'push_decline_lock',
    scope: 'authentication',
    type: 'int',
    min: 0,
    default: 5,
    description:
      'After this many declined pushes in a row ("this was not me"), lock the push logins of the user (or the token: push_decline_lock_target) until an administrator unblocks them; 0: never.',
  }),
  def({
    name: 'push_decline_lock_target',
    scope: 'authentication',
    type: 'enum',
    values: ['user', 'token'],
    default: 'user',
    description:
      "What push_decline_lock locks: user (every push login of the user, until `pushgate token unblock`) or token (the declined token's fail counter is set to its maximum, as a locked token; `pushgate token reset` or failcounter_clear_timeout end it).",
  }),
  // authorization
  def({
    name: 'last_auth',
    scope: 'authorization',
    type: 'duration',
    description: 'Reject a token whose last successful authentication is older than this (e.g. 10h, 7d).',
  }),
  def({
    name: 'no_detail_on_success',
    scope: 'authorization',
    type: 'bool',
    default: false,
    description: 'Omit the detail section of a successful /validate/check response.',
  }),
  def({
    name: 'no_detail_on_fail',
    scope: 'authorization',
    type: 'bool',
    default: false,
    description: 'Omit the detail section of a failed /validate/check response.',
  }),
  def({
    name: 'api_key_required',
    scope: 'authorization',
    type: 'bool',
    default: false,
    description:
      'The /validate endpoints need an API key (a JWT with role validate from `pushgate apikey create`) in the Authorization header.',
  }),
  def({
    name: 'application_required',
    scope: 'authorization',
    type: 'bool',
    default: false,
    description:
      'The /validate endpoints need a request signed by an application (`pushgate app add`; headers X-Pushgate-App, -Timestamp, -Nonce, -Signature) — per realm, user or client range through the policy filters.',
  }),
  def({
    name: 'authorized',
    scope: 'authorization',
    type: 'enum',
    values: ['grant_access', 'deny_access'],
    default: 'grant_access',
    description: 'Whether a user that authenticated successfully is granted access.',
  }),
  def({ name: 'tokentype', scope: 'authorization', type: 'list', description: 'Only tokens of these types may be used to authenticate.' }),
  def({
    name: 'add_user_in_response',
    scope: 'authorization',
    type: 'bool',
    default: false,
    description:
      'A successful /validate/check (or samlcheck) for a user gets detail.user: the user attributes from the realm (username, givenname, surname, email, phone, …) and password "" (eduMFA); not for serial-only requests.',
  }),
  def({
    name: 'add_resolver_in_response',
    scope: 'authorization',
    type: 'bool',
    default: false,
    description:
      'A successful /validate/check (or samlcheck) for a user gets detail["user-realm"] and detail["user-resolver"] (eduMFA); not for serial-only requests.',
  }),
  def({
    name: 'declined_authentication',
    scope: 'authorization',
    type: 'enum',
    values: ['reject', 'declined'],
    default: 'reject',
    description:
      'What a /validate/check after a push decline answers in result.authentication: reject (eduMFA: REJECT, with detail.challenge_status "declined"; every client knows it) or declined (DECLINED, for clients that know it, e.g. privacyIDEA >= 3.10 plugins). polltransaction answers DECLINED either way, as eduMFA.',
  }),
  // enrollment
  def({ name: 'max_token_per_user', scope: 'enrollment', type: 'int', min: 1, description: 'Maximum number of tokens a user may own.' }),
  def({
    name: 'tokenlabel',
    scope: 'enrollment',
    type: 'string',
    default: '<s>',
    description: 'Label shown in the app; <s> serial, <u> user, <r> realm are replaced.',
  }),
  def({
    name: 'tokenissuer',
    scope: 'enrollment',
    type: 'string',
    default: 'pushgate',
    description: 'Issuer shown in the app; <u> user, <r> realm are replaced.',
  }),
  def({ name: 'appimageurl', scope: 'enrollment', type: 'string', description: 'URL of an image the app shows next to the token.' }),
  // admin
  def({
    name: 'triggerchallenge',
    scope: 'admin',
    type: 'bool',
    default: false,
    description: 'Allows the caller to use /validate/triggerchallenge.',
  }),
  def({ name: 'enroll', scope: 'admin', type: 'bool', default: false, description: 'Allows the caller to enroll tokens.' }),
  ...(['delete', 'enable', 'disable', 'reset', 'setpin'] as const).map((name) =>
    def({
      name,
      scope: 'admin',
      type: 'bool',
      default: false,
      description: `Allows the caller to ${name === 'reset' ? 'reset the fail counter of' : name === 'setpin' ? 'set the PIN of' : name} tokens.`,
    }),
  ),
  ...(
    [
      ['assign', 'assign tokens to users (POST /token/assign).'],
      ['unassign', 'take tokens from their users (POST /token/unassign).'],
      ['set', 'set token attributes: description, max_failcount, windows, hashlib, validity period (POST /token/set).'],
      ['resync', 'resynchronise HOTP/TOTP tokens with two consecutive values (POST /token/resync).'],
      ['revoke', 'revoke tokens for good (POST /token/revoke).'],
      ['losttoken', 'issue a temporary password token for a lost token (POST /token/lost).'],
      ['tokenlist', 'list tokens (GET /token/); without it an admin sees an empty list.'],
      ['userlist', 'list the users of the user stores (GET /user/).'],
      ['resolverread', 'read the user stores (GET /resolver/).'],
      ['auditlog', 'read the audit trail (GET /audit/).'],
    ] as const
  ).map(([name, what]) => def({ name, scope: 'admin', type: 'bool', default: false, description: `Allows the caller to ${what}` })),
]);

/** Registry key of an action that reuses a name already registered for another scope. */
export const scopedActionKey = (scope: Scope, name: string): string => `${scope}:${name}`;

/**
 * Builds the name → ActionDef registry from several lists. An action name is registered once per scope; the
 * first definition of a name is keyed by the bare name, a later one for a different scope (e.g.
 * `edupush_ssl_verify` in both enrollment and authentication) by `<scope>:<name>` — look actions up with
 * `findAction`. Throws when the same name is declared twice for the same scope.
 */
export function buildActionRegistry(...lists: ReadonlyArray<readonly ActionDef[]>): Map<string, ActionDef> {
  const registry = new Map<string, ActionDef>();
  for (const list of lists) {
    for (const action of list) {
      if (findAction(registry, action.scope, action.name)) {
        throw new Error(`Duplicate policy action '${action.name}' in scope ${action.scope}`);
      }
      registry.set(registry.has(action.name) ? scopedActionKey(action.scope, action.name) : action.name, action);
    }
  }
  return registry;
}

/** The definition of `name` in `scope`, or undefined. */
export function findAction(actions: ReadonlyMap<string, ActionDef>, scope: Scope, name: string): ActionDef | undefined {
  const plain = actions.get(name);
  if (plain && plain.scope === scope && plain.name === name) return plain;
  const scoped = actions.get(scopedActionKey(scope, name));
  return scoped && scoped.scope === scope && scoped.name === name ? scoped : undefined;
}

/** The scopes in which an action of this name is declared. */
export function scopesOfAction(actions: ReadonlyMap<string, ActionDef>, name: string): Scope[] {
  const scopes: Scope[] = [];
  for (const action of actions.values()) if (action.name === name && !scopes.includes(action.scope)) scopes.push(action.scope);
  return scopes;
}

/** All actions of a scope, in registry order. */
export function actionsOfScope(actions: ReadonlyMap<string, ActionDef>, scope: Scope): ActionDef[] {
  return [...actions.values()].filter((a) => a.scope === scope);
}
