/**
 * pushgate as real processes for multi-node tests: a server (`serve --config`, resolved when it logs
 * `server.started`), the CLI as a child process, and `eventually` for conditions on real time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * Node arguments that run the pushgate CLI from the code the tests themselves run: the TypeScript sources through
 * tsx (`npx ava <file>.ts`), or, when the suite runs compiled (scripts/build_tests.js: CI), the CLI compiled with
 * them — the same sources, without paying tsx's start-up (~0.4 s CPU per process) again in every child.
 */
export const CLI_ENTRY: readonly string[] = import.meta.url.endsWith('.js')
  ? [path.join(ROOT, 'cli/main.js')]
  : ['--import', 'tsx', path.join(ROOT, 'cli/main.ts')];
const ENTRY = CLI_ENTRY;

export interface ServerNode {
  readonly name: string;
  readonly url: string;
  readonly proc: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
}

/** Real processes, real time: checks `cond` every 50 ms until it gives a value, failing after `deadlineMs`. */
export async function eventually<T>(what: string, cond: () => Promise<T | undefined> | T | undefined, deadlineMs = 30_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs / 1000} s`);
    await sleep(50);
  }
}

export function startNode(name: string, configFile: string, port: number): Promise<ServerNode> {
  const proc = spawn(process.execPath, [...ENTRY, 'serve', '--config', configFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const node: ServerNode = { name, url: `http://127.0.0.1:${port}`, proc, lines, exited };
  let buf = '';
  let errText = '';
  proc.stderr!.on('data', (c: Buffer) => {
    errText += c.toString();
  });
  return new Promise<ServerNode>((resolve, reject) => {
    const bound = setTimeout(() => reject(new Error(`${name} did not start within 60 s: ${errText}`)), 60_000);
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.includes('"event":"server.started"')) {
          clearTimeout(bound);
          resolve(node);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(bound);
      reject(new Error(`${name} exited with ${code}: ${errText}`));
    });
  });
}

export async function stopNode(n: ServerNode): Promise<void> {
  if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
  n.proc.kill('SIGTERM');
  const done = await Promise.race([n.exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!done) {
    n.proc.kill('SIGKILL');
    await n.exited;
  }
}

/** `pushgate <args>` as a child process with `stdin`; the exit code and stdout+stderr. */
export function pushgate(args: readonly string[], stdin = ''): Promise<{ code: number | null; out: string }> {
  const proc = spawn(process.execPath, [...ENTRY, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stdin.end(stdin);
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, out })));
}
