/**
 * server/config.ts (and policy validation in server/deps.ts): defaults, exact error paths, sqlite path resolution,
 * loading from a file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { configPathFrom, loadConfig, parseConfig } from '../../server/config.ts';
import { collectPolicies } from '../../server/deps.ts';
import { ConfigError } from '../../core/errors.ts';
import { buildActionRegistry, CORE_ACTIONS } from '../../policies/actions.ts';
import { createTokenRegistry, ALL_TOKEN_TYPES } from '../../tokens/index.ts';
import { createWorld } from '../helpers/test_app.ts';

const BASE = path.resolve('/srv/pushgate');

function problems(doc: unknown, base = BASE): string[] {
  try {
    parseConfig(doc, base);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('parseConfig accepted the document');
}

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const actions = buildActionRegistry(CORE_ACTIONS, createTokenRegistry(ALL_TOKEN_TYPES).actions());

test('defaults: an empty document gives the documented defaults', (t) => {
  const c = parseConfig({}, BASE);
  t.deepEqual(c.server, {
    host: '127.0.0.1',
    port: 5001,
    publicUrl: 'http://127.0.0.1:5001',
    bodyLimitBytes: 65536,
    trustedProxies: [],
    nodeName: os.hostname(),
  });
  t.is(c.database.url, `sqlite:${path.join(BASE, 'data/pushgate.db')}`);
  t.is(c.database.poolMax, 10);
  t.is(c.secrets.keyFile, path.join(BASE, 'data/pushgate.key'));
  t.deepEqual(c.realms, [{ name: 'default', default: true, users: { type: 'any' } }]);
  t.is(c.challenge.validitySeconds, 120);
  t.deepEqual(c.challenge.typeValiditySeconds, {});
  t.is(c.tokens.maxFail, 10);
  t.like(c.pin, { memoryKib: 19456, timeCost: 2, parallelism: 1 });
  t.true(c.pin.maxConcurrent >= 1);
  t.is(c.admin.jwtTtlSeconds, 3600);
  t.is(c.audit.retentionDays, 180);
  t.deepEqual(c.policies, []);
  t.deepEqual(c.policyFiles, []);
  t.is(c.baseDir, BASE);
  t.is(c.log.level, 'info');
  t.deepEqual(parseConfig(null, BASE).server, c.server, 'null (an empty YAML file) is the same as {}');
});

test('error paths: every problem names its exact path, all of them at once', (t) => {
  const p = problems({
    server: { port: 70000, host: 5, public_url: 'ftp://x', bogus: 1 },
    realms: [
      { name: 'r1', users: { type: 'sql' } },
      { name: 'bad name', users: { type: 'file' } },
    ],
    tokens: { max_fail: 0 },
    challenge: { validity_seconds: 'soon' },
    pin: { parallelism: 99 },
    admin: { jwt_ttl_seconds: 5 },
    log: { level: 'loud' },
    nonsense: true,
  });
  const expected = [
    'server.port must be an integer between 0 and 65535',
    'server.public_url must be an http(s) URL like https://mfa.example.org',
    'server.bogus is not a known setting',
    'realms[0].users.type must be file, ldap or any',
    'realms[1].name must be a name of letters, digits, _ . -',
    'realms[1].users.path is required for type file',
    'tokens.max_fail must be an integer >= 1',
    'challenge.validity_seconds must be an integer >= 1',
    'pin.parallelism must be an integer between 1 and 16',
    'admin.jwt_ttl_seconds must be an integer >= 60',
    'log.level must be one of debug, info, warn, error',
    'nonsense is not a known setting',
  ];
  for (const e of expected) t.true(p.includes(e), `missing problem: ${e}\n got: ${p.join('\n')}`);
});

test('error paths: wrong shapes, duplicate and double-default realms', (t) => {
  t.deepEqual(problems({ server: 'x' }), ['server must be a mapping']);
  t.deepEqual(problems({ realms: {} }), ['realms must be a list']);
  t.true(problems({ realms: [{ name: 'a' }, { name: 'a' }] }).includes('realms[1].name a is defined twice'));
  t.true(
    problems({
      realms: [
        { name: 'a', default: true },
        { name: 'b', default: true },
      ],
    }).includes('realms: only one realm may be the default'),
  );
  t.deepEqual(problems({ realms: [{ name: 'a', default: 'yes' }] }), ['realms[0].default must be true or false']);
  t.deepEqual(problems({ realms: [{ users: { type: 'any' } }] }), ['realms[0].name is required']);
  t.deepEqual(problems({ database: { url: 'oracle://x' } }), ['database.url must be sqlite:PATH, postgres://… or mysql://…']);
  t.deepEqual(problems({ server: { port: '80a' } }), ['server.port must be an integer between 0 and 65535']);
});

test('pin queue: defaults derive from the hashing slots (and max_wait_ms), values and exact error paths', (t) => {
  const one = parseConfig({ pin: { max_concurrent: 1 } }, BASE).pin;
  t.like(one, { maxConcurrent: 1, maxWaitMs: 2000, maxQueue: 400, maxQueuePerKey: 3 });
  t.like(parseConfig({ pin: { max_concurrent: 7 } }, BASE).pin, { maxQueue: 2800, maxQueuePerKey: 18 });
  t.like(parseConfig({ pin: { max_concurrent: 2, max_wait_ms: 500 } }, BASE).pin, { maxWaitMs: 500, maxQueue: 200, maxQueuePerKey: 2 });
  t.like(
    parseConfig({ pin: { max_concurrent: 1, max_queue: 160 } }, BASE).pin,
    { maxQueue: 160, maxQueuePerKey: 10 },
    'the per-user default follows max_queue',
  );
  t.like(parseConfig({ pin: { max_queue: 1 } }, BASE).pin, { maxQueue: 1, maxQueuePerKey: 1 }, 'never more than the whole queue');
  t.like(parseConfig({ pin: { max_queue: 9, max_queue_per_key: 9, max_wait_ms: 1 } }, BASE).pin, {
    maxQueue: 9,
    maxQueuePerKey: 9,
    maxWaitMs: 1,
  });
  t.deepEqual(problems({ pin: { max_queue: 0, max_wait_ms: 'soon' } }), [
    'pin.max_wait_ms must be an integer >= 1',
    'pin.max_queue must be an integer >= 1',
  ]);
  t.deepEqual(problems({ pin: { max_queue: 5, max_queue_per_key: 6 } }), ['pin.max_queue_per_key must be an integer between 1 and 5']);
  t.deepEqual(problems({ pin: { max_concurrent: 1, max_queue_per_key: 0 } }), [
    'pin.max_queue_per_key must be an integer between 1 and 400',
  ]);
});

test('ConfigError message lists every problem', (t) => {
  const err = t.throws(() => parseConfig({ server: { port: -1 }, tokens: { max_fail: 'x' } }, BASE), { instanceOf: ConfigError });
  t.true(err!.message.includes('server.port must be an integer between 0 and 65535'));
  t.true(err!.message.includes('tokens.max_fail must be an integer >= 1'));
});

test('values: numeric strings, public_url trailing slash, IPv6 host default URL, relative file paths', (t) => {
  const c = parseConfig(
    {
      server: { port: '8080', public_url: 'https://mfa.example.org/base///' },
      realms: [
        { name: 'corp', users: { type: 'file', path: 'users.yaml' } },
        { name: 'any1', default: true },
      ],
      secrets: { key_file: '/etc/pg/key' },
      policy_files: ['pol/a.yaml'],
    },
    BASE,
  );
  t.is(c.server.port, 8080);
  t.is(c.server.publicUrl, 'https://mfa.example.org/base');
  t.deepEqual(c.realms[0], { name: 'corp', default: false, users: { type: 'file', path: path.join(BASE, 'users.yaml') } });
  t.deepEqual(c.realms[1], { name: 'any1', default: true, users: { type: 'any' } });
  t.is(c.secrets.keyFile, '/etc/pg/key');
  t.deepEqual(c.policyFiles, [path.join(BASE, 'pol/a.yaml')]);
  t.is(parseConfig({ server: { host: '::1' } }, BASE).server.publicUrl, 'http://[::1]:5001');
});

test('sqlite: relative paths resolve against the config directory; absolute and :memory: stay', (t) => {
  t.is(parseConfig({ database: { url: 'sqlite:./db/x.db' } }, BASE).database.url, `sqlite:${path.join(BASE, 'db/x.db')}`);
  t.is(parseConfig({ database: { url: 'sqlite:x.db' } }, BASE).database.url, `sqlite:${path.join(BASE, 'x.db')}`);
  t.is(parseConfig({ database: { url: 'sqlite:/var/lib/pg.db' } }, BASE).database.url, 'sqlite:/var/lib/pg.db');
  t.is(parseConfig({ database: { url: 'sqlite::memory:' } }, BASE).database.url, 'sqlite::memory:');
  t.is(parseConfig({ database: { url: 'postgres://u@h/db' } }, BASE).database.url, 'postgres://u@h/db');
  t.is(parseConfig({ database: { url: 'mariadb://u@h/db' } }, BASE).database.url, 'mariadb://u@h/db');
});

test('policies: an unknown action, a wrong type and a wrong scope name their path', (t) => {
  const c = parseConfig(
    {
      policies: [
        { name: 'p0', scope: 'authentication', actions: { x: true } },
        { name: 'p1', scope: 'authentication', actions: { passthru: 'maybe' } },
        { name: 'p2', scope: 'authentication', actions: { last_auth: '1h' } },
        { name: 'p3', scope: 'nowhere', actions: {} },
        { name: 'p4', scope: 'authorization', actions: { last_auth: 'ten hours' } },
      ],
    },
    BASE,
  );
  const err = t.throws(() => collectPolicies(c, actions), { instanceOf: ConfigError });
  const p = err!.problems;
  t.true(p.includes('policies[0].actions.x is not a known action for scope authentication'), p.join('\n'));
  t.true(p.includes('policies[1].actions.passthru must be true or false'), p.join('\n'));
  t.true(
    p.includes('policies[2].actions.last_auth is not a known action for scope authentication (it belongs to scope authorization)'),
    p.join('\n'),
  );
  t.true(p.includes('policies[3].scope must be one of authentication, enrollment, authorization, admin'), p.join('\n'));
  t.true(p.includes('policies[4].actions.last_auth must be a duration: a number followed by s, m, h, d or y (e.g. 10h)'), p.join('\n'));
});

test('policies: a broken policy refuses the start of the server (createWorld/buildDeps)', async (t) => {
  const err = await t.throwsAsync(
    createWorld({ config: { policies: [{ name: 'p', scope: 'authentication', actions: { x: 1 } }] }, noHttp: true }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(err!.problems, ['policies[0].actions.x is not a known action for scope authentication']);
});

test('loadConfig: reads YAML, resolves against the file directory, reports syntax and read errors with the file', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'pushgate.yaml');
  fs.writeFileSync(file, 'server:\n  port: 6000\ndatabase:\n  url: sqlite:./d/p.db\n');
  const c = loadConfig(file);
  t.is(c.server.port, 6000);
  t.is(c.database.url, `sqlite:${path.join(dir, 'd/p.db')}`);
  t.is(c.baseDir, dir);
  fs.writeFileSync(file, 'server: [\n');
  const bad = t.throws(() => loadConfig(file), { instanceOf: ConfigError });
  t.is(
    bad!.problems[0],
    `${file}:2:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] — line 2: ""`,
  );
  const missing = t.throws(() => loadConfig(path.join(dir, 'nope.yaml')), { instanceOf: ConfigError });
  t.is(missing!.problems[0], `${path.join(dir, 'nope.yaml')}: cannot read (ENOENT)`);
  fs.writeFileSync(file, '');
  t.is(loadConfig(file).server.port, 5001, 'an empty file is all defaults');
  fs.writeFileSync(file, 'server:\n  port: 99999\n');
  t.deepEqual(t.throws(() => loadConfig(file), { instanceOf: ConfigError })!.problems, [
    'server.port must be an integer between 0 and 65535',
  ]);
});

test('configPathFrom: --config wins over PUSHGATE_CONFIG, none → null', (t) => {
  const before = process.env.PUSHGATE_CONFIG;
  t.teardown(() => {
    if (before === undefined) delete process.env.PUSHGATE_CONFIG;
    else process.env.PUSHGATE_CONFIG = before;
  });
  delete process.env.PUSHGATE_CONFIG;
  t.is(configPathFrom(undefined), null);
  process.env.PUSHGATE_CONFIG = '/e.yaml';
  t.is(configPathFrom(undefined), '/e.yaml');
  t.is(configPathFrom('/a.yaml'), '/a.yaml');
});

test('a file realm with an unreadable users file refuses the start', async (t) => {
  const err = await t.throwsAsync(
    createWorld({ config: { realms: [{ name: 'corp', users: { type: 'file', path: 'missing.yaml' } }] }, noHttp: true }),
    { instanceOf: ConfigError },
  );
  t.regex(err!.problems[0]!, /^realms corp: cannot read user file .*missing\.yaml/);
});

test('device: defaults, bounds, and the reserved channel name longpoll', (t) => {
  t.deepEqual(parseConfig({}, '/tmp').device, {
    maxConnections: 10000,
    maxPerDevice: 2,
    pollSeconds: 25,
    sseKeepaliveSeconds: 15,
    sseMaxSeconds: 300,
  });
  t.like(parseConfig({ device: { poll_seconds: 50, max_per_device: 1 } }, '/tmp').device, { pollSeconds: 50, maxPerDevice: 1 });
  const err = t.throws(() => parseConfig({ device: { poll_seconds: 0, nope: 1 } }, '/tmp'), { instanceOf: ConfigError });
  t.true(err!.problems.some((p) => p.includes('device.poll_seconds')));
  t.true(err!.problems.some((p) => p.includes('nope')));
  const reserved = t.throws(() => parseConfig({ push: { channels: [{ name: 'longpoll', service_account_file: 'x.json' }] } }, '/tmp'), {
    instanceOf: ConfigError,
  });
  t.true(reserved!.problems.some((p) => p.includes('"longpoll" is reserved')));
});
