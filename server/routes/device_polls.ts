/**
 * The held long-polls of v2 devices (`GET /device/v2/challenges`, docs/device-protocol.md 5.1) and what a node
 * knows of each device's list between two reads.
 *
 * A long-poll whose list is unchanged (served without Koa, server/routes/device.ts rawLongPoll, or having left it,
 * server/respond.ts leaveKoa) is held as one small object — the raw response, the device's identity (no token
 * record, no secrets), its ETag, its deadline, one timer and its registration on the answer bus — and answered on
 * the raw response: 200 with the new list when a notification (any
 * node) or an expiry changed it, 304 at the deadline, 304 when the bus closes. Nothing of the request's middleware
 * chain, parameters or token stays reachable while it waits.
 *
 * Reads are remembered per device (ETag, first expiry, time of the read) until any notification for the device
 * arrives (AnswerBus.observe, local or from another node), the first request expires, or the read is
 * `device.poll_seconds` old. While remembered, an unchanged re-poll (`If-None-Match` = that ETag) is held without a
 * database read, and a poll that reaches its deadline answers 304 without one: a device's list is read about once
 * per poll cycle instead of twice per cycle. A lost cross-node notification is noticed as before: by a read at most
 * one cycle later.
 */
import type { ServerResponse } from 'node:http';
import type { Deps } from '../deps.ts';
import type { AnswerListener } from '../auth/answers.ts';
import { deviceBusKey, type DeviceKeyCache } from '../../tokens/push/device.ts';
import { okEnvelope } from '../envelope.ts';
import { errorReply, sendReply } from '../respond.ts';
import { deviceRequests, type DeviceIdentity, type DeviceRequests } from '../auth/device.ts';

const BUS_PREFIX = deviceBusKey('');
const CHALLENGES_PATH = '/device/v2/challenges';

/** A read of a device's list as remembered: enough to tell whether an ETag is still the current one. */
interface Known {
  readonly etag: string;
  readonly nextExpiry: number | null;
  readonly readAt: number;
}

/** One held long-poll: an answer-bus listener with its response. Methods, not closures, hold the behaviour. */
class HeldPoll implements AnswerListener {
  readonly transactionId: string;
  cancelTimer: (() => void) | null = null;
  done = false;
  readonly polls: DevicePollsImpl;
  readonly res: ServerResponse;
  readonly device: DeviceIdentity;
  readonly etag: string;
  readonly deadline: number;
  readonly release: () => void;
  constructor(polls: DevicePollsImpl, res: ServerResponse, device: DeviceIdentity, etag: string, deadline: number, release: () => void) {
    this.transactionId = deviceBusKey(device.serial);
    this.polls = polls;
    this.res = res;
    this.device = device;
    this.etag = etag;
    this.deadline = deadline;
    this.release = release;
  }
  onAnswer(): void {
    void this.polls.recheck(this, false);
  }
  onBusClosed(): void {
    this.polls.finish(this, 304, null);
  }
}

/** 'close' of a held poll's response (the client left): the same function for every poll. */
function onHeldClose(this: ServerResponse & { [HELD]?: HeldPoll }): void {
  const held = this[HELD];
  if (held) held.polls.end(held);
}
const HELD = Symbol('pushgate.heldPoll');

export interface DevicePolls {
  /** The device's list: remembered when `etag` is still its current ETag (no read), else read now. */
  current(device: DeviceIdentity, etag: string | null): Promise<DeviceRequests | { readonly etag: string; readonly unchanged: true }>;
  /** Holds `res` (already out of Koa) until the list differs from `etag`, `deadline` passes or the bus closes. */
  hold(res: ServerResponse, device: DeviceIdentity, etag: string, deadline: number, release: () => void): void;
  /** Long-polls held now. */
  readonly held: number;
}

class DevicePollsImpl implements DevicePolls {
  private readonly known = new Map<string, Known>();
  /** Reads in flight per serial, so that a notification during a read keeps its result from being remembered. */
  private readonly reading = new Map<string, symbol>();
  private count = 0;
  private readonly maxAgeMs: number;

  private readonly deps: Deps;
  private readonly keys: DeviceKeyCache;

  constructor(deps: Deps, keys: DeviceKeyCache) {
    this.deps = deps;
    this.keys = keys;
    this.maxAgeMs = deps.config.device.pollSeconds * 1000;
    deps.answers.observe((key) => {
      if (!key.startsWith(BUS_PREFIX)) return;
      const serial = key.slice(BUS_PREFIX.length);
      this.known.delete(serial);
      this.reading.delete(serial);
    });
  }

  get held(): number {
    return this.count;
  }

  /** The remembered ETag of a device, if it still stands now. */
  private fresh(serial: string, now: number): Known | null {
    const k = this.known.get(serial);
    if (!k) return null;
    if (now - k.readAt >= this.maxAgeMs || (k.nextExpiry !== null && now >= k.nextExpiry)) {
      this.known.delete(serial);
      return null;
    }
    return k;
  }

