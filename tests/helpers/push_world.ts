/** A test world set up for push: poll-only enrollment policies, pre-generated server keys, optional fake FCM. */
import type { TestWorld, WorldOptions } from './test_app.ts';
import { enroll, policy, world, type Teardown } from './kit.ts';
import { FakePhone, makePhoneKey, type AppStyle, type PhoneKeyPair } from './fake_phone.ts';
import type { FakeFcm } from './fake_fcm.ts';
import { testKeySource } from './push_ctx.ts';

export interface PushWorldOptions {
  /** Extra policies (YAML-like entries, see kit.policy). */
  policies?: Array<Record<string, unknown>>;
  /** Enrollment channel for both types (default `poll only`). */
  channel?: string;
  fcm?: FakeFcm;
  timeoutMs?: number;
  /** Further config keys (merged over the push defaults). */
  config?: Record<string, unknown>;
  /** Further world options (e.g. `databaseUrl` and `key` for two nodes on one database). */
  world?: Pick<WorldOptions, 'databaseUrl' | 'key' | 'files'>;
}

export async function pushWorld(t: Teardown, o: PushWorldOptions = {}): Promise<TestWorld> {
  const channel = o.channel ?? 'poll only';
  return world(t, {
    ...(o.world ?? {}),
    config: {
      policies: [
        policy('push-enroll', 'enrollment', { edupush_firebase_configuration: channel, push_firebase_configuration: channel }),
        ...(o.policies ?? []),
      ],
      ...(o.fcm
        ? { push: { channels: [{ name: 'fcm', type: 'firebase', service_account_file: 'unused.json', timeout_ms: o.timeoutMs ?? 3000 }] } }
        : {}),
      ...(o.config ?? {}),
    },
    push: { keys: { generate: await testKeySource(), size: 1 }, firebase: o.fcm?.firebase },
  });
}

const keyCache = new Map<string, PhoneKeyPair>();
/** Phone keys, generated once per test process and kind. */
export function phoneKey(kind: 'rsa' | 'ec' = 'rsa'): PhoneKeyPair {
  let k = keyCache.get(kind);
  if (!k) {
    k = makePhoneKey(kind);
    keyCache.set(kind, k);
  }
  return k;
}

export function phoneFor(w: TestWorld, style: AppStyle = 'edumfa-next', kind: 'rsa' | 'ec' = 'rsa'): FakePhone {
  return new FakePhone({ call: (m, p, params, opts) => w.call(m, p, params, opts), clock: w.clock }, style, phoneKey(kind));
}

/** /token/init (admin) for alice with PIN 1234, then the phone scans the QR URL. Returns the init body. */
export async function beginEnrollment(
  w: TestWorld,
  phone: FakePhone,
  type: 'edupush' | 'push' = 'edupush',
  extra: Record<string, unknown> = {},
): Promise<any> {
  const body = await enroll(w, { type, genkey: 1, user: 'alice', pin: '1234', ...extra });
  phone.scan(body.detail.pushurl.value);
  return body;
}

/** Enrollment step 1 + 2; throws unless step 2 succeeded. Returns the serial. */
export async function enrollPhone(
  w: TestWorld,
  phone: FakePhone,
  type: 'edupush' | 'push' = 'edupush',
  extra: Record<string, unknown> = {},
): Promise<string> {
  const body = await beginEnrollment(w, phone, type, extra);
  const r = await phone.enroll();
  if (r.status !== 200) throw new Error(`step 2 failed: ${r.status} ${r.text}`);
  return body.detail.serial as string;
}
