/**
 * The channel registry built from `push.channels` (the PushChannel contract is core/push_channel.ts).
 *
 * A channel delivers one message to one device. `send` never throws and never takes longer than the channel's
 * timeout: a slow or failing provider must not stall or fail a login (the challenge stays answerable by polling).
 * The name `poll only` is reserved for "no channel": nothing is ever sent.
 */
import type { Agent } from 'node:http';
import type { Credential } from 'firebase-admin/app';
import type { ChannelConfig } from '../config.ts';
import type { Clock } from '../../core/clock.ts';
import { createFirebaseChannel } from './firebase.ts';
import type { PushChannel } from '../../core/push_channel.ts';

export interface ChannelRegistry {
  get(name: string): PushChannel | undefined;
  names(): string[];
  close(): Promise<void>;
}

/** Test seams for the Firebase channels (toolchain.md §3): a credential that never calls Google, a loopback agent. */
export interface FirebaseTestOptions {
  readonly credential?: Credential;
  readonly httpAgent?: Agent;
  /** Project id when no service-account file is read (with an injected credential). */
  readonly projectId?: string;
}

export interface ChannelRegistryOptions {
  readonly clock: Clock;
  readonly firebase?: FirebaseTestOptions;
}

export function createChannelRegistry(configs: readonly ChannelConfig[], opts: ChannelRegistryOptions): ChannelRegistry {
  const channels = new Map<string, PushChannel>();
  for (const cfg of configs) {
    channels.set(cfg.name, createFirebaseChannel(cfg, { clock: opts.clock, ...opts.firebase }));
  }
  return {
    get: (name) => channels.get(name),
    names: () => [...channels.keys()],
    async close() {
      await Promise.all([...channels.values()].map((c) => c.close()));
      channels.clear();
    },
  };
}
