/**
 * Two-node deployment (issue 5, item 6): TWO pushgate server PROCESSES (the CLI's `serve --config …` as tests/helpers/nodes.ts starts it) share
 * one fresh PostgreSQL database and one secrets key file, as two nodes behind a load balancer would:
 *   - the administrator is added with the CLI (`admin add --password-stdin`), which also migrates the database;
 *   - an edupush token (poll only) is enrolled through node A's /token/init and completed (step 2) by the fake phone
 *     against node B;
 *   - a challenge triggered on node A is polled and answered by the phone on node B and finalized on node A → ACCEPT;
 *   - with `edupush_wait`, a /validate/check waiting on node A is woken by the phone's answer posted to node B. The
 *     wait is 300 s and the safety-net re-read 600 s, so node A reads the transaction again on its own only after
 *     five minutes; the reply comes within the client's 45 s deadline, so only the PostgreSQL LISTEN/NOTIFY answer
 *     bus can have woken it. No duration is asserted: real processes, real time, generous deadlines.
 * Both processes are killed in teardown and the database is dropped. Skipped, with the reason in the title, when
 * PostgreSQL (PUSHGATE_TEST_PG_URL, default 127.0.0.1:5432) is unreachable. It always uses PostgreSQL, whatever
 * PUSHGATE_TEST_DB says, so it runs once per CI run: in the PostgreSQL suite (skipped in the others).
 */
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually, pushgate as cli, type ServerNode, startNode, stopNode } from '../helpers/nodes.ts';
import { freshDatabaseUrl, PG_ADMIN_URL, TEST_DB } from '../helpers/databases.ts';
import { leaseWorld, WORLD_POOL_MAX } from '../helpers/db_budget.ts';
import { FakePhone, makePhoneKey, type PhoneHost, type SmartphoneData } from '../helpers/fake_phone.ts';
import type { Reply } from '../helpers/test_app.ts';
import { freePort, reachable } from '../helpers/wait.ts';

const pgAt = new URL(PG_ADMIN_URL);
const here = TEST_DB === 'postgres';
const pgUp = here && (await reachable(Number(pgAt.port || 5432), pgAt.hostname));
const skip = pgUp
  ? ''
  : !here
    ? ' [skipped: runs in the PostgreSQL suite]'
    : ` [skipped: PostgreSQL at ${pgAt.hostname}:${pgAt.port || 5432} is unreachable]`;
const maybe = pgUp ? test.serial : test.skip;

/** One JSON log line per event: the server logs on stdout. */
function events(n: ServerNode, event: string): Array<Record<string, unknown>> {
  return n.lines.filter((l) => l.includes(`"event":"${event}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function call(
  base: string,
  method: string,
  p: string,
  params: Record<string, unknown> = {},
  opts: { as?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let target = base + p;
  let body: string | undefined;
  const str = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
  if (method === 'GET') {
    const qs = new URLSearchParams(str).toString();
    if (qs) target += (target.includes('?') ? '&' : '?') + qs;
  } else if (opts.as === 'json') {
    body = JSON.stringify(params);
    headers['content-type'] = 'application/json';
  } else {
    body = new URLSearchParams(str).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(target, { method, headers, body, signal: AbortSignal.timeout(45_000) });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers, text };
}

const host = (n: ServerNode): PhoneHost => ({ call: (m, p, params, o) => call(n.url, m, p, params, o), clock: { now: () => Date.now() } });

interface Cluster {
  a: ServerNode;
  b: ServerNode;
  admin: string;
  dbDrop: () => Promise<void>;
  tmp: string;
}
let cluster: Cluster | null = null;
let releases: Array<() => void> = [];

test.before(async () => {
  if (!pgUp) return;
  // The two server processes count as two worlds of one test in the connection budget (pool_max WORLD_POOL_MAX each).
  const owner = {};
  releases = [await leaseWorld(owner), await leaseWorld(owner)];
  const db = await freshDatabaseUrl('postgres');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-two-nodes-'));
  const keyFile = path.join(tmp, 'shared.key');
  fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const [portA, portB] = [await freePort(), await freePort()];
  const configFor = (port: number) => ({
    server: { host: '127.0.0.1', port, public_url: `http://127.0.0.1:${portB}` },
    database: { url: db.url, pool_max: WORLD_POOL_MAX },
    secrets: { key_file: keyFile },
    pin: { memory_kib: 1024, time_cost: 1, parallelism: 1 },
    wait: { safety_reread_ms: 600_000, drain_seconds: 1 },
    challenge: { type_validity_seconds: { edupush: 300 } },
    log: { level: 'debug', format: 'json' }, // wait.started is a debug line
    policies: [
      { name: 'push-enroll', scope: 'enrollment', actions: { edupush_firebase_configuration: 'poll only' } },
      { name: 'bob-waits', scope: 'authentication', user: 'bob', actions: { edupush_wait: 300 } },
    ],
  });
  const fileA = path.join(tmp, 'a.yaml');
  const fileB = path.join(tmp, 'b.yaml');
  fs.writeFileSync(fileA, JSON.stringify(configFor(portA), null, 2)); // JSON is YAML
  fs.writeFileSync(fileB, JSON.stringify(configFor(portB), null, 2));
  // The CLI migrates the fresh database and adds the administrator, before either server starts.
  const added = await cli(['admin', 'add', 'admin', '--password-stdin', '--config', fileA], 'admin-pw\n');
  if (added.code !== 0) throw new Error(`admin add failed: ${added.out}`);
  const [a, b] = await Promise.all([startNode('A', fileA, portA), startNode('B', fileB, portB)]);
  const auth = await call(a.url, 'POST', '/auth', { username: 'admin', password: 'admin-pw' });
  if (auth.status !== 200) throw new Error(`admin login on A failed: ${auth.text}`);
  cluster = { a, b, admin: auth.body.result.value.token as string, dbDrop: db.drop, tmp };
});

