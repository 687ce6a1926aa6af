/**
 * The TokenType contract. A token type is a plain object: identity and capabilities as data, plus pure-ish
 * functions that take the records they need and RETURN what to store. Persistence, PIN checks, fail counters and
 * replay protection happen in server/auth, never here, so every type is testable without a database.
 */
import type { ActionDef, ActionValue, Scope } from '../policies/types.ts';
import type { Clock } from '../core/clock.ts';
import type { PushMessage, SendResult } from '../core/push_channel.ts';

export type RolloutState = '' | 'clientwait' | 'enrolled';

/** A token as the auth layer hands it to a type. `secrets` are already decrypted; `info` is plain tokeninfo. */
export interface TokenRecord {
  readonly id: number;
  readonly serial: string;
  readonly type: string;
  readonly username: string | null;
  readonly realm: string | null;
  readonly active: boolean;
  readonly rolloutState: RolloutState;
  readonly pinHash: string | null;
  readonly otpLen: number;
  /**
   * Replay guard. HOTP: the next counter value that may be accepted. TOTP: the next time step that may be accepted.
   * A match at counter/step `n` is stored with a conditional update `counter <= n → counter = n + 1`.
   */
  readonly counter: number;
  readonly failCount: number;
  readonly maxFail: number;
  /** Admin-set windows (`POST /token/set`); absent/null = the policy or the type's default applies. */
  readonly countWindow?: number | null;
  readonly syncWindow?: number | null;
  /** Revoked (`POST /token/revoke`): disabled for good, refused by every check and every admin change. */
  readonly revoked?: boolean;
  /** Validity period in epoch ms (absent/null = open on that side); outside it a token cannot authenticate. */
  readonly validFrom?: number | null;
  readonly validUntil?: number | null;
  readonly description: string;
  readonly info: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly lastAuthAt: number | null;
  /** When the fail counter reached maxFail (null: not locked, or locked before this was recorded). */
  readonly lockedAt: number | null;
}

/** What a type gets besides the records: time and its own policy values (already resolved for the request). */
export interface TokenContext {
  readonly clock: Clock;
  /**
   * The effective value of a policy action for this request (core or the type's own). `scope` is needed only for
   * a name declared in several scopes (e.g. `edupush_ssl_verify`); without it the first declaration is used.
   */
  action<T extends ActionValue>(name: string, scope?: Scope): T | undefined;
  /** Server services for push types (channels, key preparation). Absent: only `poll only` push tokens work. */
  readonly push?: PushSupport;
}

/** What the push token types need from the server; built once per Deps (server/auth/push_services.ts). */
export interface PushSupport {
  /** Is a channel of this name configured? (`poll only` is not a channel.) */
  hasChannel(name: string): boolean;
  /**
   * Sends through the named channel. Never throws, never takes longer than the channel's timeout. A device the
   * provider reports as gone (FCM UNREGISTERED) is recorded on the token (tokeninfo + `token.stale_device`).
   */
  send(channel: string, token: TokenRecord, target: string, message: PushMessage): Promise<SendResult>;
  /** Takes back a stored challenge nobody can reach (delivery failed and the phone may not poll). */
  withdraw(challenge: ChallengeRecord): Promise<void>;
  /** A push enrollment began: start preparing a server key so its step 2 answers fast. */
  prepareEnrollment(): void;
  /** Wakes the long-polls and SSE streams of a v2 device, on every node (the answer bus). Never throws. */
  wakeDevice(serial: string): void;
}

/** /token/init and `pushgate token enroll` parameters, already validated for presence/shape by the route. */
export interface EnrollInput {
  readonly serial: string;
  /** Raw request parameters (strings), for type-specific options: `otpkey`, `genkey`, `otplen`, `hashlib`, `timeStep`, … */
  readonly params: Readonly<Record<string, string>>;
  readonly user: { readonly name: string; readonly realm: string } | null;
  /** Public URL of this server (config server.public_url), e.g. `https://mfa.example.org`. */
  readonly publicUrl: string;
}

/** Fields of the new token row. */
export interface TokenFields {
  readonly otpLen: number;
  readonly counter: number;
  readonly rolloutState: RolloutState;
  readonly active: boolean;
  readonly info: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  /** Two-step types: how long step 2 is accepted (then the half-enrolled token is refused and purged). */
  readonly rolloutTtlMs?: number;
}

