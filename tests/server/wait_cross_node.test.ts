/**
 * Wait mode across server processes (issue 4): two Deps + HTTP apps ("nodes") share ONE fresh PostgreSQL database and
 * the same secrets key. A login waits on node A; the phone's answer is posted to node B; the answer bus must carry the
 * wake-up from B to A — PostgreSQL LISTEN/NOTIFY by default, Redis pub/sub when bus.redis_url is set.
 *
 * Each node has its own FakeClock and the tests never advance it, so the safety-net re-read never fires: a pass here
 * proves the bus, not the re-read. Needs PostgreSQL (PUSHGATE_TEST_PG_URL, default 127.0.0.1:5432) and, for the Redis
 * test, Redis (PUSHGATE_TEST_REDIS_URL, default redis://127.0.0.1:6379); a test whose service is unreachable is skipped
 * with the reason in its title. The nodes always use PostgreSQL, whatever PUSHGATE_TEST_DB says, so these tests run
 * once per CI run: in the PostgreSQL suite (skipped in the others).
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import crypto from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { check, policy, tokenOf, track, until } from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import { freshDatabaseUrl, PG_ADMIN_URL, TEST_DB } from '../helpers/databases.ts';
import type { TestWorld } from '../helpers/test_app.ts';
import type { FakePhone, SmartphoneData } from '../helpers/fake_phone.ts';
import { parked, reachable, startedWaits } from '../helpers/wait.ts';

const REDIS_URL = process.env.PUSHGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CHANNEL = 'pushgate_answers';

const hostPort = (url: string, port: number) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || port) };
};
const pgAt = hostPort(PG_ADMIN_URL, 5432);
const redisAt = hostPort(REDIS_URL, 6379);
const here = TEST_DB === 'postgres';
const pgUp = here && (await reachable(pgAt.port, pgAt.host));
const redisUp = here && (await reachable(redisAt.port, redisAt.host));
const PG_SKIP = here ? ` [skipped: PostgreSQL at ${pgAt.host}:${pgAt.port} is unreachable]` : ' [skipped: runs in the PostgreSQL suite]';
const REDIS_SKIP = !here
  ? PG_SKIP
  : ` [skipped: ${!pgUp ? `PostgreSQL at ${pgAt.host}:${pgAt.port}` : `Redis at ${redisAt.host}:${redisAt.port}`} is unreachable]`;

interface Nodes {
  a: TestWorld;
  b: TestWorld;
  dbUrl: string;
}

/** Two nodes on one fresh PostgreSQL database with one secrets key; created one after the other (migrations). */
async function twoNodes(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<Nodes> {
  const db = await freshDatabaseUrl('postgres');
  t.teardown(db.drop); // registered first: runs after both nodes are closed
  const key = crypto.randomBytes(32);
  const opts = { policies: [policy('wait', 'authentication', { edupush_wait: 30 })], config, world: { databaseUrl: db.url, key } };
  const a = await pushWorld(t, opts);
  const b = await pushWorld(t, opts);
  return { a, b, dbUrl: db.url };
}

/** The same phone (key, scanned token, server key) talking to another node. */
function samePhoneOn(w: TestWorld, phone: FakePhone): FakePhone {
  const other = phoneFor(w, phone.style, phone.key.kind);
  other.token = phone.token;
  other.serverKey = phone.serverKey;
  return other;
}

async function openOn(t: ExecutionContext, phone: FakePhone): Promise<SmartphoneData> {
  const r = await phone.poll();
  t.is(r.status, 200, r.text);
  t.is(r.body.result.value.length, 1);
  return r.body.result.value[0] as SmartphoneData;
}

/** Wait on A, answer (accept or decline) on B; returns A's reply and the transaction id. */
async function waitOnAAnswerOnB(t: ExecutionContext, n: Nodes, decline: boolean) {
  const phoneA = phoneFor(n.a);
  const serial = await enrollPhone(n.a, phoneA);
  const phoneB = samePhoneOn(n.b, phoneA);
  const startA = n.a.clock.now();
  const pending = track(check(n.a, { user: 'alice', pass: '1234' }));
  await parked(n.a);
  const [tid] = startedWaits(n.a);
  t.is(n.b.deps.waits.active, 0, 'node B does not wait');
  const data = await openOn(t, phoneB);
  t.like((await phoneB.answer(data, { decline })).body, { result: { value: true } });
  const r = await pending.promise;
  t.is(n.a.clock.now(), startA, "node A's clock never moved: no safety-net re-read could have run");
  t.is(n.a.deps.waits.active, 0);
  t.is(n.a.deps.answers.waiting, 0);
  t.deepEqual(await n.b.deps.store.challenges.byTransaction(tid!), [], 'node A consumed and deleted the transaction');
  return { r, tid: tid!, serial };
}

(pgUp ? test : test.skip)(
  `PostgreSQL LISTEN/NOTIFY: a wait on node A is woken by the phone's answer posted to node B${pgUp ? '' : PG_SKIP}`,
  async (t) => {
    t.timeout(30_000, 'the cross-node wake-up never arrived');
    const n = await twoNodes(t);
    // An independent listener on the bus channel shows which transport carried the wake-up.
    const listener = new pg.Client({ connectionString: n.dbUrl });
    await listener.connect();
    t.teardown(() => listener.end());
    const notified: string[] = [];
    listener.on('notification', (m) => {
      if (m.channel === CHANNEL && m.payload) notified.push(m.payload);
    });
    await listener.query(`LISTEN ${CHANNEL}`);

    const { r, tid, serial } = await waitOnAAnswerOnB(t, n, false);
    t.is(r.status, 200, r.text);
    t.like(r.body, {
      result: { status: true, value: true, authentication: 'ACCEPT' },
      detail: { message: 'matching 1 tokens', serial, type: 'edupush' },
    });
    t.not((await tokenOf(n.b, serial)).lastAuthAt, null);
    await until(() => notified.includes(tid));
    t.pass();
  },
);

(pgUp ? test : test.skip)(
  `PostgreSQL LISTEN/NOTIFY: a decline posted to node B ends node A's wait (REJECT, challenge_status declined)${pgUp ? '' : PG_SKIP}`,
  async (t) => {
    t.timeout(30_000, 'the cross-node wake-up never arrived');
    const n = await twoNodes(t);
    const { r, serial } = await waitOnAAnswerOnB(t, n, true);
    t.like(r.body, { result: { status: true, value: false, authentication: 'REJECT' }, detail: { serial, challenge_status: 'declined' } });
  },
);

(pgUp && redisUp ? test : test.skip)(
  `Redis pub/sub (bus.redis_url, on PostgreSQL): a wait on node A is woken by the answer posted to node B${pgUp && redisUp ? '' : REDIS_SKIP}`,
  async (t) => {
    t.timeout(30_000, 'the cross-node wake-up never arrived');
    const sub = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await sub.connect();
    t.teardown(() => {
      sub.disconnect();
    });
    const published: string[] = [];
    sub.on('message', (channel: string, message: string) => {
      if (channel === CHANNEL) published.push(message);
    });
    await sub.subscribe(CHANNEL);
    // And a PostgreSQL listener: with Redis configured, NOTIFY must stay silent.
    const n = await twoNodes(t, { bus: { redis_url: REDIS_URL } });
    const listener = new pg.Client({ connectionString: n.dbUrl });
    await listener.connect();
    t.teardown(() => listener.end());
    const notified: string[] = [];
    listener.on('notification', (m) => {
      if (m.payload) notified.push(m.payload);
    });
    await listener.query(`LISTEN ${CHANNEL}`);

    const { r, tid, serial } = await waitOnAAnswerOnB(t, n, false);
    t.like(r.body, { result: { status: true, value: true, authentication: 'ACCEPT' }, detail: { message: 'matching 1 tokens', serial } });
    await until(() => published.includes(tid));
    // A NOTIFY sent before the Redis message would have arrived by now (same loopback, same ordering of events).
    await listener.query('select 1');
    t.deepEqual(notified, [], 'Redis is the transport when bus.redis_url is set');
  },
);
