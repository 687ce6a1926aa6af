/** The result of a login attempt. A failed login is a value, not an exception. */
export interface ChallengeOut {
  readonly transactionId: string;
  readonly serial: string;
  readonly type: string;
  readonly clientMode: 'interactive' | 'poll';
  readonly message: string;
  /** Type-specific extras (push: `hideResponseInput`). Absent or empty: no `attributes` key on the wire. */
  readonly attributes?: Readonly<Record<string, unknown>>;
  readonly image?: string;
  /** privacyIDEA's `link`: the enrollment URI the QR code (`image`) shows — for a user on the phone itself. */
  readonly link?: string;
  /** privacyIDEA's `presence_answer`: the option to choose on the phone (push_require_presence). */
  readonly presenceAnswer?: string;
}

interface Common {
  /** For the audit: serials involved and the policies that matched. */
  readonly serials: readonly string[];
  readonly policies: readonly string[];
}

export type Outcome =
  | (Common & {
      readonly kind: 'accept';
      readonly message: string;
      readonly serial?: string;
      readonly type?: string;
      readonly otpLen?: number;
    })
  | (Common & {
      readonly kind: 'reject';
      readonly message: string;
      readonly serial?: string;
      readonly type?: string;
      readonly otpLen?: number;
    })
  | (Common & { readonly kind: 'declined'; readonly message: string; readonly serial?: string; readonly type?: string })
  | (Common & {
      readonly kind: 'challenge';
      readonly challenges: readonly ChallengeOut[];
      readonly preferredClientMode: string;
      /** Enrollment during login (enroll_via_multichallenge): the type of the token being enrolled. */
      readonly enrollment?: string;
      /** The open push login of this address again (its pass repeated, server/auth/push_fatigue.ts): no new push. */
      readonly repeated?: true;
    });

/** The message of a login declined on the phone (Keycloak shows detail.message of a REJECT to the user). */
export const DECLINED_MESSAGE = 'The login was declined on the smartphone.';

/**
 * The outcome in the audit trail and events. On the wire a declined login is REJECT unless the authorization policy
 * `declined_authentication: declined` asks for DECLINED (server/envelope.ts outcomeEnvelope).
 */
export const AUTHENTICATION: Record<Outcome['kind'], string> = {
  accept: 'ACCEPT',
  reject: 'REJECT',
  declined: 'DECLINED',
  challenge: 'CHALLENGE',
};