export interface EnrollBeginResult {
  readonly fields: TokenFields;
  /** Wire-ready `detail` entries for the admin (e.g. `googleurl`, `otpkey`, `pushurl`) — without `serial`/`rollout_state`. */
  readonly details: Readonly<Record<string, unknown>>;
  /** The URL to show as a QR code in the terminal (CLI), if any. */
  readonly qrUrl?: string;
}

export type Verdict =
  | { readonly kind: 'valid'; readonly counter?: number }
  | { readonly kind: 'invalid' }
  | { readonly kind: 'pending' }
  | { readonly kind: 'declined' };

/** A challenge row as the auth layer stores it. */
export interface ChallengeRecord {
  readonly id: number;
  readonly transactionId: string;
  readonly serial: string;
  readonly nonce: string;
  readonly status: 'pending' | 'accepted' | 'declined';
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly session: string;
  readonly data: Readonly<Record<string, string>>;
}

/**
 * What a push login asks the user to prove besides "approve" (issue 11; tokens/push/proof.ts), decided per
 * transaction by the auth layer: a code shown at the login and on the phone (`match`), a code the user types at the
 * login (`login_code`), or the privacyIDEA app's choice among several options (`presence`).
 */
export type PushProof =
  | { readonly kind: 'match'; readonly code: string }
  | { readonly kind: 'login_code'; readonly code: string }
  | { readonly kind: 'presence'; readonly options: readonly string[]; readonly answer: string };

export interface ChallengeSpec {
  readonly nonce: string;
  readonly message: string;
  /** Overrides the type's client mode for this challenge (a push login code is typed: `interactive`). */
  readonly clientMode?: 'interactive' | 'poll';
  /** privacyIDEA's `presence_answer` of the challenge entry: the option the user must choose on the phone. */
  readonly presenceAnswer?: string;
  /** Extras for the client (push: `hideResponseInput`); absent for types that add none (HOTP/TOTP). */
  readonly attributes?: Readonly<Record<string, unknown>>;
  readonly data?: Readonly<Record<string, string>>;
}

export interface TokenType {
  readonly type: string;
  readonly title: string;
  readonly serialPrefix: string;
  readonly clientMode: 'interactive' | 'poll';
  /** The pass is `<pin><otp>` and the OTP length is the token's otpLen (hotp, totp). Otherwise the whole pass is the PIN. */
  readonly splitsPass: boolean;
  /** Can answer a PIN-only pass with a challenge (when `challenge_response` lists it, or always for out-of-band). */
  readonly canChallenge: boolean;
  /** Answered on another channel (push): no OTP in the pass, challenge always created, no fail counter on pending. */
  readonly outOfBand: boolean;
  /** Sort key in the token-list decision; push types sort last. */
  readonly checkOrder: number;
  readonly policyActions: readonly ActionDef[];
  /** The proofs this type's challenges can carry (push types); absent: none. */
  readonly pushProofs?: readonly PushProof['kind'][];

  enrollBegin(input: EnrollInput, ctx: TokenContext): Promise<EnrollBeginResult>;
  /**
   * Checks the OTP part of a pass (or, with `challenge`, the answer to that challenge).
   * Returns `valid` with the counter to store for replay protection (see TokenRecord.counter).
   */
  check(token: TokenRecord, input: { readonly otp: string; readonly challenge?: ChallengeRecord }, ctx: TokenContext): Promise<Verdict>;
  /**
   * Builds a challenge for this token (nonce, message, and `data` stored with it — push: the presigned smartphone
   * data). Default for OTP types: random nonce, `challenge_text`.
   */
  createChallenge?(token: TokenRecord, ctx: TokenContext, proof?: PushProof): Promise<ChallengeSpec>;
  /**
   * Out-of-band types: deliver a stored challenge (push). Must not throw and must not take longer than the
   * channel's timeout; a failure is reported as `delivered: false` with a text to append to the message.
   */
  deliverChallenge?(token: TokenRecord, challenge: ChallengeRecord, ctx: TokenContext): Promise<DeliveryResult>;
  /**
   * `POST /token/resync`: finds `otp1` within `syncWindow` values of the token and `otp2` right after it. Returns
   * the counter to store (the next acceptable value after otp2) and tokeninfo to merge (TOTP: `timeShift`), or null.
   */
  resync?(token: TokenRecord, otp1: string, otp2: string, syncWindow: number, ctx: TokenContext): ResyncResult | null;
}

export interface ResyncResult {
  readonly counter: number;
  readonly info?: Readonly<Record<string, string>>;
}

export interface DeliveryResult {
  readonly delivered: boolean;
  /** Appended (after a space) to the challenge message, e.g. the polling hint when Firebase failed. */
  readonly messageSuffix?: string;
}
