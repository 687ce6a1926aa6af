import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runCli } from '../../cli/main.ts';
import { createCliWorld } from './cli_world.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Runs `node ARGV` (a script and its arguments) as a real process, without blocking this worker's event loop (the other tests of
 * the file go on meanwhile). A real process takes real time: it is killed only after a generous deadline (its status
 * is then null), and no duration is asserted.
 */
function launch(
  argv: string[],
  o: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, argv, { env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  proc.stdin.end(o.input ?? '');
  const deadline = setTimeout(() => proc.kill('SIGKILL'), 180_000);
  return new Promise((resolve) =>
    proc.once('close', (status) => {
      clearTimeout(deadline);
      resolve({ status, stdout, stderr });
    }),
  );
}

async function bare(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: {
      write: (s: string) => {
        stdout += s;
      },
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
      },
    },
    stdin: Readable.from([]),
  });
  return { code, stdout, stderr };
}

test('usage errors exit 2 with the message on stderr; --help and --version exit 0 on stdout', async (t) => {
  for (const args of [
    [],
    ['frobnicate'],
    ['token'],
    ['token', 'frobnicate'],
    ['token', 'show'],
    ['token', 'list', '--bogus'],
    ['db', 'migrate', 'extra'],
    ['token', 'enroll', '--type', 'hotp'],
  ]) {
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

test('bin/pushgate.js runs build/cli/main.js; without a build it says what to run (exit 1)', async (t) => {
  t.timeout(240_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-bin-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(ROOT, 'bin/pushgate.js');
  t.true((fs.statSync(bin).mode & 0o111) !== 0, 'executable');
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.copyFileSync(bin, path.join(dir, 'bin/pushgate.js'));
  const missing = await launch([path.join(dir, 'bin/pushgate.js'), 'token', 'list']);
  t.is(missing.status, 1);
  t.is(missing.stdout, '');
  t.is(
    missing.stderr,
    `error: pushgate is not built (${path.join(dir, 'build/cli/main.js')} is missing). Run \`npm run build\` in ${dir}${path.sep}\n`,
  );
  // With a build, the bin calls its main() (a stand-in build that reports its arguments).
  fs.mkdirSync(path.join(dir, 'build/cli'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'build/cli/main.js'),
    'export async function main() { process.stdout.write(JSON.stringify(process.argv.slice(2))); }\n',
  );
  const built = await launch([path.join(dir, 'bin/pushgate.js'), 'token', 'list']);
  t.is(built.status, 0, built.stderr);
  t.deepEqual(JSON.parse(built.stdout), ['token', 'list']);
});

test('npm start runs the compiled build with the production V8 flags; install builds it; the build leaves out tests and benches', (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
    bin: Record<string, string>;
  };
  t.is(pkg.scripts.start, 'node --max-semi-space-size=8 bin/pushgate.js serve');
  t.is(pkg.scripts.prepare, 'node scripts/build.js --if-possible');
  t.is(pkg.scripts.build, 'node scripts/build.js');
  t.is(pkg.bin.pushgate, 'bin/pushgate.js');
  t.regex(fs.readFileSync(path.join(ROOT, 'scripts/build.js'), 'utf8'), /'-p', 'tsconfig\.build\.json'/);
  const build = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  t.deepEqual(build.include, ['core/**/*.ts', 'server/**/*.ts', 'tokens/**/*.ts', 'policies/**/*.ts', 'cli/**/*.ts']);
  const all = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] };
  t.true(all.include.includes('tests/**/*.ts') && all.include.includes('bench/**/*.ts'), 'the typecheck still covers everything');
});

test('the sources run as a process through tsx (--help exits 0; a real command finishes and exits)', async (t) => {
  const src = ['--import', 'tsx', path.join(ROOT, 'cli/main.ts')];
  t.timeout(240_000);
  const help = await launch([...src, '--help']);
  t.is(help.status, 0, help.stderr);
  t.regex(help.stdout, /pushgate token/);

  const w = await createCliWorld();
  t.teardown(() => w.close());
  const env = { ...process.env, PUSHGATE_CONFIG: w.configPath };
  const add = await launch([...src, 'admin', 'add', 'root', '--password-stdin'], { input: 'pw\n', env });
  t.is(add.status, 0, add.stderr);
  const list = await launch([...src, 'admin', 'list', '--json'], { env });
  t.is(list.status, 0, list.stderr);
  t.deepEqual(
    JSON.parse(list.stdout).map((a: { username: string }) => a.username),
    ['root'],
  );
  const bad = await launch([...src, 'nope'], { env });
  t.is(bad.status, 2);
});
