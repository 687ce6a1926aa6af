import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runCli } from '../../cli/main.ts';
import { createCliWorld } from './cli_world.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Runs `node bin/pushgate.js ARGS` as a real process, without blocking this worker's event loop (the other tests of
 * the file go on meanwhile). A real process takes real time: it is killed only after a generous deadline (its status
 * is then null), and no duration is asserted.
 */
function launch(args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin/pushgate.js'), ...args], { env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  proc.stdin.end(o.input ?? '');
  const deadline = setTimeout(() => proc.kill('SIGKILL'), 180_000);
  return new Promise((resolve) => proc.once('close', (status) => { clearTimeout(deadline); resolve({ status, stdout, stderr }); }));
}

async function bare(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => { stdout += s; } }, stderr: { write: (s: string) => { stderr += s; } }, stdin: Readable.from([]) });
  return { code, stdout, stderr };
}

test('usage errors exit 2 with the message on stderr; --help and --version exit 0 on stdout', async (t) => {
  for (const args of [[], ['frobnicate'], ['token'], ['token', 'frobnicate'], ['token', 'show'], ['token', 'list', '--bogus'], ['db', 'migrate', 'extra'], ['token', 'enroll', '--type', 'hotp']]) {
    const r = await bare(args);
    t.is(r.code, 2, args.join(' '));
    t.is(r.stdout, '', args.join(' '));
    t.regex(r.stderr, /^pushgate: .+\nRun 'pushgate( \w+)? --help' for usage\.\n$/s, args.join(' '));
  }
  t.regex((await bare(['frobnicate'])).stderr, /Unknown argument: frobnicate/);
  t.regex((await bare(['token', 'x'])).stderr, /Run 'pushgate token --help'/);
  const help = await bare(['--help']);
  t.is(help.code, 0);
  t.is(help.stderr, '');
  for (const cmd of ['serve', 'db', 'admin', 'token', 'policy', 'audit']) t.regex(help.stdout, new RegExp(`pushgate ${cmd}\\b`));
  const sub = await bare(['token', 'enroll', '--help']);
  t.is(sub.code, 0);
  t.regex(sub.stdout, /--otpkey/);
  t.regex((await bare(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/);
});

test('config errors exit 1 and print each problem on its own line', async (t) => {
  const w = await createCliWorld({ server: { port: 'high', public_url: 'nope' }, tokens: { max_fail: 0 } });
  t.teardown(() => w.close());
  const r = await w.run(['token', 'list']);
  t.is(r.code, 1);
  t.deepEqual(r.stderr.trimEnd().split('\n').sort(), [
    'error: server.port must be an integer between 0 and 65535',
    'error: server.public_url must be an http(s) URL like https://mfa.example.org',
    'error: tokens.max_fail must be an integer >= 1',
  ]);
  const missing = await bare(['--config', path.join(w.tmp, 'absent.yaml'), 'admin', 'list']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^error: .*absent\.yaml: cannot read \(ENOENT\)\n$/);
});

test('bin/pushgate.js launches through tsx (--help exits 0; a real command finishes and exits)', async (t) => {
  const bin = path.join(ROOT, 'bin/pushgate.js');
  t.true((fs.statSync(bin).mode & 0o111) !== 0, 'executable');
  t.timeout(240_000);
  const help = await launch(['--help']);
  t.is(help.status, 0, help.stderr);
  t.regex(help.stdout, /pushgate token/);

  const w = await createCliWorld();
  t.teardown(() => w.close());
  const env = { ...process.env, PUSHGATE_CONFIG: w.configPath };
  const add = await launch(['admin', 'add', 'root', '--password-stdin'], { input: 'pw\n', env });
  t.is(add.status, 0, add.stderr);
  const list = await launch(['admin', 'list', '--json'], { env });
  t.is(list.status, 0, list.stderr);
  t.deepEqual(JSON.parse(list.stdout).map((a: { username: string }) => a.username), ['root']);
  const bad = await launch(['nope'], { env });
  t.is(bad.status, 2);
});
