/**
 * The two push token types differ only in names (protocol.md §0, §9): `edupush` for the eduMFA Authenticator and
 * the legacy `push` for the (unsupported) privacyIDEA Authenticator. Everything else is shared.
 */
import type { ActionDef } from '../../policies/types.ts';

export interface PushVariant {
  /** Token type, `/ttype/<type>` endpoint, and the prefix of its policy actions. */
  readonly type: 'edupush' | 'push';
  readonly title: string;
  readonly serialPrefix: string;
  /** Enrollment URI up to the label, e.g. `edumfa-push://edumfa/`. */
  readonly uriPrefix: string;
  /** `description` of the `pushurl` enrollment detail. */
  readonly urlDescription: string;
}

export const EDUPUSH: PushVariant = Object.freeze({
  type: 'edupush',
  title: 'PUSH Token',
  serialPrefix: 'EDUP',
  uriPrefix: 'edumfa-push://edumfa/',
  urlDescription: 'URL for eduMFA Push Token',
});

export const LEGACY_PUSH: PushVariant = Object.freeze({
  type: 'push',
  title: 'Legacy PUSH Token',
  serialPrefix: 'PIPU',
  uriPrefix: 'otpauth://pipush/',
  urlDescription: 'URL for privacyIDEA Push Token',
});

export const PUSH_VARIANTS: readonly PushVariant[] = [EDUPUSH, LEGACY_PUSH];

export const DEFAULT_PUSH_MESSAGE = 'Please confirm the authentication on your mobile device!';
export const DEFAULT_PUSH_QUESTION = 'Do you want to confirm the login?';
export const DEFAULT_PUSH_TITLE = 'eduMFA';
/** Appended (after a space) to the challenge message when the push could not be delivered (eduMFA's text, both types). */
export const POLLING_HINT = 'Use the polling feature of your unsupported privacyIDEA Authenticator App to check for a new Login request.';
export const DEFAULT_ROLLOUT_TTL_MINUTES = 10;

/** The policy action names of a variant. */
export function actionNames(v: PushVariant) {
  const p = v.type;
  return {
    firebaseConfiguration: `${p}_firebase_configuration`,
    registrationUrl: `${p}_registration_url`,
    ttl: `${p}_ttl`,
    sslVerify: `${p}_ssl_verify`,
    forceAppPin: `${p}_force_app_pin`,
    textOnMobile: `${p}_text_on_mobile`,
    titleOnMobile: `${p}_title_on_mobile`,
    allowPolling: `${p}_allow_polling`,
    wait: `${p}_wait`,
  } as const;
}

/** The open device protocol v2 (docs/device-protocol.md): edupush tokens only. */
export const DEVICE_ACTIONS = {
  protocol: 'edupush_device_protocol',
  authMode: 'edupush_device_auth_mode',
  payload: 'edupush_device_payload',
} as const;

function deviceActions(): ActionDef[] {
  const a = DEVICE_ACTIONS;
  return [
    {
      name: a.protocol,
      scope: 'enrollment',
      type: 'bool',
      default: false,
      description:
        'Offer the pushgate device protocol v2: the enrollment URL gets `pushgate=2` (v1 apps ignore it) and the token may be completed at /device/v2/enroll.',
    },
    {
      name: a.authMode,
      scope: 'enrollment',
      type: 'enum',
      values: ['lax', 'strict'],
      default: 'lax',
      description:
        'v2 devices: `strict` requires a device that asks for biometrics before every signature (a `lax` device is refused); shown by the discovery endpoint.',
    },
    {
      name: a.payload,
      scope: 'authentication',
      type: 'enum',
      values: ['wakeup', 'encrypted'],
      default: 'wakeup',
      description:
        'v2 devices: what a push carries — `wakeup` (an opaque id; the device fetches the request over TLS) or `encrypted` (also the request sealed to the device key); `encrypted` also seals the requests of the long-poll and the SSE stream.',
    },
  ];
}

/** privacyIDEA's presence-check actions (legacy `push` only: the privacyIDEA Authenticator knows them). */
export const PRESENCE_ACTIONS = {
  requirePresence: 'push_require_presence',
  presenceOptions: 'push_presence_options',
  presenceCustomOptions: 'push_presence_custom_options',
  presenceNumOptions: 'push_presence_num_options',
} as const;

