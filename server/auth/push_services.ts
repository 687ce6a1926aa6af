/**
 * The push services one Deps owns: the channel registry (from `push.channels`), the server-key pool for enrollment
 * step 2, and the PushSupport the push token types receive in their TokenContext (sending with stale-device
 * bookkeeping and delivery events, withdrawing unreachable challenges).
 */
import type { Config } from '../config.ts';
import type { Clock } from '../../core/clock.ts';
import type { Events } from '../../core/events.ts';
import type { Store } from '../store/store.ts';
import { createChannelRegistry, type ChannelRegistry, type FirebaseTestOptions } from '../push/channel.ts';
import { POLL_ONLY } from '../../core/push_channel.ts';
import { createKeyPool, type KeyPool, type KeyPoolOptions } from '../../tokens/push/signatures.ts';
import { infoKeys, PUSH_VARIANTS } from '../../tokens/push/variants.ts';
import type { PushSupport } from '../../tokens/types.ts';
import { PushStateMemory } from './push_memory.ts';
import { deviceBusKey } from '../../tokens/push/device.ts';
import type { AnswerBus } from './answers.ts';

export interface PushServices {
  readonly channels: ChannelRegistry;
  readonly keys: KeyPool;
  /** Handed to token types as `TokenContext.push`. */
  readonly support: PushSupport;
  /** This node's short memory of open push logins and back-off refusals, for repeated logins (server/auth/push_memory.ts). */
  readonly memory: PushStateMemory;
  /**
   * This process answers `/ttype/<type>` (called by the smartphone router): keep server keys ready from now on.
   * Processes that never serve the phone (CLI) never generate keys ahead of time.
   */
  startServing(): void;
  close(): Promise<void>;
}

export interface PushServicesOptions {
  /** Server-key pool settings (tests: `bits: 2048` or a `generate` that hands out pre-made keys). */
  readonly keys?: KeyPoolOptions;
  /** Firebase test seams: credential, loopback agent, project id. */
  readonly firebase?: FirebaseTestOptions;
}

export interface PushServicesDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly events: Events;
  readonly store: Store;
  /** Wakes v2 devices' long-polls and SSE streams (on every node). */
  readonly answers: Pick<AnswerBus, 'notify'>;
}

export function createPushServices(deps: PushServicesDeps, opts: PushServicesOptions = {}): PushServices {
  const channels = createChannelRegistry(deps.config.push.channels, { clock: deps.clock, firebase: opts.firebase });
  const keys = createKeyPool(opts.keys);
  let serving = false;

  const support: PushSupport = {
    hasChannel: (name) => name !== POLL_ONLY && channels.get(name) !== undefined,

    async send(channelName, token, target, message) {
      const channel = channels.get(channelName);
      if (!channel) {
        const detail = `no channel named '${channelName}'`;
        deps.events.emit('delivery.failed', { serial: token.serial, channel: channelName, reason: detail, ms: 0 });
        return { ok: false, reason: 'unavailable', detail, ms: 0 };
      }
      const result = await channel.send(target, message);
      if (result.ok) {
        deps.events.emit('delivery.sent', { serial: token.serial, channel: channelName, ms: result.ms });
        return result;
      }
      deps.events.emit('delivery.failed', {
        serial: token.serial,
        channel: channelName,
        reason: `${result.reason}: ${result.detail}`,
        ms: result.ms,
      });
      if (result.reason === 'unregistered') await markStale(token.serial, target, result.detail);
      return result;
    },

    async withdraw(challenge) {
      // Nobody can reach it: delete the row so it can be neither answered, polled nor finalized.
      await deps.store.challenges.delete(challenge.id);
    },

    prepareEnrollment: () => {
      if (serving) keys.warm();
    },

    wakeDevice: (serial) => deps.answers.notify(deviceBusKey(serial)),
  };

  /** Records on the token that the provider no longer knows its device — unless the phone sent a new FCM token meanwhile. */
  async function markStale(serial: string, target: string, detail: string): Promise<void> {
    const fresh = await deps.store.tokens.bySerial(serial);
    const variant = fresh ? PUSH_VARIANTS.find((v) => v.type === fresh.type) : undefined;
    if (!fresh || !variant) return;
    const keys = infoKeys(variant);
    if (fresh.info[keys.firebaseToken] !== target) return;
    const now = deps.clock.now();
    await deps.store.tokens.update(serial, { info: { ...fresh.info, [keys.deviceStale]: new Date(now).toISOString() } }, now);
    deps.events.emit('token.stale_device', { serial, reason: `push provider: ${detail || 'device unregistered'}` });
  }

  return {
    channels,
    keys,
    support,
    memory: new PushStateMemory(),
    startServing() {
      serving = true;
      keys.warm();
    },
    async close() {
      keys.close();
      await channels.close();
    },
  };
}
