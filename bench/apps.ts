/**
 * `npm run bench:apps`: the application API (issue 15) in one run —
 *   1. pushgate in this process (buildDeps + createApp on 127.0.0.1, SQLite file database in a temp dir, the webhook
 *      dispatcher started as `serve` starts it), USERS users with an enrolled edupush token (poll only; enrolled over
 *      HTTP by the tests' fake phone), one application with a webhook to a receiver in this process;
 *   2. signed `POST /api/v1/push` (a fresh nonce and HMAC per request, built by the client as the README shows) at
 *      concurrency CONC for SECONDS, every answer checked (HTTP 200, status pending) — requests per second, latency;
 *   3. the same pushes through `POST /validate/triggerchallenge` (admin JWT) in the same run: the API's overhead as a
 *      ratio of the two rates;
 *   4. webhook delivery latency (event created → receiver got it, same clock) p50/p99, under the load of 2, and for
 *      pushes sent one at a time;
 *   5. writes its section of bench/README.md (between `<!-- apps:begin -->` and `<!-- apps:end -->`) and prints it.
 * The load generator shares the process (and the 2 cores) with the server: the rates are lower bounds.
 * Env: BENCH_SECONDS (default 5), BENCH_APPS_USERS (default 40), BENCH_APPS_CONC (default 16).
 * Flags: --quick (1 s, 10 users; README not written unless --write), --no-write.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../server/config.ts';
import { buildDeps } from '../server/deps.ts';
import { createApp } from '../server/app.ts';
import { addApp } from '../server/auth/apps_admin.ts';
import { startWebhookDispatcher } from '../server/auth/webhooks.ts';
import { signJwt } from '../server/auth/jwt.ts';
import { FakePhone, makePhoneKey } from '../tests/helpers/fake_phone.ts';
import { BENCH_DIR, envInt, quickWriteFlags } from './env.ts';

const { args, quick, write } = quickWriteFlags();
const SECONDS = envInt('BENCH_SECONDS', quick ? 1 : 5, 1);
const USERS = envInt('BENCH_APPS_USERS', quick ? 10 : 40, 1);
const CONC = envInt('BENCH_APPS_CONC', 16, 1);
const SEQUENTIAL = quick ? 20 : 100;
const log = (s: string) => process.stderr.write(`${s}\n`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-bench-apps-'));
const config = parseConfig(
  {
    database: { url: `sqlite:${path.join(tmp, 'pushgate.db')}` },
    secrets: { key_file: path.join(tmp, 'key') },
    server: { public_url: 'https://mfa.example.org' },
    log: { level: 'warn' },
    limits: { challenges_per_user: 1_000_000 },
    challenge: { validity_seconds: 600 },
    policies: [
      { name: 'enroll', scope: 'enrollment', actions: { edupush_firebase_configuration: 'poll only' } },
      // Every push stays open (nobody answers): room for all of them, and no matching code.
      { name: 'room', scope: 'authentication', actions: { push_open_logins: 60, push_matching: 'never' } },
    ],
  },
  tmp,
);
const deps = await buildDeps(config, { key: crypto.randomBytes(32), push: { keys: { bits: 2048, size: 0 } } });
const server = createApp(deps).listen(0, '127.0.0.1');
await new Promise<void>((resolve) => server.once('listening', () => resolve()));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const dispatcher = startWebhookDispatcher(deps, { intervalMs: 1000 });

// The webhook receiver: arrival time minus the event's creation time (both Date.now()).
const latencies: number[] = [];
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    latencies.push(Date.now() - (JSON.parse(body) as { created: number }).created);
    res.statusCode = 204;
    res.end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
const { app, secret } = await addApp(deps, {
  name: 'bench',
  webhookUrl: process.env.BENCH_APPS_NOHOOK ? null : hook,
  webhookEvents: ['challenge.created'],
});

const call = async (
  method: string,
  p: string,
  params: Record<string, unknown> = {},
  o: { as?: string; headers?: Record<string, string> } = {},
) => {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const qs = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
  let target = base + p;
  let body: string | undefined;
  if (method === 'GET') target += qs ? `?${qs}` : '';
  else if (o.as === 'json') {
    body = JSON.stringify(params);
    headers['content-type'] = 'application/json';
  } else {
    body = qs;
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(target, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: res.status, body: parsed as any, headers: res.headers, text };
};

const now = Date.now();
const adminJwt = await signJwt(
  { sub: 'admin', role: 'admin', iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 3600 },
  deps.jwtKey,
);
await deps.store.admins.insert('admin', await deps.pins.hash('bench-admin-password', { key: 'admin:admin' }), now);
log(`enrolling ${USERS} push tokens…`);
const phoneKey = makePhoneKey('rsa');
const users = Array.from({ length: USERS }, (_, i) => `user${i}`);
for (const user of users) {
  const init = await call(
    'POST',
    '/token/init',
    { type: 'edupush', genkey: 1, user, pin: '1234' },
    { headers: { Authorization: adminJwt } },
  );
  if (init.status !== 200) throw new Error(`init: ${init.text}`);
  const phone = new FakePhone({ call, clock: { now: () => Date.now() } }, 'edumfa-next', phoneKey);
  phone.scan(init.body.detail.pushurl.value);
  const r = await phone.enroll();
  if (r.status !== 200) throw new Error(`step 2: ${r.text}`);
}

const signedPush = (user: string) => {
  const body = JSON.stringify({ user, question: 'Deploy?', title: 'CI' });
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = crypto.randomBytes(16).toString('hex');
  const hash = crypto.createHash('sha256').update(body).digest('hex');
  const sig = crypto.createHmac('sha256', secret).update(`POST\n/api/v1/push\n${ts}\n${nonce}\n${hash}`).digest('hex');
  return fetch(`${base}/api/v1/push`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'X-Pushgate-App': app.id,
      'X-Pushgate-Timestamp': ts,
      'X-Pushgate-Nonce': nonce,
      'X-Pushgate-Signature': sig,
    },
    body,
  });
};
const trigger = (user: string) =>
  fetch(`${base}/validate/triggerchallenge`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', Authorization: adminJwt },
    body: `user=${user}`,
  });

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]! : Number.NaN;
};

interface Run {
  ok: number;
  bad: number;
  rps: number;
  p50: number;
  p99: number;
}
async function load(
  name: string,
  group: readonly string[],
  send: (user: string) => Promise<Response>,
  okBody: (b: any) => boolean,
): Promise<Run> {
  log(`${name}: ${SECONDS} s at concurrency ${CONC}…`);
  const end = performance.now() + SECONDS * 1000;
  const times: number[] = [];
  let ok = 0;
  let bad = 0;
  let n = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const user = group[n++ % group.length]!;
      const t0 = performance.now();
      const res = await send(user);
      const body = await res.json().catch(() => null);
      times.push(performance.now() - t0);
      if (res.status === 200 && okBody(body)) ok++;
      else if (++bad <= 3) log(`  ${name} unexpected ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONC }, worker));
  const secs = (performance.now() - t0) / 1000;
  return { ok, bad, rps: ok / secs, p50: pct(times, 50), p99: pct(times, 99) };
}

const started = new Date();
// Each phase pushes to its own half of the users: both start with no open push logins.
const half = Math.max(1, Math.floor(users.length / 2));
const api = await load('signed POST /api/v1/push', users.slice(0, half), signedPush, (b) => b?.result?.value?.status === 'pending');
// Let the dispatcher drain what the load queued before the next phase.
const queuedUnderLoad = api.ok;
for (let i = 0; i < 600 && latencies.length < queuedUnderLoad; i++) await new Promise((r) => setTimeout(r, 100));
const underLoad = [...latencies];
const trig = await load('POST /validate/triggerchallenge', users.slice(half), trigger, (b) => b?.result?.value === 1);
log(`webhooks one at a time: ${SEQUENTIAL} pushes…`);
latencies.length = 0;
for (let i = 0; i < SEQUENTIAL; i++) {
  const before = latencies.length;
  const res = await signedPush(users[i % users.length]!);
  await res.arrayBuffer();
  for (let k = 0; k < 200 && latencies.length === before; k++) await new Promise((r) => setTimeout(r, 5));
}
const single = [...latencies];

await dispatcher.stop();
server.close();
receiver.close();
await deps.close();
fs.rmSync(tmp, { recursive: true, force: true });

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const cpus = os.cpus();
const section = `<!-- apps:begin -->
## Applications: signed push API and webhooks (\`npm run bench:apps\`)

Written by \`npm run bench:apps\` (bench/apps.ts) between the \`apps\` markers; re-run it rather than edit.

- **Date:** ${started.toISOString()}
- **Machine:** ${cpus[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}
- **Node:** ${process.version}
- **Load average at the end:** ${os
  .loadavg()
  .map((x) => x.toFixed(1))
  .join(' / ')} (1 / 5 / 15 min) — the machine is shared: other processes' load makes these figures noisy lower bounds
- **Command:** \`npm run bench:apps${args.length ? ` -- ${args.join(' ')}` : ''}\` (${SECONDS} s per load phase, ${USERS} users, concurrency ${CONC})
- **Set-up:** pushgate and the load generator in ONE process (SQLite file database; the webhook dispatcher running as
  under \`serve\`); every push is a real challenge on the user's edupush token (poll only, RSA-2048 server keys,
  signed at creation) through the trigger algorithm with its push-fatigue bookkeeping; each API request carries a
  fresh nonce and HMAC (the replay-cache INSERT included). Each phase pushes to its own half of the users (both start
  without open push logins).

| measure | signed \`POST /api/v1/push\` | \`POST /validate/triggerchallenge\` |
|---|--:|--:|
| requests/s (answered 200 and checked) | ${f(api.rps)} | ${f(trig.rps)} |
| latency p50 / p99 ms | ${f(api.p50)} / ${f(api.p99)} | ${f(trig.p50)} / ${f(trig.p99)} |
| unexpected answers | ${api.bad} | ${trig.bad} |

- **API overhead:** the push API runs at **${f(api.rps / trig.rps, 2)}×** the rate of triggerchallenge (its extra work:
  the signature check, the nonce INSERT, the push row, the outbox row — and the webhook dispatcher delivering those
  rows meanwhile, on the same SQLite connection and cores).
- **Webhook delivery latency** (event created → receiver has it): under the push load p50 **${f(pct(underLoad, 50), 0)} ms**, p99 **${f(pct(underLoad, 99), 0)} ms**
  (${underLoad.length} of ${queuedUnderLoad} delivered by the end of the drain); one push at a time p50 **${f(pct(single, 50), 0)} ms**, p99 **${f(pct(single, 99), 0)} ms** (${single.length} events).
<!-- apps:end -->`;
process.stdout.write(`${section}\n`);
if (write) {
  const file = path.join(BENCH_DIR, 'README.md');
  const text = fs.readFileSync(file, 'utf8');
  const re = /<!-- apps:begin -->[\s\S]*?<!-- apps:end -->/;
  fs.writeFileSync(file, re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`);
  log('bench/README.md updated');
}
process.exit(0);
