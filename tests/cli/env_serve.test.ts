/**
 * Settings outside the YAML file (issue 10): PUSHGATE_* environment overrides for the per-node and secret settings,
 * `serve --host/--port`, errors that name where a bad value came from, and the start-up warning when
 * server.public_url cannot work for a phone.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ENV_OVERRIDES, envOverrides, loadConfig, parseConfigWith, phoneUrlProblems, publicUrlWarning } from '../../server/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { CLI_ENTRY } from '../helpers/nodes.ts';
import { createCliWorld } from './cli_world.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('environment overrides win over the file; relative paths from the environment are relative to the cwd; empty = unset', (t) => {
  const env = {
    PUSHGATE_HOST: '0.0.0.0',
    PUSHGATE_PORT: '8443',
    PUSHGATE_PUBLIC_URL: 'https://mfa.example.org/',
    PUSHGATE_DATABASE_URL: 'sqlite:./db/p.db',
    PUSHGATE_KEY_FILE: 'keys/k',
    PUSHGATE_REDIS_URL: 'redis://r:6379',
    PUSHGATE_NODE_NAME: 'node-b',
    PUSHGATE_TRUSTED_PROXIES: ' 10.0.0.5, 10.0.1.0/24,',
    PUSHGATE_DATABASE_POOL_MAX: '25',
    PUSHGATE_LOG_LEVEL: 'debug',
    PUSHGATE_METRICS_TOKEN: 'scrape-token-0123456789',
    PUSHGATE_METRICS_LISTEN: '127.0.0.1:9464',
    PUSHGATE_LOG_FORMAT: 'json',
    PUSHGATE_OTHER: 'x',
  };
  const c = parseConfigWith(
    { server: { host: '127.0.0.1', port: 5001 }, secrets: { key_file: './file.key' } },
    '/etc/pushgate',
    envOverrides(env),
    '/work',
  );
  t.like(c.server, { host: '0.0.0.0', port: 8443, publicUrl: 'https://mfa.example.org', nodeName: 'node-b' });
  t.is(c.database.url, 'sqlite:/work/db/p.db');
  t.is(c.secrets.keyFile, '/work/keys/k');
  t.is(c.bus.redisUrl, 'redis://r:6379');
  t.deepEqual(c.server.trustedProxies, ['10.0.0.5', '10.0.1.0/24'], 'a comma-separated list');
  t.is(c.database.poolMax, 25);
  t.deepEqual(c.log, { level: 'debug', format: 'json' });
  t.deepEqual(c.metrics, { token: 'scrape-token-0123456789', listen: { host: '127.0.0.1', port: 9464 } });
  t.deepEqual(
    ENV_OVERRIDES.map(([name]) => name).sort(),
    Object.keys(env)
      .filter((k) => k !== 'PUSHGATE_OTHER')
      .sort(),
  );
  // an empty variable is unset: the file's value stays
  const kept = parseConfigWith({ server: { port: 6000 } }, '/etc/pushgate', envOverrides({ PUSHGATE_PORT: '' }));
  t.is(kept.server.port, 6000);
  // a later override (a flag) wins over an earlier one (the environment)
  const flag = parseConfigWith({}, '/', [
    ...envOverrides({ PUSHGATE_PORT: '7000' }),
    { path: 'server.port', value: '7001', source: '--port' },
  ]);
  t.is(flag.server.port, 7001);
});

test('the README lists every environment variable (Operating pushgate → Environment variables)', (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Environment variables'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| variable |')));
  const listed = new Set([...table.matchAll(/`(PUSHGATE_[A-Z_]+)`/g)].map((m) => m[1]));
  for (const [name, setting] of ENV_OVERRIDES) {
    t.true(listed.has(name), `${name} is in the README`);
    t.true(table.includes(`\`${setting}\``), `${name}'s setting ${setting} is named`);
  }
  t.true(listed.has('PUSHGATE_CONFIG'));
});

test('a bad value names the variable or flag it came from, next to the file problems', (t) => {
  const err = t.throws(
    () =>
      parseConfigWith({ server: { body_limit_bytes: 1 } }, '/', [
        ...envOverrides({ PUSHGATE_PORT: 'high', PUSHGATE_DATABASE_URL: 'oracle://x', PUSHGATE_REDIS_URL: 'http://r' }),
      ]),
    { instanceOf: ConfigError },
  );
  t.deepEqual([...err!.problems].sort(), [
    'PUSHGATE_DATABASE_URL (database.url) must be sqlite:PATH, postgres://… or mysql://…',
    'PUSHGATE_PORT (server.port) must be an integer between 0 and 65535',
    'PUSHGATE_REDIS_URL (bus.redis_url) must be a redis:// URL',
    'server.body_limit_bytes must be an integer >= 1024',
  ]);
});

test('CLI: PUSHGATE_DATABASE_URL and PUSHGATE_KEY_FILE point a command at another installation; PUSHGATE_CONFIG names the file', async (t) => {
  const a = await createCliWorld({}, { owner: t });
  const b = await createCliWorld({}, { owner: t });
  t.teardown(() => a.close());
  t.teardown(() => b.close());
  t.is((await b.run(['token', 'enroll', '--type', 'spass', '--user', 'bob', '--serial', 'ONLYB'])).code, 0);
  const bConfig = loadConfig(b.configPath);
  const env = { PUSHGATE_DATABASE_URL: bConfig.database.url, PUSHGATE_KEY_FILE: bConfig.secrets.keyFile };
  const viaEnv = await a.run(['token', 'list'], '', { env });
  t.is(viaEnv.code, 0, viaEnv.stderr);
  t.regex(viaEnv.stdout, /^ONLYB\s+spass\s+bob/m);
  t.is((await a.run(['token', 'list'])).stdout, 'no tokens\n');
  const byConfigEnv = await a.run(['token', 'list'], '', { env: { PUSHGATE_CONFIG: b.configPath }, noConfig: true });
  t.regex(byConfigEnv.stdout, /^ONLYB/m);
  const bad = await a.run(['token', 'list'], '', { env: { PUSHGATE_PORT: '99999' } });
  t.is(bad.code, 1);
  t.is(bad.stderr, 'error: PUSHGATE_PORT (server.port) must be an integer between 0 and 65535\n');
  // a missing key named through the environment says so
  const missing = await a.run(['token', 'list'], '', { env: { PUSHGATE_KEY_FILE: path.join(a.tmp, 'nokey') } });
  t.is(missing.code, 1);
  t.regex(
    missing.stderr,
    new RegExp(`^error: no secrets key at ${path.join(a.tmp, 'nokey')} \\(secrets\\.key_file from PUSHGATE_KEY_FILE\\)`),
  );
});

test('public_url checks: 0.0.0.0, loopback while listening on all interfaces, http with sslverify 1', (t) => {
  t.deepEqual(phoneUrlProblems('https://mfa.example.org', '0.0.0.0', '1'), []);
  t.deepEqual(phoneUrlProblems('http://mfa.example.org', '127.0.0.1', '0'), []);
  t.deepEqual(phoneUrlProblems('https://127.0.0.1:5001', '127.0.0.1', '1'), [], 'loopback behind a local proxy is not known to be wrong');
  t.regex(phoneUrlProblems('https://0.0.0.0:5001', '0.0.0.0', '1').join(), /0\.0\.0\.0 is a listen address/);
  t.regex(phoneUrlProblems('https://[::]:5001', '::', '1').join(), /is a listen address/);
  t.regex(phoneUrlProblems('https://localhost:5001', '0.0.0.0', '1').join(), /localhost is this machine's loopback address/);
  t.regex(phoneUrlProblems('https://127.0.0.1:5001', '::', '1').join(), /loopback/);
  t.regex(phoneUrlProblems('http://mfa.example.org', '127.0.0.1', '1').join(), /plain http:\/\/ while the app verifies TLS/);
  const config = parseConfigWith({ server: { host: '0.0.0.0' } }, '/', []);
  t.is(
    publicUrlWarning(config, '1'),
    'server.public_url http://0.0.0.0:5001 cannot work for a phone (push tokens): 0.0.0.0 is a listen address, '
      + 'not one a phone can call; it is plain http:// while the app verifies TLS (ssl_verify 1): pushgate speaks plain HTTP, put a TLS reverse '
      + 'proxy in front of it. Set server.public_url (or PUSHGATE_PUBLIC_URL) to the https:// URL of the TLS reverse proxy in front of pushgate (README: "TLS").',
  );
  t.is(publicUrlWarning(parseConfigWith({ server: { host: '0.0.0.0', public_url: 'https://mfa.example.org' } }, '/', []), '1'), null);
});

/** Runs `pushgate serve` (tests/helpers/nodes.ts CLI_ENTRY: the sources, or the compiled suite's CLI) until its `server.started` line (and what came before it). */
function serve(args: string[], env: Record<string, string>): Promise<{ lines: Array<Record<string, unknown>>; stop: () => Promise<void> }> {
  const proc = spawn(process.execPath, [...CLI_ENTRY, 'serve', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const lines: Array<Record<string, unknown>> = [];
    proc.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    proc.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      // biome-ignore lint/suspicious/noAssignInExpressions: the read-a-line loop
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (line.event === 'config.warning' && lines.some((l) => l.event === 'server.started')) {
          resolve({
            lines,
            stop: async () => {
              proc.kill('SIGTERM');
              await exited;
            },
          });
        }
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited (${code}) before it started: ${err}`)));
  });
}

test('serve --host/--port win over PUSHGATE_HOST/PORT and the file; the start warns when public_url cannot work for a phone', async (t) => {
  const w = await createCliWorld({ server: { host: '127.0.0.1', port: 1 } });
  t.teardown(() => w.close());
  const { lines, stop } = await serve(['--config', w.configPath, '--host', '0.0.0.0', '--port', '0'], {
    PUSHGATE_HOST: '10.9.9.9',
    PUSHGATE_PORT: '2',
    PUSHGATE_PUBLIC_URL: 'http://localhost:5001',
  });
  t.teardown(stop);
  const started = lines.find((l) => l.event === 'server.started')!;
  t.is(started.host, '0.0.0.0');
  t.true(typeof started.port === 'number' && started.port > 1024, String(started.port));
  const warning = lines.find((l) => l.event === 'config.warning' && String(l.message).startsWith('server.public_url'))!;
  t.regex(
    String(warning.message),
    /^server\.public_url http:\/\/localhost:5001 cannot work for a phone \(push tokens\): localhost is this machine's loopback address .*; it is plain http:\/\//,
  );
  t.is(warning.level, 'warn');
});

test('serve --port with a bad value is an error that names the flag', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const r = await w.run(['serve', '--port', 'http']);
  t.is(r.code, 1);
  t.is(r.stderr, 'error: --port (server.port) must be an integer between 0 and 65535\n');
});
