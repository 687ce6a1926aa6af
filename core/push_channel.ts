/**
 * The PushChannel contract: what a push notification carries, what a send answers, and the reserved name
 * `poll only` ("no channel": nothing is ever sent). A channel delivers one message to one device; `send` never
 * throws and never takes longer than the channel's timeout, so a slow or failing provider cannot stall or fail a
 * login (the challenge stays answerable by polling). The channels themselves and their registry live in
 * server/push/.
 */
export const POLL_ONLY = 'poll only';
/**
 * The reserved channel name `longpoll`: no push provider; a v2 device holds a long-poll or an SSE stream and is woken
 * through the answer bus (docs/device-protocol.md). For a v1 app it is the same as `poll only`.
 */
export const LONGPOLL = 'longpoll';

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
