/** server/config.ts: the back-off keys (`limits.*`) and `tokens.failcounter_clear_timeout` — defaults and exact error paths. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import YAML from 'yaml';
import { parseConfig } from '../../server/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { throttleStoreOf } from '../../server/auth/throttle.ts';

const BASE = '/srv/pushgate';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function problems(doc: unknown): string[] {
  try {
    parseConfig(doc, BASE);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('parseConfig accepted the document');
}

test('defaults: back-off on, sized for a university; failcounter_clear_timeout 10 minutes', (t) => {
  const c = parseConfig({}, BASE);
  t.deepEqual(c.limits, {
    store: 'auto',
    keyPrefix: 'pushgate',
    failedPerUser: 10,
    failedPerAddress: 100,
    failedWindowSeconds: 600,
    failedBlockSeconds: 300,
    challengesPerUser: 10,
    challengesWindowSeconds: 60,
  });
  t.is(c.tokens.failcounterClearTimeoutMinutes, 10);
});

test('every limits key and failcounter_clear_timeout is read', (t) => {
  const c = parseConfig(
    {
      database: { url: 'postgres://db/x' },
      tokens: { failcounter_clear_timeout: 0 },
      limits: {
        store: 'database',
        key_prefix: 'uni-a',
        failed_per_user: 0,
        failed_per_address: 7,
        failed_window_seconds: 60,
        failed_block_seconds: 0,
        challenges_per_user: 3,
        challenges_window_seconds: 30,
      },
    },
    BASE,
  );
  t.deepEqual(c.limits, {
    store: 'database',
    keyPrefix: 'uni-a',
    failedPerUser: 0,
    failedPerAddress: 7,
    failedWindowSeconds: 60,
    failedBlockSeconds: 0,
    challengesPerUser: 3,
    challengesWindowSeconds: 30,
  });
  t.is(c.tokens.failcounterClearTimeoutMinutes, 0);
});

test('path-precise errors', (t) => {
  t.deepEqual(
    problems({
      tokens: { failcounter_clear_timeout: -1 },
      limits: {
        store: 'etcd',
        key_prefix: 'a b',
        failed_per_user: -1,
        failed_per_address: 'many',
        failed_window_seconds: 0,
        failed_block_seconds: 1.5,
        challenges_per_user: -2,
        challenges_window_seconds: 0,
        burst: 3,
      },
    }),
    [
      'tokens.failcounter_clear_timeout must be an integer between 0 and 525600',
      'limits.burst is not a known setting',
      'limits.store must be one of auto, memory, database, redis',
      'limits.key_prefix must be 1-40 letters, digits, _ . -',
      'limits.failed_per_user must be an integer between 0 and 1000000',
      'limits.failed_per_address must be an integer between 0 and 1000000',
      'limits.failed_window_seconds must be an integer between 1 and 86400',
      'limits.failed_block_seconds must be an integer between 0 and 86400',
      'limits.challenges_per_user must be an integer between 0 and 1000000',
      'limits.challenges_window_seconds must be an integer between 1 and 86400',
    ],
  );
  t.deepEqual(problems({ limits: { store: 'redis' } }), ['limits.store redis needs bus.redis_url']);
  t.deepEqual(problems({ limits: { store: 'database' } }), [
    'limits.store database needs PostgreSQL or MariaDB/MySQL (database.url); SQLite is one node: use memory',
  ]);
});

test('limits.store auto: Redis when bus.redis_url is set, else the database on PostgreSQL/MariaDB, else memory', (t) => {
  const auto = (doc: Record<string, unknown>, dialect: 'sqlite' | 'postgres' | 'mysql') => throttleStoreOf(parseConfig(doc, BASE), dialect);
  t.is(auto({}, 'sqlite'), 'memory');
  t.is(auto({}, 'postgres'), 'database');
  t.is(auto({}, 'mysql'), 'database');
  t.is(auto({ bus: { redis_url: 'redis://127.0.0.1:6379' } }, 'postgres'), 'redis');
  t.is(auto({ limits: { store: 'memory' }, bus: { redis_url: 'redis://127.0.0.1:6379' } }, 'postgres'), 'memory');
});

test('config.example.yaml documents the limits keys with their defaults', (t) => {
  const doc = YAML.parse(fs.readFileSync(path.join(ROOT, 'config.example.yaml'), 'utf8')) as Record<string, any>;
  const c = parseConfig({ limits: doc.limits, tokens: doc.tokens }, BASE);
  t.deepEqual(c.limits, parseConfig({}, BASE).limits);
  t.is(c.tokens.failcounterClearTimeoutMinutes, parseConfig({}, BASE).tokens.failcounterClearTimeoutMinutes);
  t.deepEqual(Object.keys(doc.limits).sort(), [
    'challenges_per_user',
    'challenges_window_seconds',
    'failed_block_seconds',
    'failed_per_address',
    'failed_per_user',
    'failed_window_seconds',
    'key_prefix',
    'store',
  ]);
});