  /** Reads the list and remembers it unless a notification for the device came while it was read. */
  async read(device: DeviceIdentity): Promise<DeviceRequests> {
    const mark = Symbol();
    this.reading.set(device.serial, mark);
    const readAt = this.deps.clock.now();
    try {
      const r = await deviceRequests(this.deps, this.keys, device);
      if (this.reading.get(device.serial) === mark) {
        // Insertion order is age order: re-inserted on every read, and old entries are dropped from the front.
        this.known.delete(device.serial);
        this.known.set(device.serial, { etag: r.etag, nextExpiry: r.nextExpiry, readAt });
        this.sweep(readAt);
      }
      return r;
    } finally {
      if (this.reading.get(device.serial) === mark) this.reading.delete(device.serial);
    }
  }

  /** Drops remembered reads older than a cycle (devices that stopped polling), oldest first. */
  private sweep(now: number): void {
    for (const [serial, k] of this.known) {
      if (now - k.readAt < this.maxAgeMs) return;
      this.known.delete(serial);
    }
  }

  async current(device: DeviceIdentity, etag: string | null) {
    if (etag !== null && this.fresh(device.serial, this.deps.clock.now())?.etag === etag) return { etag, unchanged: true as const };
    return this.read(device);
  }

  hold(res: ServerResponse, device: DeviceIdentity, etag: string, deadline: number, release: () => void): void {
    const held = new HeldPoll(this, res, device, etag, deadline, release);
    if (res.closed || res.destroyed) {
      release();
      return;
    }
    (res as ServerResponse & { [HELD]?: HeldPoll })[HELD] = held;
    res.once('close', onHeldClose);
    this.count++;
    this.deps.answers.listen(held);
    // A notification may have come between the read and now: the remembered read was forgotten then.
    const k = this.fresh(device.serial, this.deps.clock.now());
    if (k?.etag !== etag) void this.recheck(held, false);
    else this.arm(held, k.nextExpiry);
  }

  /** The timer of a held poll: its deadline, or the first expiry of its list when that comes first (+1 ms). */
  private arm(held: HeldPoll, nextExpiry: number | null): void {
    held.cancelTimer?.();
    const now = this.deps.clock.now();
    const at = nextExpiry === null ? held.deadline : Math.min(held.deadline, nextExpiry + 1);
    held.cancelTimer = this.deps.clock.schedule(Math.max(0, at - now), () => {
      held.cancelTimer = null;
      void this.recheck(held, true);
    });
  }

  /**
   * Is the list still the held ETag? After a notification or an expiry: read it (unless a read since is
   * remembered) → 200 when it changed. At the deadline with nothing changed: 304.
   */
  async recheck(held: HeldPoll, timer: boolean): Promise<void> {
    if (held.done) return;
    let k = this.fresh(held.device.serial, this.deps.clock.now());
    if (k?.etag !== held.etag) {
      let r: DeviceRequests;
      try {
        r = await this.read(held.device);
      } catch (err) {
        if (held.done) return;
        this.end(held);
        sendReply(this.deps, held.res, errorReply(this.deps, 'GET', CHALLENGES_PATH, err).reply);
        return;
      }
      if (held.done) return;
      if (r.etag !== held.etag) {
        this.finish(held, 200, r);
        return;
      }
      k = { etag: r.etag, nextExpiry: r.nextExpiry, readAt: this.deps.clock.now() };
    }
    if (this.deps.clock.now() >= held.deadline) this.finish(held, 304, null);
    else if (timer || !held.cancelTimer) this.arm(held, k.nextExpiry);
  }

  /** Answers a held poll on its raw response: 200 with the list (and its ETag) or 304 with the held ETag. */
  finish(held: HeldPoll, status: 200 | 304, list: DeviceRequests | null): void {
    if (held.done) return;
    this.end(held);
    const now = this.deps.clock.now();
    if (status === 200 && list)
      sendReply(this.deps, held.res, {
        status: 200,
        body: okEnvelope(now, list.requests, { etag: list.etag }),
        headers: { ETag: list.etag },
      });
    else sendReply(this.deps, held.res, { status: 304, body: null, headers: { ETag: held.etag } });
  }

  /** Stops holding: off the bus, timer cancelled, connection slot released (once). */
  end(held: HeldPoll): void {
    if (held.done) return;
    held.done = true;
    this.count--;
    held.cancelTimer?.();
    held.cancelTimer = null;
    this.deps.answers.unlisten(held);
    const res = held.res as ServerResponse & { [HELD]?: HeldPoll };
    delete res[HELD];
    res.off('close', onHeldClose);
    held.release();
  }
}

export function createDevicePolls(deps: Deps, keys: DeviceKeyCache): DevicePolls {
  return new DevicePollsImpl(deps, keys);
}
