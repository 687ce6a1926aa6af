/**
 * Back-off (issue 9): failed PIN / password attempts per user and per end-user address, and challenge triggers per
 * user, counted with rate-limiter-flexible. Built once per Deps; the routes call it.
 *
 * Failed attempts are reserved BEFORE any PIN work: `begin` consumes one point of the user's (and the address's)
 * budget, so of 64 parallel wrong PINs only the budget's worth reach the hasher — the rest are answered 429 at
 * once. What the attempt turned out to be settles the points: a failure keeps them, a success deletes the user's
 * counter (and gives the address its point back), anything else (a challenge, a push wait, an error) gives both
 * back. `limits.failed_per_user` attempts per `limits.failed_window_seconds` pass; the next one is refused and
 * the key stays blocked for `limits.failed_block_seconds` (rate-limiter-flexible's blockDuration).
 *
 * Stores: RateLimiterMemory on one node (SQLite); RateLimiterRedis when `bus.redis_url` is set; otherwise on
 * PostgreSQL / MariaDB the database store (table `rate_limits`, migration 003_backoff) so that every node counts together.
 * A store that fails falls back to a per-node memory limiter (the library's insurance limiter): logins go on.
 *
 * Time: the windows run on the wall clock — rate-limiter-flexible calls Date.now() and setTimeout itself, and a
 * Redis store expires keys by Redis's clock. This is the one place where pushgate's time does not come from
 * deps.clock (a FakeClock does not move these windows). Tests therefore count attempts up to a threshold and check
 * the 429 and the range of its Retry-After; they never wait for a window to pass.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type * as IoRedisModule from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config.ts';
import type { Events } from '../../core/events.ts';
import type { Store } from '../store/store.ts';
import { TooManyRequestsError } from '../../core/errors.ts';
import { matchesClient } from '../../policies/match.ts';
import type { Realms } from './users.ts';

export type ThrottleStore = 'memory' | 'database' | 'redis';
export type ThrottleLimit = 'user' | 'address' | 'challenges';

/** What one attempt counts against: the user (`userKey`) and, when known, the end user's address. */
export interface AttemptKeys {
  readonly user: string;
  readonly address: string | null;
}

/** An attempt in flight: which points it holds. Settle it with succeeded / release (or keep it: a failure). */
export interface Attempt {
  readonly keys: AttemptKeys;
  userHeld: boolean;
  addressHeld: boolean;
}

export interface Throttle {
  readonly store: ThrottleStore;
  /** Reserves one failed attempt for the user and the address; throws TooManyRequestsError (429) when over budget. */
  begin(keys: AttemptKeys): Promise<Attempt>;
  /** A successful authentication: the user's counter starts again, the address gets its point back. */
  succeeded(attempt: Attempt): Promise<void>;
  /** Not a failed attempt (challenge, wait, error): both points go back. */
  release(attempt: Attempt): Promise<void>;
  /** One challenge trigger for the user; throws TooManyRequestsError (429) when over `limits.challenges_per_user`. */
  challenge(userKey: string): Promise<void>;
  /**
   * The user's failed attempts counted in the current window (points held by attempts in flight included), read
   * without consuming; 0 when the limit is off or the store cannot be read. "Backed off" for the push risk
   * decision (server/auth/push_risk.ts).
   */
  failedAttempts(userKey: string): Promise<number>;
  close(): Promise<void>;
}

const FAILED_MESSAGE = 'Too many failed authentication attempts. Try again later.';
const CHALLENGE_MESSAGE = 'Too many challenges were triggered for this user. Try again later.';

/** Keys stay short enough for the database store's 255-character key column (prefix included). */
export function storeKey(key: string): string {
  return key.length <= 160 ? key : `sha256:${crypto.createHash('sha256').update(key).digest('hex')}`;
}

/**
 * The user a check counts against: the resolved user (realm and name as the realm reports them), else the name as
 * given (an unknown user is refused before any PIN work anyway), or the serial of a serial-only check.
 */
export async function userKeyOf(
  realms: Realms,
  subject: { readonly user?: string; readonly realm?: string; readonly serial?: string },
): Promise<string> {
  if (subject.user) {
    try {
      return resolvedUserKey(await realms.resolveUser(subject.user, subject.realm));
    } catch {
      return `user:${subject.realm ?? ''}:${subject.user}`;
    }
  }
  return `serial:${subject.serial ?? ''}`;
}

/** The key of a user already resolved by its realm (the same as userKeyOf's for that user). */
export const resolvedUserKey = (u: { readonly name: string; readonly realm: string }): string => `user:${u.realm}:${u.name}`;

/** The admin a POST /auth counts against. */
export const adminKeyOf = (username: string): string => `admin:${username}`;

/**
 * The end-user address an attempt counts against, or null for none. Never the IdP's own address as a whole — every
 * login of the institution comes from it:
 * - the peer is a trusted proxy (`server.trusted_proxies`): the address it names (`client` parameter or
 *   X-Forwarded-For); when it names none, no address is counted;
 * - `server.trusted_proxies` is empty: on /validate/* the peer is usually the IdP itself, so no address is counted
 *   (per-user limits still apply); on /auth the peer is the administrator's browser and is counted;
 * - otherwise (proxies are configured and the peer is not one of them) the peer is a direct client and is counted.
 */
export function throttleAddress(config: Pick<Config, 'server'>, peer: string, client: string, route: 'validate' | 'auth'): string | null {
  const proxies = config.server.trustedProxies;
  if (proxies.length && matchesClient(proxies, peer)) return client && client !== peer ? client : null;
  if (!proxies.length && route === 'validate') return null;
  return peer || null;
}

