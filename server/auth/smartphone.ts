/**
 * The phone's requests at `/ttype/<type>`: load the records, run the push module's checks, store the result with
 * one conditional statement each, then emit events (`challenge.answered` wakes waiting logins via the answer bus).
 *
 * Differences from eduMFA (deliberate): the enrollment TTL is enforced; an answer to an expired, declined or already
 * answered challenge changes nothing (a declined challenge never becomes accepted) and is a 400, as is a wrong or
 * malformed signature (never a 500, never a 200 the app would show as success). An answer for an unknown serial is
 * 404 as in eduMFA (the apps read only the HTTP status).
 */
import type { Deps } from '../deps.ts';
import { NotFoundError, ParameterError, PolicyError, SignatureError, ValidateError } from '../../core/errors.ts';
import { requestPolicies } from './context.ts';
import type { ChallengeRecord, TokenContext, TokenRecord } from '../../tokens/types.ts';
import {
  checkEnrollmentCredential,
  completeEnrollment,
  EnrollmentExpiredError,
  type CompleteEnrollmentResult,
} from '../../tokens/push/enrollment.ts';
import {
  buildSmartphoneDataAsync,
  challengeTexts,
  ENROLLMENT_SESSION,
  pollingAllowed,
  presignedSmartphoneData,
  tokenServerKey,
  type SmartphoneData,
} from '../../tokens/push/challenge.ts';
import { parsePhoneKey, PhoneKeyError, type ServerKeyPair } from '../../tokens/push/signatures.ts';
import {
  answerSignedText,
  checkPhoneSignature,
  checkTimestamp,
  classifySmartphoneRequest,
  FIREBASE_UPDATE_WINDOW_MS,
  firebaseUpdateSignedText,
  isEnrolledPushToken,
  POLL_WINDOW_MS,
  pollSignedText,
  type SignatureCheck,
  type SmartphoneParams,
  type SmartphoneRequest,
} from '../../tokens/push/smartphone.ts';
import { isDeviceV2 } from '../../tokens/push/device.ts';
import { actionNames, infoKeys, type PushVariant } from '../../tokens/push/variants.ts';
import { proofOf } from '../../tokens/push/proof.ts';
import { settlePushAnswer } from './push_fatigue.ts';

export type SmartphoneResult =
  | { readonly kind: 'completeEnrollment'; readonly serial: string; readonly details: CompleteEnrollmentResult['details'] }
  | {
      readonly kind: 'answerChallenge';
      readonly serial: string;
      readonly value: boolean;
      readonly transactionIds: readonly string[];
      readonly decline?: boolean;
      readonly declineReason?: string;
    }
  | { readonly kind: 'poll'; readonly serial: string; readonly value: readonly SmartphoneData[] }
  | { readonly kind: 'updateFirebaseToken'; readonly serial: string; readonly value: true };

/** Classifies and handles one request. `client` is the phone's address (policies match without a user). */
export async function handleSmartphoneRequest(
  deps: Deps,
  v: PushVariant,
  method: string,
  params: SmartphoneParams,
  client: string | undefined,
): Promise<SmartphoneResult> {
  const rp = requestPolicies(deps, { client });
  const ctx = rp.tokenContext();
  if (method === 'GET' || method === 'HEAD') {
    // Polling policy first (eduMFA order): a denied phone learns nothing else.
    if (ctx.action<string>(actionNames(v).allowPolling, 'authentication') === 'deny') throw new PolicyError('Polling not allowed!');
  }
  const req = classifySmartphoneRequest(method, params);
  switch (req.kind) {
    case 'completeEnrollment':
      return enrollmentStep2(deps, v, req);
    case 'answerChallenge':
      return answerChallenge(deps, v, req);
    case 'poll':
      return poll(deps, v, req, ctx);
    case 'updateFirebaseToken':
      return updateFirebaseToken(deps, v, req);
  }
}

export type Req<K extends SmartphoneRequest['kind']> = Extract<SmartphoneRequest, { kind: K }>;

const NOT_IN_CLIENTWAIT = "No token with this serial number in the rollout state 'clientwait'.";