test.after.always(async () => {
  try {
    if (!cluster) return;
    await Promise.all([stopNode(cluster.a), stopNode(cluster.b)]);
    await cluster.dbDrop();
    fs.rmSync(cluster.tmp, { recursive: true, force: true });
  } finally {
    for (const release of releases) release();
  }
});

/** /token/init on node A, step 2 by the phone on node B. */
async function enrollAcrossNodes(c: Cluster, user: string): Promise<{ phone: FakePhone; serial: string }> {
  const init = await call(
    c.a.url,
    'POST',
    '/token/init',
    { type: 'edupush', genkey: 1, user, pin: '1234' },
    { headers: { Authorization: c.admin } },
  );
  if (init.status !== 200) throw new Error(`init on A: ${init.text}`);
  const phone = new FakePhone(host(c.b), 'edumfa-next', makePhoneKey('rsa'));
  phone.scan(init.body.detail.pushurl.value);
  const step2 = await phone.enroll();
  if (step2.status !== 200) throw new Error(`step 2 on B: ${step2.text}`);
  return { phone, serial: init.body.detail.serial as string };
}

/** The phone's poll on node B until the open challenge shows up (a generous deadline: real processes). */
function pollUntilOpen(phone: FakePhone): Promise<SmartphoneData> {
  return eventually("an open challenge in the phone's poll on B", async () => {
    const r = await phone.poll();
    if (r.status !== 200) throw new Error(`poll on B: ${r.text}`);
    return r.body.result.value[0] as SmartphoneData | undefined;
  });
}

/** Node `n`'s log lines of `event`, once there are at least `count` (stdout arrives apart from the HTTP replies). */
function logged(n: ServerNode, event: string, count = 1): Promise<Array<Record<string, unknown>>> {
  return eventually(`${count} ${event} log line(s) of node ${n.name}`, () => {
    const e = events(n, event);
    return e.length >= count ? e : undefined;
  });
}

maybe(`a challenge triggered on node A is answered by the phone on node B and finalized on node A → ACCEPT${skip}`, async (t) => {
  const c = cluster!;
  const { phone, serial } = await enrollAcrossNodes(c, 'alice');
  t.truthy(phone.serverKey, 'node B completed the enrollment started on node A');
  t.true(
    events(c.a, 'server.started').every((e) => String(e.database).startsWith('postgres ')),
    'the database it names',
  );

  const trig = await call(c.a.url, 'POST', '/validate/check', { user: 'alice', pass: '1234' });
  t.like(trig.body, { result: { value: false, authentication: 'CHALLENGE' } });
  const tid = trig.body.detail.transaction_id as string;

  const data = await pollUntilOpen(phone);
  t.true(phone.verifyPushData(data), 'node B signs with the server key stored by node B, readable with the shared key file');
  t.is(data.serial, serial);
  const answered = await phone.answer(data);
  t.like(answered.body, { result: { status: true, value: true } });

  const status = await call(c.a.url, 'GET', '/validate/polltransaction', { transaction_id: tid });
  t.like(status.body, { result: { value: true, authentication: 'ACCEPT' } }, 'node A sees the answer given on node B');
  const fin = await call(c.a.url, 'POST', '/validate/check', { user: 'alice', pass: '', transaction_id: tid });
  t.like(fin.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { message: 'Found matching challenge', serial } });
  const again = await call(c.b.url, 'POST', '/validate/check', { user: 'alice', pass: '', transaction_id: tid });
  t.like(again.body, { result: { value: false, authentication: 'REJECT' } }, 'consumed: node B cannot finalize it again');
});

maybe(`a /validate/check waiting on node A (edupush_wait) is woken by the answer posted to node B${skip}`, async (t) => {
  const c = cluster!;
  const { phone } = await enrollAcrossNodes(c, 'bob');
  const waiting = call(c.a.url, 'POST', '/validate/check', { user: 'bob', pass: '1234' });
  const data = await pollUntilOpen(phone);
  t.is((await logged(c.a, 'wait.started')).length, 1, 'node A is waiting');
  const answered = await phone.answer(data);
  const answeredAt = performance.now();
  t.like(answered.body, { result: { value: true } });
  // Node A re-reads on its own only at 300 s (deadline) or 600 s (safety net); the client gives up after 45 s. An
  // ACCEPT here can only come from the bus.
  const r = await waiting;
  const wokeAfter = performance.now() - answeredAt;
  t.like(r.body, { result: { value: true, authentication: 'ACCEPT' } });
  const finished = await logged(c.a, 'wait.finished');
  t.is(finished.length, 1);
  t.like(finished[0], { result: 'accept' });
  t.true(Number(finished[0]!.wakeMs) < 300_000, 'woken before the deadline read');
  t.is(events(c.b, 'wait.started').length, 0, 'node B never waited');
  t.log(`node A woke ${wokeAfter.toFixed(0)} ms after the phone's answer on node B (wakeMs ${String(finished[0]!.wakeMs)})`);
});