export function throttleStoreOf(config: Pick<Config, 'limits' | 'bus'>, dialect: Store['dialect']): ThrottleStore {
  const wanted = config.limits.store;
  if (wanted !== 'auto') return wanted;
  if (config.bus.redisUrl) return 'redis';
  return dialect === 'sqlite' ? 'memory' : 'database';
}

/** A memory limiter that reports each use: as an insurance limiter it answers only while the shared store fails. */
class InsuranceMemory extends RateLimiterMemory {
  private readonly used: () => void;
  constructor(opts: ConstructorParameters<typeof RateLimiterMemory>[0], used: () => void) {
    super(opts);
    this.used = used;
  }
  override consume(...args: Parameters<RateLimiterMemory['consume']>) {
    this.used();
    return super.consume(...args);
  }
  override reward(...args: Parameters<RateLimiterMemory['reward']>) {
    this.used();
    return super.reward(...args);
  }
  override delete(...args: Parameters<RateLimiterMemory['delete']>) {
    this.used();
    return super.delete(...args);
  }
}

export function createThrottle(deps: { config: Config; events: Events; store: Store }): Throttle {
  const { config, events, store } = deps;
  const limits = config.limits;
  const kind = throttleStoreOf(config, store.dialect);
  const onStoreError = (err: unknown) => events.emit('log', { level: 'warn', msg: 'rate limit store error', error: String(err) });

  let redis: IoRedisModule.Redis | null = null;
  if (kind === 'redis') {
    const { Redis } = createRequire(import.meta.url)('ioredis') as typeof IoRedisModule;
    // No offline queue: while Redis is unreachable a call fails at once and the memory insurance limiter answers.
    redis = new Redis(config.bus.redisUrl!, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on('error', onStoreError);
  }

  // The insurance limiter is only asked when the shared store failed: every use is reported (the first, then every
  // 100th, so an outage is visible in the log without a line per request).
  let fallbacks = 0;
  const onFallback = () => {
    if (fallbacks++ % 100 === 0)
      events.emit('log', { level: 'warn', msg: `rate limit store (${kind}) failed: counting in this node's memory`, fallbacks });
  };
  let cleaner = true; // one limiter per database table deletes its expired rows
  const make = (name: string, points: number, duration: number, blockDuration: number): RateLimiterAbstract | null => {
    if (points <= 0) return null;
    const opts = { keyPrefix: `${limits.keyPrefix}:${name}`, points, duration, blockDuration };
    if (kind === 'memory') return new RateLimiterMemory(opts);
    const memory = new InsuranceMemory(opts, onFallback);
    if (kind === 'redis') return new RateLimiterRedis({ ...opts, storeClient: redis, insuranceLimiter: memory });
    const limiter = store.rateLimiter({ ...opts, insuranceLimiter: memory, clearExpired: cleaner });
    cleaner = false;
    return limiter;
  };
  const userLimiter = make('failed_user', limits.failedPerUser, limits.failedWindowSeconds, limits.failedBlockSeconds);
  const addressLimiter = make('failed_address', limits.failedPerAddress, limits.failedWindowSeconds, limits.failedBlockSeconds);
  const challengeLimiter = make('challenges_user', limits.challengesPerUser, limits.challengesWindowSeconds, 0);

  /** Consumes one point; a refusal becomes the 429 (with the library's time until the key frees up). */
  const consume = async (limiter: RateLimiterAbstract, key: string, limit: ThrottleLimit, message: string): Promise<void> => {
    try {
      await limiter.consume(storeKey(key));
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      const retryAfterSeconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      events.emit('throttle.refused', { limit, key, retryAfterSeconds });
      throw new TooManyRequestsError(message, retryAfterSeconds);
    }
  };
  /** Settling is best effort: a store hiccup must not turn an answered login into an error. */
  const quietly = (p: Promise<unknown>): Promise<void> => p.then(() => {}, onStoreError);

  const throttle: Throttle = {
    store: kind,
    async begin(keys) {
      const attempt: Attempt = { keys, userHeld: false, addressHeld: false };
      if (addressLimiter && keys.address) {
        await consume(addressLimiter, keys.address, 'address', FAILED_MESSAGE);
        attempt.addressHeld = true;
      }
      if (userLimiter) {
        try {
          await consume(userLimiter, keys.user, 'user', FAILED_MESSAGE);
        } catch (err) {
          await throttle.release(attempt);
          throw err;
        }
        attempt.userHeld = true;
      }
      return attempt;
    },
    async succeeded(attempt) {
      const jobs: Promise<unknown>[] = [];
      if (userLimiter) jobs.push(userLimiter.delete(storeKey(attempt.keys.user)));
      if (attempt.addressHeld && addressLimiter && attempt.keys.address)
        jobs.push(addressLimiter.reward(storeKey(attempt.keys.address), 1));
      attempt.userHeld = false;
      attempt.addressHeld = false;
      await quietly(Promise.all(jobs));
    },
    async release(attempt) {
      const jobs: Promise<unknown>[] = [];
      if (attempt.userHeld && userLimiter) jobs.push(userLimiter.reward(storeKey(attempt.keys.user), 1));
      if (attempt.addressHeld && addressLimiter && attempt.keys.address)
        jobs.push(addressLimiter.reward(storeKey(attempt.keys.address), 1));
      attempt.userHeld = false;
      attempt.addressHeld = false;
      await quietly(Promise.all(jobs));
    },
    async challenge(userKey) {
      if (challengeLimiter) await consume(challengeLimiter, userKey, 'challenges', CHALLENGE_MESSAGE);
    },
    async failedAttempts(userKey) {
      if (!userLimiter) return 0;
      try {
        return (await userLimiter.get(storeKey(userKey)))?.consumedPoints ?? 0;
      } catch (err) {
        onStoreError(err);
        return 0;
      }
    },
    async close() {
      redis?.disconnect();
    },
  };
  return throttle;
}
