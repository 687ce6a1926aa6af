/**
 * PIN and password hashing: argon2id (OWASP defaults m=19 MiB, t=2, p=1). Hashing runs on libuv's thread pool,
 * never on the event loop, and at most `maxConcurrent` at once (default: cores − 1), so a flood of PIN checks
 * queues behind itself while phone answers, polls and the health check keep being served. The queue is bounded and
 * fair per key (server/auth/limiter.ts): a refused check is an UnavailableError (503), a check whose client went
 * away is dropped unhashed (ClientGoneError).
 */
import argon2 from 'argon2';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import { pinQueueDefaults } from '../config.ts';
import type { Events } from '../../core/events.ts';
import { Limiter, type QueueJob } from './limiter.ts';

/** Who a hash is for (the fairness key: a user, an admin name) and whether its client is still there. */
export type PinJob = QueueJob;

export interface PinHasher {
  hash(secret: string, job?: PinJob): Promise<string>;
  /**
   * True iff `secret` matches `stored`. A null stored hash (no PIN set) matches only the empty string. Rejects with
   * UnavailableError when the queue refuses the job, with ClientGoneError when `job.signal` fired before it ran.
   */
  verify(stored: string | null, secret: string, job?: PinJob): Promise<boolean>;
  readonly limiter: Limiter;
}

export interface PinHashOptions {
  memoryKib: number;
  timeCost: number;
  parallelism: number;
  maxConcurrent: number;
  /** The queue's bounds; defaults as in config (pinQueueDefaults). */
  maxQueue?: number;
  maxQueuePerKey?: number;
  maxWaitMs?: number;
}

/** The argon2 calls, replaceable in tests (to hold a hash, or count them). */
export interface Argon {
  hash(secret: string, params: { type: 2; memoryCost: number; timeCost: number; parallelism: number }): Promise<string>;
  verify(stored: string, secret: string): Promise<boolean>;
}

export interface PinHasherEnv {
  clock?: Clock;
  /** Refused and dropped jobs are emitted as `pin.rejected`, a client's job that gets its slot as `pin.started`. */
  events?: Events;
  argon?: Argon;
}

export function createPinHasher(o: PinHashOptions, env: PinHasherEnv = {}): PinHasher {
  const defaults = pinQueueDefaults(o.maxConcurrent, o.maxWaitMs);
  const events = env.events;
  const limiter = new Limiter({
    max: o.maxConcurrent,
    maxQueue: o.maxQueue ?? defaults.maxQueue,
    maxQueuePerKey: o.maxQueuePerKey ?? defaults.maxQueuePerKey,
    maxWaitMs: defaults.maxWaitMs,
    clock: env.clock ?? systemClock,
    onReject: events ? (reason, key) => events.emit('pin.rejected', { reason, key }) : undefined,
    onStart: events ? (waitMs) => events.emit('pin.started', { waitMs }) : undefined,
  });
  const impl: Argon = env.argon ?? argon2;
  const params = { type: argon2.argon2id as 2, memoryCost: o.memoryKib, timeCost: o.timeCost, parallelism: o.parallelism };
  return {
    limiter,
    hash: (secret, job) => limiter.run(() => impl.hash(secret, params), job),
    async verify(stored, secret, job) {
      if (stored === null || stored === '') return secret === '';
      return limiter.run(async () => {
        try {
          return await impl.verify(stored, secret);
        } catch {
          return false; // a malformed stored hash never matches
        }
      }, job);
    },
  };
}
