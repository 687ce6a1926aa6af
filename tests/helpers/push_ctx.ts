/**
 * Database-free test fixtures for the push module: a TokenContext backed by the real policy engine (core actions
 * plus the push types' actions), a recording PushSupport, pre-generated keys, and token/challenge records.
 */
import { buildActionRegistry, CORE_ACTIONS, scopesOfAction } from '../../policies/actions.ts';
import { createPolicyEngine } from '../../policies/engine.ts';
import { parsePolicies } from '../../policies/load.ts';
import type { ActionValue, Scope, Who } from '../../policies/types.ts';
import { createTokenRegistry, ALL_TOKEN_TYPES } from '../../tokens/index.ts';
import type { ChallengeRecord, PushSupport, TokenContext, TokenRecord } from '../../tokens/types.ts';
import type { PushMessage, SendResult } from '../../core/push_channel.ts';
import { generateServerKeyPair, type ServerKeyPair } from '../../tokens/push/signatures.ts';
import { FakeClock } from './fake_clock.ts';

export interface PolicyInput {
  name?: string;
  scope: Scope;
  actions: Record<string, unknown>;
  [k: string]: unknown;
}

/** A TokenContext whose `action` resolves `policies` with eduMFA semantics for `who`. */
export function policyCtx(
  policies: readonly PolicyInput[] = [],
  opts: { clock?: FakeClock; push?: PushSupport; who?: Who } = {},
): TokenContext & { clock: FakeClock } {
  const actions = buildActionRegistry(CORE_ACTIONS, createTokenRegistry(ALL_TOKEN_TYPES).actions());
  const parsed = parsePolicies(
    policies.map((p, i) => ({ name: `p${i}`, ...p })),
    actions,
    'policies',
  );
  if (parsed.problems.length) throw new Error(parsed.problems.join('\n'));
  const clock = opts.clock ?? new FakeClock();
  const engine = createPolicyEngine({ policies: parsed.policies, actions, clock });
  const who = opts.who ?? {};
  return {
    clock,
    push: opts.push,
    action<T extends ActionValue>(name: string, scope?: Scope): T | undefined {
      const s = scope ?? scopesOfAction(actions, name)[0];
      if (!s) throw new Error(`unknown action ${name}`);
      return engine.resolve(s, who).get<T>(name);
    },
  };
}

export interface RecordingSupport extends PushSupport {
  readonly sent: Array<{ channel: string; serial: string; target: string; message: PushMessage }>;
  readonly withdrawn: number[];
  prepared: number;
  /** Serials of the v2 devices woken. */
  readonly woken: string[];
  /** What the next sends return. */
  result: SendResult;
}

export function recordingSupport(channels: readonly string[] = ['fcm']): RecordingSupport {
  const support: RecordingSupport = {
    sent: [],
    withdrawn: [],
    prepared: 0,
    woken: [],
    result: { ok: true, ms: 1 },
    hasChannel: (name) => channels.includes(name),
    async send(channel, token, target, message) {
      support.sent.push({ channel, serial: token.serial, target, message });
      return support.result;
    },
    async withdraw(challenge) {
      support.withdrawn.push(challenge.id);
    },
    prepareEnrollment() {
      support.prepared++;
    },
    wakeDevice(serial) {
      support.woken.push(serial);
    },
  };
  return support;
}

let keyCache: Promise<ServerKeyPair[]> | null = null;
/** Three RSA-2048 server key pairs, generated once per test process. */
export function testServerKeys(): Promise<ServerKeyPair[]> {
  keyCache ??= Promise.all([generateServerKeyPair(2048), generateServerKeyPair(2048), generateServerKeyPair(2048)]);
  return keyCache;
}

/** A key source for createKeyPool/createPushServices that hands out the pre-generated keys round robin. */
export async function testKeySource(): Promise<() => Promise<ServerKeyPair>> {
  const keys = await testServerKeys();
  let i = 0;
  return async () => keys[i++ % keys.length]!;
}

export function tokenRecord(over: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id: 1,
    serial: 'EDUP0001',
    type: 'edupush',
    username: 'alice',
    realm: 'default',
    active: true,
    rolloutState: 'enrolled',
    pinHash: null,
    otpLen: 6,
    counter: 0,
    failCount: 0,
    maxFail: 10,
    description: '',
    info: {},
    secrets: {},
    createdAt: 0,
    lastAuthAt: null,
    lockedAt: null,
    ...over,
  };
}

export function challengeRecord(over: Partial<ChallengeRecord> = {}): ChallengeRecord {
  return {
    id: 7,
    transactionId: '01234567890123456789',
    serial: 'EDUP0001',
    nonce: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567',
    status: 'pending',
    createdAt: 0,
    expiresAt: Number.MAX_SAFE_INTEGER,
    session: '',
    data: {},
    ...over,
  };
}
