/**
 * The back-off on rate-limiter-flexible's Redis store (`bus.redis_url` set): two nodes (two worlds, each with its own
 * SQLite database but the same Redis and the same limits.key_prefix) count one user's failed attempts together.
 * Skipped, with the reason in the title, when Redis at 127.0.0.1:6379 is unreachable.
 */
import test from 'ava';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type * as IoRedisModule from 'ioredis';
import { RFC, check, enrollHotp, world } from '../helpers/kit.ts';
import { reachable } from '../helpers/wait.ts';

const REDIS_URL = process.env.PUSHGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const at = new URL(REDIS_URL);
const up = await reachable(Number(at.port || 6379), at.hostname);
const skip = up ? '' : ` [skipped: Redis at ${at.hostname}:${at.port || 6379} is unreachable]`;
const maybe = up ? test : test.skip;

maybe(
  `two nodes on one Redis count a user's failed attempts together: 429 + Retry-After, keys under limits.key_prefix${skip}`,
  async (t) => {
    const prefix = `pgtest_redis_${crypto.randomBytes(6).toString('hex')}`;
    const config = { bus: { redis_url: REDIS_URL }, limits: { key_prefix: prefix, failed_per_user: 3, failed_block_seconds: 90 } };
    const a = await world(t, { config, databaseUrl: 'sqlite::memory:' });
    const b = await world(t, { config, databaseUrl: 'sqlite::memory:' });
    t.is(a.deps.throttle.store, 'redis');
    await enrollHotp(a);
    await enrollHotp(b);
    const { Redis } = createRequire(import.meta.url)('ioredis') as typeof IoRedisModule;
    const redis = new Redis(REDIS_URL);
    t.teardown(async () => {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    });
    t.is((await check(a, { user: 'alice', pass: '0000000000' })).status, 200);
    t.is((await check(b, { user: 'alice', pass: '0000000000' })).status, 200);
    t.is((await check(a, { user: 'alice', pass: '0000000000' })).status, 200);
    t.is(await redis.get(`${prefix}:failed_user:user:default:alice`), '3', 'the count is in Redis');
    const refused = await check(b, { user: 'alice', pass: '1234' + RFC[0] });
    t.is(refused.status, 429);
    const retry = Number(refused.headers.get('retry-after'));
    t.true(retry >= 1 && retry <= 90, `Retry-After ${retry}`);
    t.like(refused.body, { result: { status: false, error: { code: 429 } } });
    // Another key_prefix is another installation: its own count.
    const c = await world(t, {
      config: { ...config, limits: { ...config.limits, key_prefix: `${prefix}x` } },
      databaseUrl: 'sqlite::memory:',
    });
    await enrollHotp(c);
    t.like((await check(c, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: { value: true } });
    // bob: a success on node b resets the count node a made.
    await enrollHotp(a, { user: 'bob', serial: 'OATH0002' });
    await enrollHotp(b, { user: 'bob', serial: 'OATH0002' });
    for (let i = 0; i < 2; i++) t.is((await check(a, { user: 'bob', pass: '0000000000' })).status, 200);
    t.like((await check(b, { user: 'bob', pass: '1234' + RFC[0] })).body, { result: { value: true } });
    t.is(await redis.get(`${prefix}:failed_user:user:default:bob`), null, 'deleted by the success');
    for (let i = 0; i < 3; i++) t.is((await check(a, { user: 'bob', pass: '0000000000' })).status, 200);
    t.is((await check(b, { user: 'bob', pass: '0000000000' })).status, 429);
  },
);
