/**
 * `npm run bench:fatigue`: push bombing against the push-fatigue defences (issue 11), measured in one run.
 *
 *   1. pushgate in a child process (bench/attack_server.ts: SQLite file DB in a temp dir, the DEFAULT argon2id
 *      parameters, default limits and push-fatigue defaults, `server.trusted_proxies: [127.0.0.1]`), with an enrolled
 *      edupush token (poll only) for `pushuser` whose phone key this process holds;
 *   2. the attacker, who has the PIN (bench/attack_flood.ts, autocannon, its own process): FATIGUE_CONNECTIONS
 *      connections sending `user=pushuser&pass=<PIN>&client=198.51.100.66` for the whole run;
 *   3. the real user through the same IdP (`client=10.1.0.1`): every FATIGUE_EVERY_SECONDS a login — trigger, find
 *      their own push on the phone (the one that appeared with their trigger), approve it, poll the transaction
 *      (polltransaction) and finalize (`transaction_id`, empty pass) — success = ACCEPT; latency = trigger → ACCEPT;
 *   4. the phone: polls every 250 ms (signed, as the app does); a push that the real user did not start is declined
 *      after 2 s ("this wasn't me"; `--ignore`: left unanswered, as a user who ignores it);
 *   5. prints its section of bench/README.md (between `<!-- fatigue:begin -->` and `<!-- fatigue:end -->`) and writes
 *      it there only with `--write` (the lead re-runs it on a quiet machine).
 *
 * Flags: --seconds N (default 60), --ignore, --write. Env: FATIGUE_CONNECTIONS (default 64), FATIGUE_EVERY_SECONDS (10).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { base32Encode } from '../tokens/base32.ts';
import { PIN } from './common.ts';
import type { AttackStats, FloodResult } from './attack_common.ts';
import { logLinesByEvent, requester, serverNodeFlags, startAttackServer, startFlood, writeAttackConfig } from './attack_children.ts';
import { BENCH_DIR, envInt } from './env.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const secondsArg = args.indexOf('--seconds');
const SECONDS = secondsArg >= 0 ? Number(args[secondsArg + 1]) : 60;
if (!Number.isInteger(SECONDS) || SECONDS < 1) {
  process.stderr.write('--seconds must be a positive integer\n');
  process.exit(2);
}
const CONNECTIONS = envInt('FATIGUE_CONNECTIONS', 64, 1);
const EVERY_S = envInt('FATIGUE_EVERY_SECONDS', 10, 1);
const IGNORE = flag('--ignore');
const WRITE = flag('--write');
const ATTACKER = '198.51.100.66';
const USER_ADDRESS = '10.1.0.1';
const POLL_EVERY_MS = 250;
const DECLINE_AFTER_MS = 2000;

const log = (msg: string) => process.stderr.write(`[bench:fatigue] ${msg}\n`);

interface Answer {
  status: number;
  body: any;
  ms: number;
}

/** The bench client of attack_children.ts with form bodies given as records and JSON answers parsed. */
function jsonRequester(base: string): (method: string, p: string, form?: Record<string, string>) => Promise<Answer> {
  const raw = requester(base);
  return async (method, p, form) => {
    const a = await raw(method, p, form === undefined ? undefined : new URLSearchParams(form).toString());
    let body: unknown = a.body;
    try {
      body = JSON.parse(a.body);
    } catch {
      // not JSON: the text as it is
    }
    return { status: a.status, body, ms: a.ms };
  };
}