/** Enrollment step 2: `clientwait → enrolled` exactly once, within the TTL. */
export async function enrollmentStep2(deps: Deps, v: PushVariant, req: Req<'completeEnrollment'>): Promise<SmartphoneResult> {
  const token = await clientwaitToken(deps, v, req.serial);
  checkEnrollmentCredential(token, req.enrollmentCredential);
  try {
    parsePhoneKey(req.pubkey);
  } catch (err) {
    if (err instanceof PhoneKeyError) throw new ParameterError(`Invalid public key: ${err.message}`);
    throw err;
  }
  const serverKey = await takeServerKey(deps);
  const done = completeEnrollment(v, token, req, serverKey);
  await storeCompletedEnrollment(deps, v, token, done);
  return { kind: 'completeEnrollment', serial: token.serial, details: done.details };
}

/** The rollout state that step 2 (v1) and /device/v2/enroll look for. */
export async function clientwaitToken(deps: Deps, v: PushVariant, serial: string): Promise<TokenRecord> {
  const token = await deps.store.tokens.bySerial(serial);
  if (!token || token.type !== v.type || token.rolloutState !== 'clientwait') throw new NotFoundError(NOT_IN_CLIENTWAIT);
  return token;
}

/**
 * Stores a completed enrollment: `clientwait → enrolled` exactly once, within the TTL (one conditional update), then
 * answers its enrollment challenges. Shared by step 2 (v1) and the device protocol's enrollment (v2).
 */
export async function storeCompletedEnrollment(
  deps: Deps,
  v: PushVariant,
  token: TokenRecord,
  done: Pick<CompleteEnrollmentResult, 'info' | 'secrets'>,
): Promise<void> {
  const now = deps.clock.now();
  const won = await deps.store.tokens.updateIfRollout(
    token.serial,
    'clientwait',
    {
      rolloutState: 'enrolled',
      active: true,
      info: done.info,
      secrets: done.secrets,
      rolloutExpiresAt: null,
    },
    now,
  );
  if (!won) {
    // Lost: either another step 2 came first, or the enrollment TTL passed (the guard checks rollout_expires_at).
    const again = await deps.store.tokens.bySerial(token.serial);
    if (again && again.type === v.type && again.rolloutState === 'clientwait') throw new EnrollmentExpiredError();
    throw new NotFoundError(NOT_IN_CLIENTWAIT);
  }
  await settleEnrollmentChallenges(deps, token, now);
}

export async function takeServerKey(deps: Deps): Promise<ServerKeyPair> {
  return deps.push.keys.take();
}

/** Enrollment via multichallenge: completing step 2 answers the enrollment challenge of this serial. */
async function settleEnrollmentChallenges(deps: Deps, token: TokenRecord, now: number): Promise<void> {
  const open = await deps.store.challenges.openForSerial(token.serial, now);
  for (const row of open.filter((r) => r.session === ENROLLMENT_SESSION)) {
    if (await deps.store.challenges.answer(row.id, 'accepted', now)) {
      deps.events.emit('challenge.answered', { serial: token.serial, transactionId: row.transactionId, decision: 'accept' });
    }
  }
}

/**
 * Answer or decline: signature over `nonce|serial[|decline]`, then one conditional update per matching challenge.
 * Only an answer that landed (or the retry of one that landed) is HTTP 200: the authenticator apps read nothing but
 * the status and play their success feedback on a 200 (admin_api_facts §6). Every refused answer is a 400 —
 * a wrong signature `ERR10: Could not verify signature!` (as the app's other signed requests), an answer with a valid
 * signature that changes nothing `ERR401: <why>`: the token is disabled (its challenges were withdrawn with it),
 * the challenge expired or is gone, or it was already answered the other way. eduMFA answers those with 200
 * `value: false` — which the apps show as success (docs/protocol_choices.md "Late and refused phone answers").
 */
