/**
 * The eduMFA JSON envelope — the only place besides server/routes where wire names appear.
 * Success: `{jsonrpc, id, time, version, versionnumber, result: {status: true, value[, authentication]}, detail}`.
 * Error:   `{jsonrpc, id: 1, detail: null, result: {status: false, error: {code, message}}, version, time}`.
 */
import type { MfaError } from './errors.ts';
import { AUTHENTICATION, type ChallengeOut, type Outcome } from './auth/outcome.ts';

export const VERSION_NUMBER = '0.1.0';
export const VERSION = `pushgate ${VERSION_NUMBER}`;

export interface Envelope {
  jsonrpc: '2.0'; id: number; time: number; version: string; versionnumber?: string;
  result: { status: boolean; value?: unknown; authentication?: string; error?: { code: number; message: string } };
  /** Absent when `no_detail_on_success` / `no_detail_on_fail` stripped it (eduMFA deletes the key). */
  detail?: Record<string, unknown> | null;
}

export function okEnvelope(now: number, value: unknown, detail: Record<string, unknown> | null = {}, id = 1): Envelope {
  return { jsonrpc: '2.0', id, time: now / 1000, version: VERSION, versionnumber: VERSION_NUMBER, result: { status: true, value }, detail };
}

export function errorEnvelope(now: number, err: MfaError): Envelope {
  return { jsonrpc: '2.0', id: 1, time: now / 1000, version: VERSION, detail: null, result: { status: false, error: { code: err.code, message: err.wireMessage } } };
}

/** `multi_challenge` plus eduMFA's flattened copy of the last challenge. */
export function challengeDetail(challenges: readonly ChallengeOut[], preferredClientMode: string): Record<string, unknown> {
  const multi = challenges.map((c) => ({
    transaction_id: c.transactionId, serial: c.serial, type: c.type, client_mode: c.clientMode, message: c.message,
    attributes: c.attributes, ...(c.image ? { image: c.image } : {}),
  }));
  const detail: Record<string, unknown> = {
    multi_challenge: multi,
    messages: challenges.map((c) => c.message),
    transaction_ids: challenges.map((c) => c.transactionId),
  };
  const last = challenges[challenges.length - 1];
  if (last) {
    Object.assign(detail, {
      transaction_id: last.transactionId, serial: last.serial, type: last.type, client_mode: last.clientMode,
      attributes: last.attributes, message: challenges.map((c) => c.message).join(', '),
      preferred_client_mode: preferredClientMode,
    });
    if (last.image) detail.image = last.image;
  }
  return detail;
}

/** The /validate/check (and /auth challenge) response for an Outcome. */
export interface OutcomeOptions {
  noDetailOnSuccess?: boolean;
  noDetailOnFail?: boolean;
  /** AUTH `challenge_text_header` / `challenge_text_footer`: rewrite detail.message of a CHALLENGE. */
  challengeTextHeader?: string;
  challengeTextFooter?: string;
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
    if (opts.challengeTextHeader && o.challenges.length) {
      detail.message = challengeText(opts.challengeTextHeader, opts.challengeTextFooter ?? '', o.challenges.map((c) => c.message));
    }
  } else {
    detail = { message: o.message };
    if (o.serial !== undefined) detail.serial = o.serial;
    if (o.type !== undefined) detail.type = o.type;
    if ('otpLen' in o && o.otpLen !== undefined) detail.otplen = o.otpLen;
    if (o.kind === 'declined') detail.challenge_status = 'declined';
  }
  const env = okEnvelope(now, o.kind === 'accept', detail, 2);
  env.result.authentication = AUTHENTICATION[o.kind];
  if ((o.kind === 'accept' && opts.noDetailOnSuccess) || (o.kind !== 'accept' && o.kind !== 'challenge' && opts.noDetailOnFail)) delete env.detail;
  return env;
}
