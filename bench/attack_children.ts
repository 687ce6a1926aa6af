/** The child processes of bench/attack.ts and bench/fatigue.ts: the pushgate server and the autocannon flood. */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AttackStats, FloodResult, FloodTask } from './attack_common.ts';
import { BENCH_DIR, ROOT, serverNodeFlags } from './env.ts';

export { serverNodeFlags };

/** The pushgate child (bench/attack_server.ts): its URL, the enrolled push token and the phone key that signs for it. */
export interface ServerChild {
  url: string;
  pushSerial: string;
  phoneKey: KeyObject;
  proc: ChildProcess;
  stats(): Promise<AttackStats>;
  stop(): Promise<void>;
}

/** The server child's log file (JSON lines at the config's level, written as production writes stdout: synchronously). */
export const serverLogFile = (configFile: string): string => path.join(path.dirname(configFile), 'server.log');

/** Lines of the server child's log by event (what the logging of a phase cost, in lines). */
export function logLinesByEvent(configFile: string): Record<string, number> {
  const out: Record<string, number> = {};
  let text = '';
  try {
    text = fs.readFileSync(serverLogFile(configFile), 'utf8');
  } catch {
    return out;
  }
  for (const m of text.matchAll(/"event":"([^"]+)"/g)) out[m[1]!] = (out[m[1]!] ?? 0) + 1;
  return out;
}

/** Starts bench/attack_server.ts with `users` legitimate users; its stderr is echoed with `label`. */
export async function startAttackServer(configFile: string, users: number, label = 'attack_server'): Promise<ServerChild> {
  const args = [...serverNodeFlags(), '--import', 'tsx', path.join(BENCH_DIR, 'attack_server.ts'), configFile, String(users)];
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.trim()) process.stderr.write(`[${label}] ${line}\n`);
  });
  const ready = await new Promise<{ url: string; info: { pushSerial: string; phonePrivatePem: string } }>((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const m = /^READY (\S+) (.*)$/m.exec(out);
      if (m) resolve({ url: m[1]!, info: JSON.parse(m[2]!) });
    });
    proc.once('exit', (code) => reject(new Error(`${label} exited with ${code} before READY`)));
  });
  return {
    url: ready.url,
    pushSerial: ready.info.pushSerial,
    phoneKey: crypto.createPrivateKey(ready.info.phonePrivatePem),
    proc,
    stats: () =>
      new Promise((resolve) => {
        const onMessage = (m: unknown) => {
          if ((m as AttackStats).type === 'stats') {
            proc.off('message', onMessage);
            resolve(m as AttackStats);
          }
        };
        proc.on('message', onMessage);
        proc.send({ type: 'stats' });
      }),
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** Starts the flood child (bench/attack_flood.ts); `result` is its one JSON line. */
export function startFlood(task: FloodTask): { proc: ChildProcess; result: Promise<FloodResult> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'attack_flood.ts'), JSON.stringify(task)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (c: string) => {
    out += c;
  });
  const result = new Promise<FloodResult>((resolve, reject) =>
    proc.once('exit', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as FloodResult);
      } catch {
        reject(new Error(`flood exited with ${code}: ${out}`));
      }
    }),
  );
  return { proc, result };
}

/** One HTTP answer to a bench client: status, body text, client-side latency. */
export interface RawAnswer {
  status: number;
  body: string;
  ms: number;
}

/** A keep-alive client of one connection (a login, a probe, a phone, each on its own): form bodies, timed answers. */
export function requester(base: string): (method: string, p: string, body?: string) => Promise<RawAnswer> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return (method, p, body) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(
        `${base}${p}`,
        {
          method,
          agent,
          headers:
            body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}

/**
 * The config of the benches' pushgate child, in a fresh temp dir: SQLite file database and key there, the IdP on
 * loopback as a trusted proxy, the default log level (info; the lines go to serverLogFile), push enrollment poll only.
 */
export function writeAttackConfig(prefix: string): { tmp: string; configFile: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const configFile = path.join(tmp, 'config.yaml');
  fs.writeFileSync(
    configFile,
    [
      'server: {host: 127.0.0.1, port: 0, public_url: "https://mfa.bench.invalid", trusted_proxies: ["127.0.0.1"]}',
      `database: {url: "sqlite:${path.join(tmp, 'pushgate.db')}"}`,
      `secrets: {key_file: "${path.join(tmp, 'pushgate.key')}"}`,
      'log: {level: info}', // the default level: each refusal's log lines are part of what it costs
      'policies:',
      '  - {name: push-enroll, scope: enrollment, actions: {edupush_firebase_configuration: "poll only"}}',
      '',
    ].join('\n'),
  );
  return { tmp, configFile };
}