export async function answerChallenge(
  deps: Deps,
  v: PushVariant,
  req: Req<'answerChallenge'>,
  signedBy: AnswerVerifier = phoneAnswerVerifier,
): Promise<SmartphoneResult> {
  const token = await deps.store.tokens.bySerial(req.serial);
  // eduMFA: an unknown serial (or one of another type) is 404.
  if (!token || token.type !== v.type) throw new NotFoundError('The requested token could not be found.');
  const verify = (reason?: string) => (isEnrolledPushToken(v, token) ? signedBy(v, token, req, reason) : 'invalid');
  // A decline reason counts only when it is signed; a reason next to a plain decline signature is dropped.
  let reason = req.declineReason;
  let check = verify(reason);
  if (check !== 'valid' && reason !== undefined) {
    reason = undefined;
    check = verify();
  }
  if (check !== 'valid') throw new SignatureError();
  if (!token.active) throw new ValidateError(ANSWER_REFUSED.disabled);
  const rows = req.nonce === '' ? [] : await deps.store.challenges.bySerialNonce(req.serial, req.nonce);
  const now = deps.clock.now();
  const won: string[] = [];
  const decided = new Map<string, 'accept' | 'decline'>(); // per transaction: a wrong presence choice is a decline
  for (const row of rows) {
    const decision = answerDecision(req, row);
    if (decision !== 'accepted' && decision !== 'declined') continue;
    if (await deps.store.challenges.answer(row.id, decision, now)) {
      won.push(row.transactionId);
      decided.set(row.transactionId, decision === 'declined' ? 'decline' : 'accept');
      deps.events.emit('challenge.answered', {
        serial: req.serial,
        transactionId: row.transactionId,
        decision: decision === 'declined' ? 'decline' : 'accept',
      });
    }
  }
  // Push fatigue: the answer closes the push login (an accept resets the back-off, a decline raises it and is reported).
  for (const [transactionId, decision] of decided) await settlePushAnswer(deps, token, transactionId, decision, reason);
  // A v2 device's open long-polls and streams (on any node) see the answered request leave the list.
  if (won.length && isDeviceV2(token.info)) deps.push.support.wakeDevice(token.serial);
  // A retry of an answer that already landed (same decision, still valid) is a success too — also one that raced
  // the answer it repeats and lost the conditional update (read again: the winner's decision is there now).
  const landed = (rs: readonly ChallengeRecord[]) =>
    rs.some((r) => {
      if (r.expiresAt <= now) return false;
      const d = answerDecision(req, r);
      return d === 'unchanged' ? r.status === 'pending' : r.status === d;
    });
  const what = req.decline ? { decline: true, ...(reason ? { declineReason: reason } : {}) } : {};
  if (won.length || landed(rows)) return { kind: 'answerChallenge', serial: req.serial, value: true, transactionIds: won, ...what };
  const after = rows.length ? await deps.store.challenges.bySerialNonce(req.serial, req.nonce) : rows;
  if (landed(after)) return { kind: 'answerChallenge', serial: req.serial, value: true, transactionIds: [], ...what };
  if (after.some((r) => r.expiresAt > now && r.status === 'pending' && answerDecision(req, r) === 'refused'))
    throw new ValidateError(ANSWER_REFUSED.presence);
  throw new ValidateError(refusedBecause(after, req.decline ? 'declined' : 'accepted', now));
}

/** Checks an answer's signature over what the app signed (with the decline reason when `reason` is given). */
export type AnswerVerifier = (
  v: PushVariant,
  token: TokenRecord,
  req: Req<'answerChallenge'>,
  reason: string | undefined,
) => SignatureCheck;

/** v1 (the eduMFA / privacyIDEA apps): `nonce|serial[|decline[|reason]][|presence]`, base32, with the phone key. */
const phoneAnswerVerifier: AnswerVerifier = (v, token, req, reason) =>
  checkPhoneSignature(
    v,
    token,
    answerSignedText(req.nonce, req.serial, req.decline, { presenceAnswer: req.presenceAnswer, declineReason: reason }),
    req.signature,
  );

/**
 * What a phone's answer does to one challenge (issue 11 proofs, tokens/push/proof.ts):
 * - a decline declines, always;
 * - a push login code (`push_code_to_login`): an approval changes nothing (`unchanged`) — the code typed at the
 *   login is the answer — and is still a 200 for the app;
 * - a presence check: the right option accepts, a wrong one declines; an answer without an option (an app that
 *   does not know the check) is `refused` and changes nothing;
 * - otherwise an approval accepts.
 */
function answerDecision(req: Req<'answerChallenge'>, row: ChallengeRecord): 'accepted' | 'declined' | 'unchanged' | 'refused' {
  if (req.decline) return 'declined';
  const proof = proofOf(row);
  if (proof?.kind === 'login_code') return 'unchanged';
  if (proof?.kind === 'presence') {
    if (!req.presenceAnswer) return 'refused';
    return req.presenceAnswer === proof.answer ? 'accepted' : 'declined';
  }
  return 'accepted';
}

