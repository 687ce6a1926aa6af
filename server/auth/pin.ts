/**
 * PIN and password hashing: argon2id (OWASP defaults m=19 MiB, t=2, p=1). Hashing runs on libuv's thread pool,
 * never on the event loop, and at most `maxConcurrent` at once (default: cores − 1), so a flood of PIN checks
 * queues behind itself while phone answers, polls and the health check keep being served.
 */
import argon2 from 'argon2';
import { Limiter } from './limiter.ts';

export interface PinHasher {
  hash(secret: string): Promise<string>;
  /** True iff `secret` matches `stored`. A null stored hash (no PIN set) matches only the empty string. */
  verify(stored: string | null, secret: string): Promise<boolean>;
  readonly limiter: Limiter;
}

export interface PinHashOptions { memoryKib: number; timeCost: number; parallelism: number; maxConcurrent: number }

export function createPinHasher(o: PinHashOptions): PinHasher {
  const limiter = new Limiter(o.maxConcurrent);
  const params = { type: argon2.argon2id as 2, memoryCost: o.memoryKib, timeCost: o.timeCost, parallelism: o.parallelism };
  return {
    limiter,
    hash: (secret) => limiter.run(() => argon2.hash(secret, params)),
    async verify(stored, secret) {
      if (stored === null || stored === '') return secret === '';
      try {
        return await limiter.run(() => argon2.verify(stored, secret));
      } catch {
        return false; // a malformed stored hash never matches
      }
    },
  };
}
