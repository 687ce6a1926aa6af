/**
 * The device protocol v2 across two pushgate server PROCESSES on one PostgreSQL database (issue 14), driven by the
 * reference client (`pushgate device …`, run in-process: it only speaks HTTP to the nodes) exactly as a user would:
 *   - `pushgate token enroll --type edupush` (the CLI) prints the enrollment URL; `pushgate device enroll URL`
 *     enrolls against node A (the registration URL names A);
 *   - `device listen --json --once` holds its long-poll on node B (the store's server is pointed at B, as a load
 *     balancer would send it there); a login on node A wakes it — the challenge-created wake-up crosses the nodes
 *     through PostgreSQL LISTEN/NOTIFY (the long-poll waits 25 s and nothing else wakes it sooner);
 *   - `device approve` (node B) → the login finalized on node A is ACCEPT; `device listen --sse` on B, a second login
 *     on A, `device decline --reason` → REJECT.
 * Real processes, real time, generous deadlines, no duration asserted. Skipped (reason in the title) unless the
 * PostgreSQL suite runs and PostgreSQL is reachable, like tests/server/two_nodes.test.ts.
 */
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freshDatabaseUrl, PG_ADMIN_URL, TEST_DB } from '../helpers/databases.ts';
import { leaseWorld, WORLD_POOL_MAX } from '../helpers/db_budget.ts';
import { freePort, reachable } from '../helpers/wait.ts';
import { eventually, pushgate, startNode, stopNode, type ServerNode } from '../helpers/nodes.ts';
import { deviceCli } from '../helpers/device_cli.ts';

const pgAt = new URL(PG_ADMIN_URL);
const here = TEST_DB === 'postgres';
const pgUp = here && (await reachable(Number(pgAt.port || 5432), pgAt.hostname));
const skip = pgUp
  ? ''
  : !here
    ? ' [skipped: runs in the PostgreSQL suite]'
    : ` [skipped: PostgreSQL at ${pgAt.hostname}:${pgAt.port || 5432} is unreachable]`;
const maybe = pgUp ? test.serial : test.skip;

let nodes: { a: ServerNode; b: ServerNode; tmp: string; fileA: string; drop: () => Promise<void> } | null = null;
let releases: Array<() => void> = [];

test.before(async () => {
  if (!pgUp) return;
  const owner = {};
  releases = [await leaseWorld(owner), await leaseWorld(owner)];
  const db = await freshDatabaseUrl('postgres');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-device-nodes-'));
  const keyFile = path.join(tmp, 'shared.key');
  fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const [portA, portB] = [await freePort(), await freePort()];
  const configFor = (port: number) => ({
    server: { host: '127.0.0.1', port, public_url: `http://127.0.0.1:${port}` },
    database: { url: db.url, pool_max: WORLD_POOL_MAX },
    secrets: { key_file: keyFile },
    pin: { memory_kib: 1024, time_cost: 1, parallelism: 1 },
    log: { level: 'info', format: 'json' },
    policies: [
      {
        name: 'device',
        scope: 'enrollment',
        actions: {
          edupush_firebase_configuration: 'longpoll',
          edupush_device_protocol: true,
          edupush_registration_url: `http://127.0.0.1:${portA}/ttype/edupush`,
        },
      },
    ],
  });
  const fileA = path.join(tmp, 'a.yaml');
  const fileB = path.join(tmp, 'b.yaml');
  fs.writeFileSync(fileA, JSON.stringify(configFor(portA), null, 2));
  fs.writeFileSync(fileB, JSON.stringify(configFor(portB), null, 2));
  const migrated = await pushgate(['db', 'migrate', '--config', fileA]);
  if (migrated.code !== 0) throw new Error(`db migrate failed: ${migrated.out}`);
  const [a, b] = await Promise.all([startNode('A', fileA, portA), startNode('B', fileB, portB)]);
  nodes = { a, b, tmp, fileA, drop: db.drop };
});

test.after.always(async () => {
  try {
    if (!nodes) return;
    await Promise.all([stopNode(nodes.a), stopNode(nodes.b)]);
    await nodes.drop();
    fs.rmSync(nodes.tmp, { recursive: true, force: true });
  } finally {
    for (const release of releases) release();
  }
});

async function check(base: string, params: Record<string, string>) {
  const res = await fetch(`${base}/validate/check`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  return (await res.json()) as { result: { authentication?: string }; detail: { transaction_id?: string } };
}

/** Node B's open long-polls and streams (its answer bus listeners, from /metrics). */
async function waitersOn(n: ServerNode): Promise<number> {
  const text = await (await fetch(`${n.url}/metrics`)).text();
  return Number(/^pushgate_answer_bus_waiters (\d+)/m.exec(text)?.[1] ?? 0);
}

maybe(`the reference client across two nodes: enroll on A, listen on B, login on A, approve and decline${skip}`, async (t) => {
  const { a, b, tmp, fileA } = nodes!;
  const store = path.join(tmp, 'device.json');
  // the URL `pushgate token enroll` prints
  const enrolled = await pushgate([
    'token',
    'enroll',
    '--type',
    'edupush',
    '--user',
    'alice',
    '--pin',
    '1234',
    '--json',
    '--config',
    fileA,
  ]);
  t.is(enrolled.code, 0, enrolled.out);
  const url = /edumfa-push:\/\/[^\s"]+/.exec(enrolled.out)?.[0];
  t.truthy(url, enrolled.out);
  t.regex(url!, /&pushgate=2$/);
  const dev = await deviceCli(store, ['enroll', url!]);
  t.is(dev.code, 0, dev.stderr);
  t.is(fs.statSync(store).mode & 0o777, 0o600);

  // the device now talks to node B
  const doc = JSON.parse(fs.readFileSync(store, 'utf8'));
  doc.devices[0].server = b.url;
  fs.writeFileSync(store, JSON.stringify(doc));

  const listen = deviceCli(store, ['listen', '--json', '--once']);
  await eventually('the long-poll held on B', async () => ((await waitersOn(b)) >= 1 ? true : undefined));
  const login = await check(a.url, { user: 'alice', pass: '1234' });
  const tid = login.detail.transaction_id!;
  t.truthy(tid);
  const got = await listen;
  t.is(got.code, 0, got.stderr);
  const req = JSON.parse(got.stdout.trim());
  t.like(req, { question: 'Do you want to confirm the login?', title: 'eduMFA', code: null });
  t.is((await deviceCli(store, ['approve', req.id])).code, 0);
  t.like(await check(a.url, { user: 'alice', pass: '', transaction_id: tid }), { result: { authentication: 'ACCEPT' } });

  const sse = deviceCli(store, ['listen', '--sse', '--json', '--once']);
  await eventually('the stream held on B', async () => ((await waitersOn(b)) >= 1 ? true : undefined));
  const second = await check(a.url, { user: 'alice', pass: '1234' });
  const got2 = await sse;
  t.is(got2.code, 0, got2.stderr);
  const req2 = JSON.parse(got2.stdout.trim());
  const declined = await deviceCli(store, ['decline', req2.id, '--reason', 'not me']);
  t.is(declined.code, 0, declined.stderr);
  t.like(await check(a.url, { user: 'alice', pass: '', transaction_id: second.detail.transaction_id! }), {
    result: { authentication: 'REJECT' },
  });
});