/** The texts of a refused answer (`ERR401: …`). */
export const ANSWER_REFUSED = {
  disabled: 'The token is disabled: the answer was not accepted.',
  gone: 'The authentication request has expired or is finished: the answer was not accepted.',
  expired: 'The authentication request has expired: the answer was not accepted.',
  declined: 'The authentication request was already declined: the answer was not accepted.',
  accepted: 'The authentication request was already accepted: the decline was not accepted.',
  presence: 'The authentication request asks you to choose the option shown at the login: the answer was not accepted.',
} as const;

/** Why an answer with a valid signature changed nothing, from the rows as they are after it. */
function refusedBecause(rows: readonly ChallengeRecord[], decision: 'accepted' | 'declined', now: number): string {
  if (!rows.length) return ANSWER_REFUSED.gone;
  const live = rows.filter((r) => r.expiresAt > now);
  if (!live.length) return ANSWER_REFUSED.expired;
  if (live.some((r) => r.status === 'declined' && decision === 'accepted')) return ANSWER_REFUSED.declined;
  if (live.some((r) => r.status === 'accepted' && decision === 'declined')) return ANSWER_REFUSED.accepted;
  return ANSWER_REFUSED.gone;
}

/**
 * The phone's poll: the newest `push.poll_max_challenges` open challenges of the token (newest first), each with the
 * smartphone data signed when the challenge was created — the texts of that login (policies matched with the user,
 * the very bytes the FCM push carried), so a poll signs nothing and cannot hit a policy conflict that only exists
 * without a user. A row without presigned data (made before presigning) is signed now on libuv's thread pool with
 * the poll's texts (policies without the user, as eduMFA's poll) — never on the event loop.
 * A disabled token's phone gets an empty list (its challenges were withdrawn when it was disabled).
 */
export async function poll(deps: Deps, v: PushVariant, req: Req<'poll'>, ctx: TokenContext): Promise<SmartphoneResult> {
  const now = deps.clock.now();
  checkTimestamp(req.timestamp, now, POLL_WINDOW_MS);
  const token = await deps.store.tokens.bySerial(req.serial);
  if (!isEnrolledPushToken(v, token)) throw new SignatureError();
  if (!pollingAllowed(v, token, ctx)) throw new PolicyError('Polling not allowed!');
  if (checkPhoneSignature(v, token, pollSignedText(req.serial, req.timestamp), req.signature) !== 'valid') throw new SignatureError();
  const key = tokenServerKey(token);
  if (!key) throw new SignatureError();
  if (!token.active) return { kind: 'poll', serial: token.serial, value: [] };
  const open = await deps.store.challenges.newestOpen(token.serial, now, deps.config.push.pollMaxChallenges, ENROLLMENT_SESSION);
  const signNow = (row: ChallengeRecord): Promise<SmartphoneData> => {
    const texts = challengeTexts(v, token, row, ctx);
    if (!texts) throw new SignatureError();
    return buildSmartphoneDataAsync(row.nonce, token.serial, texts, key);
  };
  const value = await Promise.all(open.map((r) => presignedSmartphoneData(r) ?? signNow(r)));
  return { kind: 'poll', serial: token.serial, value };
}

/** New FCM registration token, signed `new_fb_token|serial|timestamp` within ±5 minutes. */
export async function updateFirebaseToken(deps: Deps, v: PushVariant, req: Req<'updateFirebaseToken'>): Promise<SmartphoneResult> {
  const now = deps.clock.now();
  checkTimestamp(req.timestamp, now, FIREBASE_UPDATE_WINDOW_MS);
  const token = await deps.store.tokens.bySerial(req.serial);
  if (!isEnrolledPushToken(v, token)) throw new SignatureError();
  if (checkPhoneSignature(v, token, firebaseUpdateSignedText(req.newFbToken, req.serial, req.timestamp), req.signature) !== 'valid') {
    throw new SignatureError();
  }
  const keys = infoKeys(v);
  const info: Record<string, string> = { ...token.info, [keys.firebaseToken]: req.newFbToken };
  delete info[keys.deviceStale];
  await deps.store.tokens.update(token.serial, { info }, now);
  return { kind: 'updateFirebaseToken', serial: token.serial, value: true };
}
