/**
 * The PushChannel contract and the channel registry built from `push.channels`.
 *
 * A channel delivers one message to one device. `send` never throws and never takes longer than the channel's
 * timeout: a slow or failing provider must not stall or fail a login (the challenge stays answerable by polling).
 * The name `poll only` is reserved for "no channel": nothing is ever sent.
 */
import type { Agent } from 'node:http';
import type { Credential } from 'firebase-admin/app';
import type { ChannelConfig } from '../config.ts';
import type { Clock } from '../clock.ts';
import { createFirebaseChannel } from './firebase.ts';

export const POLL_ONLY = 'poll only';

/** What a push notification carries (FCM HTTP v1 shape, protocol.md §3.4), without the device token. */
export interface PushMessage {
  /** The smartphone data (all strings). */
  readonly data: Readonly<Record<string, string>>;
  readonly notification: { readonly title: string; readonly body: string };
  readonly android: { readonly priority: 'high' | 'normal'; readonly ttlMs: number; readonly analyticsLabel: string };
  readonly apns: {
    readonly headers: Readonly<Record<string, string>>;
    readonly alert: { readonly title: string; readonly body: string };
    readonly sound: string;
    readonly category: string;
    readonly analyticsLabel: string;
  };
}

export type SendFailure = 'timeout' | 'unregistered' | 'rejected' | 'unavailable';

export type SendResult =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: SendFailure; readonly detail: string; readonly ms: number };

export interface PushChannel {
  readonly name: string;
  /** Delivers `message` to the device `target` (an FCM registration token). Never throws. */
  send(target: string, message: PushMessage): Promise<SendResult>;
  close(): Promise<void>;
}

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