function presenceActions(): ActionDef[] {
  const a = PRESENCE_ACTIONS;
  return [
    {
      name: a.requirePresence,
      scope: 'authentication',
      type: 'bool',
      default: false,
      description:
        'privacyIDEA presence check: the app shows several options, the login names the right one, a wrong choice declines. Needs the privacyIDEA Authenticator 4.4 or newer; not with a wait policy.',
    },
    {
      name: a.presenceOptions,
      scope: 'authentication',
      type: 'enum',
      values: ['ALPHABETIC', 'NUMERIC', 'CUSTOM'],
      default: 'ALPHABETIC',
      description: 'The options of push_require_presence: A–Z, 00–99, or push_presence_custom_options.',
    },
    {
      name: a.presenceCustomOptions,
      scope: 'authentication',
      type: 'string',
      description: 'CUSTOM presence options separated by ":" (at least two, no ","; else A–Z is used).',
    },
    {
      name: a.presenceNumOptions,
      scope: 'authentication',
      type: 'int',
      min: 2,
      max: 10,
      default: 3,
      description: 'How many options the app shows for push_require_presence.',
    },
  ];
}

/** Tokeninfo keys (eduMFA's names where the apps or admins know them). */
export function infoKeys(v: PushVariant) {
  return {
    firebaseConfiguration: `${v.type}_firebase_configuration`,
    firebaseToken: 'firebase_token',
    publicKeySmartphone: 'public_key_smartphone',
    publicKeyServer: 'public_key_server',
    /** The registration URL put into the QR code; used at authentication when no policy gives one. */
    registrationUrl: 'registration_url',
    /** Admin-set per-token polling switch for `{p}_allow_polling: token`. */
    pollingAllowed: 'polling_allowed',
    /** Set (ISO time) when the push provider reported the device as gone; cleared by a Firebase token update. */
    deviceStale: 'device_stale',
    tokenKind: 'tokenkind',
  } as const;
}

/** Secret (encrypted) fields. */
export const SECRET_KEYS = {
  enrollmentCredential: 'enrollmentCredential',
  privateKeyServer: 'privateKeyServer',
} as const;

/** The policy actions a variant declares (protocol.md §7.1). */
export function pushActions(v: PushVariant): ActionDef[] {
  const a = actionNames(v);
  const sslValues = ['0', '1'];
  return [
    {
      name: a.firebaseConfiguration,
      scope: 'enrollment',
      type: 'string',
      description: `Channel (push.channels name) new ${v.type} tokens use, or "poll only". Required to enroll.`,
    },
    {
      name: a.registrationUrl,
      scope: 'enrollment',
      type: 'string',
      description: `URL the app talks to (default <server.public_url>/ttype/${v.type}); also used in push data.`,
    },
    {
      name: a.ttl,
      scope: 'enrollment',
      type: 'int',
      min: 1,
      max: 10080,
      default: DEFAULT_ROLLOUT_TTL_MINUTES,
      description: 'Minutes within which the app must complete the enrollment (enforced).',
    },
    {
      name: a.sslVerify,
      scope: 'enrollment',
      type: 'enum',
      values: sslValues,
      default: '1',
      description: 'Whether the app verifies the server certificate during enrollment (0/1).',
    },
    {
      name: a.forceAppPin,
      scope: 'enrollment',
      type: 'bool',
      default: false,
      description: 'The app protects the token with a PIN/biometric.',
    },
    {
      name: a.sslVerify,
      scope: 'authentication',
      type: 'enum',
      values: sslValues,
      default: '1',
      description: 'Whether the app verifies the server certificate when answering (0/1).',
    },
    {
      name: a.textOnMobile,
      scope: 'authentication',
      type: 'string',
      default: DEFAULT_PUSH_QUESTION,
      description: 'Question shown on the phone.',
    },
    {
      name: a.titleOnMobile,
      scope: 'authentication',
      type: 'string',
      default: DEFAULT_PUSH_TITLE,
      description: 'Title of the push notification.',
    },
    {
      name: a.allowPolling,
      scope: 'authentication',
      type: 'enum',
      values: ['allow', 'deny', 'token'],
      default: 'allow',
      description: 'Whether the app may poll for challenges: allow, deny, or per token (tokeninfo polling_allowed).',
    },
    {
      name: a.wait,
      scope: 'authentication',
      type: 'int',
      min: 0,
      max: 300,
      description: 'Seconds /validate/check waits for the answer in the same request (0 or unset: no waiting).',
    },
    ...(v.type === 'push' ? presenceActions() : []),
    ...(v.type === 'edupush' ? deviceActions() : []),
  ];
}