function pct(values: readonly number[], p: number): number {
  if (!values.length) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

// ---------------------------------------------------------------------------------------------------------------

const started = performance.now();
const { tmp, configFile } = writeAttackConfig('pushgate-fatigue-');
const srv = await startAttackServer(configFile, 0, 'server');
log(`server ready at ${srv.url}; ${SECONDS} s, attacker ${CONNECTIONS} connections, a real login every ${EVERY_S} s`);

/** Pushes the phone has seen (nonce → first seen), the real user's, and the answers it gave. */
const seen = new Map<string, { at: number; data: Record<string, string> }>();
const mine = new Set<string>();
const declined = new Set<string>();
const userRequestMs: number[] = [];
const logins: Array<{ ok: boolean; ms: number; why?: string }> = [];

const phone = jsonRequester(srv.url);
const sign = (text: string) => base32Encode(crypto.sign('sha256', Buffer.from(text, 'utf8'), srv.phoneKey));
async function pollPhone(): Promise<Array<Record<string, string>>> {
  const timestamp = new Date().toISOString();
  const a = await phone(
    'GET',
    `/ttype/edupush?${new URLSearchParams({ serial: srv.pushSerial, timestamp, signature: sign(`${srv.pushSerial}|${timestamp}`) })}`,
  );
  const list = (a.body?.result?.value ?? []) as Array<Record<string, string>>;
  for (const d of list) if (!seen.has(d.nonce!)) seen.set(d.nonce!, { at: performance.now(), data: d });
  return list;
}
const answer = (d: Record<string, string>, decline: boolean) =>
  phone('POST', '/ttype/edupush', {
    nonce: d.nonce!,
    serial: d.serial!,
    signature: sign(decline ? `${d.nonce}|${d.serial}|decline` : `${d.nonce}|${d.serial}`),
    ...(decline ? { decline: '1' } : {}),
  });

const end = performance.now() + SECONDS * 1000;
const flood = startFlood({
  url: srv.url,
  connections: CONNECTIONS,
  seconds: SECONDS,
  body: new URLSearchParams({ user: 'pushuser', pass: PIN, client: ATTACKER }).toString(),
});

const phoneLoop = async () => {
  while (performance.now() < end) {
    const next = performance.now() + POLL_EVERY_MS;
    const list = await pollPhone();
    if (!IGNORE) {
      for (const d of list) {
        const s = seen.get(d.nonce!)!;
        if (!mine.has(d.nonce!) && !declined.has(d.nonce!) && performance.now() - s.at > DECLINE_AFTER_MS) {
          declined.add(d.nonce!);
          await answer(d, true);
        }
      }
    }
    await sleep(Math.max(0, next - performance.now()));
  }
};

const userLoop = async () => {
  const idp = jsonRequester(srv.url);
  await sleep(1000); // the flood is on before the first login
  while (performance.now() < end) {
    const next = performance.now() + EVERY_S * 1000;
    const t0 = performance.now();
    const done = (ok: boolean, why?: string) => logins.push({ ok, ms: performance.now() - t0, ...(why ? { why } : {}) });
    const before = new Set((await pollPhone()).map((d) => d.nonce!));
    const trig = await idp('POST', '/validate/check', { user: 'pushuser', pass: PIN, client: USER_ADDRESS });
    userRequestMs.push(trig.ms);
    const tid = trig.body?.detail?.transaction_id as string | undefined;
    if (trig.status !== 200 || !tid) {
      done(false, `trigger ${trig.status} ${trig.body?.result?.error?.message ?? trig.body?.result?.authentication ?? ''}`);
    } else {
      let own: Record<string, string> | undefined;
      for (let i = 0; i < 40 && !own; i++) {
        own = (await pollPhone()).find((d) => !before.has(d.nonce!) && !declined.has(d.nonce!));
        if (!own) await sleep(50);
      }
      if (!own) done(false, 'no push on the phone');
      else {
        mine.add(own.nonce!);
        await answer(own, false);
        let status = '';
        for (let i = 0; i < 40 && status !== 'accept'; i++) {
          const p = await idp('GET', `/validate/polltransaction?transaction_id=${tid}`);
          userRequestMs.push(p.ms);
          status = p.body?.detail?.challenge_status ?? '';
          if (status !== 'accept') await sleep(50);
        }
        const fin = await idp('POST', '/validate/check', { user: 'pushuser', pass: '', transaction_id: tid, client: USER_ADDRESS });
        userRequestMs.push(fin.ms);
        const ok = fin.body?.result?.authentication === 'ACCEPT';
        done(ok, ok ? undefined : `finalize ${fin.status} ${JSON.stringify(fin.body?.result)}`);
      }
    }
    await sleep(Math.max(0, next - performance.now()));
  }
};

let result: FloodResult;
let stats: AttackStats;
try {
  await Promise.all([phoneLoop(), userLoop()]);
  result = await flood.result;
  await pollPhone();
  stats = await srv.stats();
} finally {
  await srv.stop();
  log(`server log lines by event: ${JSON.stringify(logLinesByEvent(configFile))}`);
  fs.rmSync(tmp, { recursive: true, force: true });
}

const attackerPushes = [...seen.keys()].filter((n) => !mine.has(n)).length;
const created = Object.entries(stats.counters)
  .filter(([k]) => k.startsWith('pushgate_challenges_created_total'))
  .reduce((n, [, v]) => n + v, 0);
const refused = Object.entries(result.byStatus)
  .filter(([k]) => k !== '200')
  .map(([k, v]) => `${k}: ${v.toLocaleString('en-US')}`)
  .join(', ');
const ok = logins.filter((l) => l.ok);
const f1 = (n: number) => (Number.isNaN(n) ? '—' : n.toFixed(1));
const perMinute = (n: number) => (n * 60) / SECONDS;
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const section = `<!-- fatigue:begin -->
## Push bombing against the fatigue defences (\`npm run bench:fatigue\`)

Written by \`npm run bench:fatigue -- --write\` (bench/fatigue.ts) between the \`fatigue\` markers; re-run it rather than edit.

- **Date:** ${new Date().toISOString()}
- **Machine:** ${cpu}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}
- **Node:** ${process.version}
- **Command:** \`npm run bench:fatigue${args.length ? ' -- ' + args.join(' ') : ''}\` (whole run ${Math.round((performance.now() - started) / 1000)} s)
- **Set-up:** pushgate in its own child process (\`node ${serverNodeFlags().join(' ')} --import tsx\`, the V8 flags of \`npm start\`;
  log level info, written synchronously to a file; SQLite file database, default argon2id, default limits, the push-fatigue
  defaults, no policy but the enrollment's), the IdP a trusted proxy. The attacker has the PIN: ${CONNECTIONS} connections
  (autocannon, its own process) send \`user=pushuser&pass=<PIN>&client=${ATTACKER}\` for ${SECONDS} s. The real user
  (\`client=${USER_ADDRESS}\`) logs in every ${EVERY_S} s: trigger, approve their own push on the phone, polltransaction,
  finalize. The phone polls every ${POLL_EVERY_MS} ms and ${IGNORE ? 'ignores the pushes it did not start' : `declines a push the user did not start after ${DECLINE_AFTER_MS / 1000} s ("this wasn't me")`}.

| measure | value |
|---|--:|
| pushes that reached the phone (attacker's / real user's) | ${attackerPushes} / ${mine.size} |
| attacker's pushes per minute (target ≤ 10) | ${f1(perMinute(attackerPushes))} |
| challenges created by the server | ${created} |
| attacker's requests | ${result.requests.toLocaleString('en-US')} |
| attacker's requests answered 200 (the open login again, or a new push) | ${(result.byStatus['200'] ?? 0).toLocaleString('en-US')} |
| attacker's requests refused (by status) | ${refused || '—'}${result.errors ? `, errors: ${result.errors}` : ''} |
| real user's logins ACCEPT | ${ok.length}/${logins.length} |
| real user's login latency p50 / max ms (trigger → ACCEPT, incl. the phone) | ${f1(
  pct(
    ok.map((l) => l.ms),
    0.5,
  ),
)} / ${f1(ok.length ? Math.max(...ok.map((l) => l.ms)) : Number.NaN)} |
| real user's requests p99 ms (trigger, polltransaction, finalize) | ${f1(pct(userRequestMs, 0.99))} |
| server p99 ms (the attacker's requests, autocannon) | ${f1(result.p99)} |
| server RSS MB at the end | ${(stats.rssBytes / 2 ** 20).toFixed(0)} |

Targets (issue 11): at most the configured number of pushes reach the phone (≤ 10 in the minute), every real login
succeeds, server p99 < 50 ms.${
  logins.some((l) => !l.ok)
    ? `\n\nFailed logins: ${logins
        .filter((l) => !l.ok)
        .map((l) => l.why)
        .join('; ')}`
    : ''
}
<!-- fatigue:end -->`;
process.stdout.write(section + '\n');
if (WRITE) {
  const file = path.join(BENCH_DIR, 'README.md');
  const text = fs.readFileSync(file, 'utf8');
  const re = /<!-- fatigue:begin -->[\s\S]*?<!-- fatigue:end -->/;
  fs.writeFileSync(file, re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`);
  log('bench/README.md updated');
}
