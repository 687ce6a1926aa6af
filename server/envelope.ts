/**
 * The eduMFA JSON envelope — the only place besides server/routes where wire names appear.
 * Success: `{jsonrpc, id, time, version, versionnumber, result: {status: true, value[, authentication]}, detail}`.
 * Error:   `{jsonrpc, id: 1, detail: null, result: {status: false, error: {code, message}}, version, time}`.
 */
import type { MfaError } from '../core/errors.ts';
import { AUTHENTICATION, type ChallengeOut, type Outcome } from './auth/outcome.ts';

export const VERSION_NUMBER = '0.1.0';
export const VERSION = `pushgate ${VERSION_NUMBER}`;

export interface Envelope {
  jsonrpc: '2.0';
  id: number;
  time: number;
  version: string;
  versionnumber?: string;
  result: { status: boolean; value?: unknown; authentication?: string; error?: { code: number; message: string } };
  /** Absent when `no_detail_on_success` / `no_detail_on_fail` stripped it (eduMFA deletes the key). */
  detail?: Record<string, unknown> | null;
}

export function okEnvelope(now: number, value: unknown, detail: Record<string, unknown> | null = {}, id = 1): Envelope {
  return { jsonrpc: '2.0', id, time: now / 1000, version: VERSION, versionnumber: VERSION_NUMBER, result: { status: true, value }, detail };
}

export function errorEnvelope(now: number, err: MfaError): Envelope {
  return {
    jsonrpc: '2.0',
    id: 1,
    time: now / 1000,
    version: VERSION,
    detail: null,
    result: { status: false, error: { code: err.code, message: err.wireMessage } },
  };
}

/**
 * `attributes` only when a type adds some (push: `hideResponseInput`), as eduMFA: its HOTP/TOTP challenges carry no
 * `attributes` key, and the privacyIDEA PHP client v2.0.x assigns any `attributes` it finds to a string property —
 * `{}` made every PIN-then-OTP login through it fail (docs/protocol_choices.md "Challenge attributes").
 */
function attributesOf(c: ChallengeOut): { attributes?: Readonly<Record<string, unknown>> } {
  return c.attributes && Object.keys(c.attributes).length ? { attributes: c.attributes } : {};
}

/**
 * `multi_challenge` plus eduMFA's flattened copy of the last challenge. Every challenge carries `transaction_id`,
 * `serial`, `type`, `client_mode` and `message` as strings (clients assign them to typed string properties);
 * `attributes` and `image` only when they hold something.
 */
export function challengeDetail(challenges: readonly ChallengeOut[], preferredClientMode: string): Record<string, unknown> {
  const multi = challenges.map((c) => ({
    transaction_id: c.transactionId,
    serial: c.serial,
    type: c.type,
    client_mode: c.clientMode,
    message: c.message,
    ...attributesOf(c),
    ...(c.image ? { image: c.image } : {}),
    ...(c.link ? { link: c.link } : {}),
    ...(c.presenceAnswer !== undefined ? { presence_answer: c.presenceAnswer } : {}),
  }));
  const detail: Record<string, unknown> = {
    multi_challenge: multi,
    messages: challenges.map((c) => c.message),
    transaction_ids: challenges.map((c) => c.transactionId),
  };
  const last = challenges[challenges.length - 1];
  if (last) {
    Object.assign(detail, {
      transaction_id: last.transactionId,
      serial: last.serial,
      type: last.type,
      client_mode: last.clientMode,
      ...attributesOf(last),
      message: challenges.map((c) => c.message).join(', '),
      preferred_client_mode: preferredClientMode,
    });
    if (last.image) detail.image = last.image;
    if (last.link) detail.link = last.link;
  }
  return detail;
}

/** The /validate/check (and samlcheck) response for an Outcome, shaped by the authorization policies. */
export interface OutcomeOptions {
  noDetailOnSuccess?: boolean;
  noDetailOnFail?: boolean;
  /** AUTH `challenge_text_header` / `challenge_text_footer`: rewrite detail.message of a CHALLENGE. */
  challengeTextHeader?: string;
  challengeTextFooter?: string;
  /** AUTHZ `declined_authentication`: `result.authentication` of a declined login (default `reject`, as eduMFA). */
  declinedAuthentication?: 'reject' | 'declined';
  /** AUTHZ `add_user_in_response`: `detail.user` of a success (the caller gives it only for a request with a user). */
  user?: Readonly<Record<string, string>>;
  /** AUTHZ `add_resolver_in_response`: `detail["user-realm"]` / `detail["user-resolver"]` of a success. */
  userRealm?: { readonly realm: string; readonly resolver: string };
}

/**
 * eduMFA's challenge text header/footer: the header, then the distinct messages sorted — as `<li>` items when the
 * header ends with `<ul>` or `<ol>`, else one comma-separated line between newlines — then the footer.
 */
export function challengeText(header: string, footer: string, messages: readonly string[]): string {
  const distinct = [...new Set(messages)].sort();
  const list = /<(ul|ol)>$/i.test(header) ? distinct.map((m) => `<li>${m}</li>\n`).join('') : `\n${distinct.join(', ')}\n`;
  return header + list + footer;
}

export function outcomeEnvelope(now: number, o: Outcome, opts: OutcomeOptions = {}): Envelope {
  let detail: Record<string, unknown>;
  if (o.kind === 'challenge') {
    detail = challengeDetail(o.challenges, o.preferredClientMode);
    // privacyIDEA marks an enrollment challenge (the Keycloak provider reads both flags); skipping it is not offered.
    if (o.enrollment) Object.assign(detail, { enroll_via_multichallenge: true, enroll_via_multichallenge_optional: false });
    if (opts.challengeTextHeader && o.challenges.length) {
      detail.message = challengeText(
        opts.challengeTextHeader,
        opts.challengeTextFooter ?? '',
        o.challenges.map((c) => c.message),
      );
    }
  } else {
    detail = { message: o.message };
    if (o.serial !== undefined) detail.serial = o.serial;
    if (o.type !== undefined) detail.type = o.type;
    if ('otpLen' in o && o.otpLen !== undefined) detail.otplen = o.otpLen;
    if (o.kind === 'declined') detail.challenge_status = 'declined';
  }
  // eduMFA's postpolicy order: the user details are added first, so no_detail_on_success removes them again.
  if (o.kind === 'accept') {
    if (opts.user) detail.user = { ...opts.user };
    if (opts.userRealm) Object.assign(detail, { 'user-realm': opts.userRealm.realm, 'user-resolver': opts.userRealm.resolver });
  }
  const env = okEnvelope(now, o.kind === 'accept', detail, 2);
  // A decline is REJECT on eduMFA's wire (the Java and PHP clients know no other failure); DECLINED only on request.
  env.result.authentication =
    o.kind === 'declined' && opts.declinedAuthentication !== 'declined' ? AUTHENTICATION.reject : AUTHENTICATION[o.kind];
  if ((o.kind === 'accept' && opts.noDetailOnSuccess) || (o.kind !== 'accept' && o.kind !== 'challenge' && opts.noDetailOnFail))
    delete env.detail;
  return env;
}
