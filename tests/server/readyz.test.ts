/**
 * GET /readyz: 200 with every check ok; 503 (still the envelope, status true) when the database or the answer bus is
 * down, and 200 again when it is back; a hung dependency answers 503 once the per-check timeout passes.
 * The Redis bus test runs a small TCP proxy in front of Redis (PUSHGATE_TEST_REDIS_URL, default 127.0.0.1:6379) and
 * cuts it, so the same bus connections go down and come back; it is skipped when Redis is unreachable.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import test from 'ava';
import { world, until } from '../helpers/kit.ts';
import { reachable } from '../helpers/wait.ts';
import { FakeClock } from '../helpers/fake_clock.ts';
import { Events } from '../../core/events.ts';
import { createReadiness, READINESS_TIMEOUT_MS } from '../../server/readiness.ts';
import { createStore } from '../../server/store/store.ts';
import { createSecretBox } from '../../server/store/secrets.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const REDIS_URL = new URL(process.env.PUSHGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
const redisPort = Number(REDIS_URL.port || 6379);
const redisUp = await reachable(redisPort, REDIS_URL.hostname);
const maybe = redisUp ? test : test.skip;

const readyz = async (w: TestWorld) => {
  const r = await w.call('GET', '/readyz');
  return { status: r.status, value: r.body.result.value, body: r.body };
};

test('/readyz: 200 and every check ok; 503 while the database is down, 200 again when it is back', async (t) => {
  const w = await world(t);
  const up = await readyz(w);
  t.is(up.status, 200);
  t.like(up.body, { jsonrpc: '2.0', result: { status: true } });
  t.like(up.value, { ready: true, checks: { database: { ok: true }, answer_bus: { ok: true } } });
  t.deepEqual(Object.keys(up.value.checks).sort(), ['answer_bus', 'database']);
  t.is(typeof up.value.checks.database.ms, 'number');
  t.false('error' in up.value.checks.database);

  // The database goes away: the pool is torn down (every query fails, as with a refused connection).
  await w.deps.store.knex.destroy();
  const down = await readyz(w);
  t.is(down.status, 503);
  t.like(down.body, { result: { status: true } }, 'a report, not an error envelope');
  t.like(down.value, { ready: false, checks: { database: { ok: false, error: 'A database error occurred.' }, answer_bus: { ok: true } } });
  const failed = w.seen.filter((e) => e.name === 'readiness.failed').map((e) => e.payload as { check: string; error: string });
  t.is(failed.length, 1);
  t.is(failed[0]!.check, 'database');
  t.not(failed[0]!.error, 'A database error occurred.', "the log gets the driver's reason");
  t.regex(await (await w.call('GET', '/metrics')).text, /^pushgate_readiness_failures_total\{check="database"\} 1$/m);
  t.is((await w.call('GET', '/healthz')).status, 500, '/healthz says the same');

  // Back: a new pool.
  w.deps.store.knex.initialize();
  const back = await readyz(w);
  t.is(back.status, 200);
  t.like(back.value, { ready: true, checks: { database: { ok: true } } });
});

test('/readyz: a hung check answers 503 when its timeout passes (the clock), the other checks still report', async (t) => {
  const w = await world(t);
  w.deps.readiness.add({ name: 'ldap', run: () => new Promise(() => {}) });
  const timers = w.clock.pending;
  const pending = w.call('GET', '/readyz');
  // The three checks' timers are set at once; the database and the bus answer and cancel theirs: the hung one's is left.
  await until(() => w.clock.pending === timers + 1);
  w.clock.advance(READINESS_TIMEOUT_MS - 1);
  w.clock.advance(1);
  const r = await pending;
  t.is(r.status, 503);
  t.like(r.body.result.value, {
    ready: false,
    checks: {
      database: { ok: true },
      answer_bus: { ok: true },
      ldap: { ok: false, error: `timed out after ${READINESS_TIMEOUT_MS} ms`, ms: READINESS_TIMEOUT_MS },
    },
  });
  t.throws(() => w.deps.readiness.add({ name: 'ldap', run: async () => {} }), { message: /already registered/ });
});

test('readiness: a database that accepts the connection and never answers is reported within the timeout', async (t) => {
  // A TCP server that takes the PostgreSQL connection and says nothing (a hung database or a black-holed proxy).
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  const store = createStore(`postgres://pushgate@127.0.0.1:${port}/hung`, createSecretBox(crypto.randomBytes(32)), { log: () => {} });
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    silent.close();
    await store.close();
  });
  const clock = new FakeClock();
  const events = new Events();
  const readiness = createReadiness({ clock, events }, [{ name: 'database', run: () => store.ping() }]);
  const report = readiness.run();
  t.is(clock.pending, 1);
  await until(() => sockets.size === 1); // the driver connected and waits for the server's answer
  clock.advance(READINESS_TIMEOUT_MS);
  t.deepEqual(await report, {
    ready: false,
    checks: { database: { ok: false, ms: READINESS_TIMEOUT_MS, error: `timed out after ${READINESS_TIMEOUT_MS} ms` } },
  });
  t.is(clock.pending, 0, 'no timer left behind');
});

/**
 * Asks /readyz until it answers `status` (ioredis notices the cut at once, and re-connects with its back-off of
 * 50 ms × attempts, at most 2 s): real time passes here for a real re-connect, bounded to 15 s.
 */
async function readyzUntil(w: TestWorld, status: number) {
  const end = performance.now() + 15_000;
  for (;;) {
    const r = await readyz(w);
    if (r.status === status || performance.now() > end) return r;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A TCP proxy to Redis that can be cut (every connection closed, the port refusing) and restored on the same port. */
async function redisProxy(): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = net.createServer((client) => {
        const upstream = net.connect(redisPort, REDIS_URL.hostname);
        for (const x of [client, upstream]) {
          sockets.add(x);
          x.on('error', () => {});
          x.on('close', () => {
            sockets.delete(x);
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        server = s;
        resolve((s.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(0);
  return {
    port,
    async cut() {
      const s = server;
      server = null;
      for (const x of sockets) x.destroy();
      await new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
    },
    async restore() {
      await listen(port);
    },
  };
}

maybe(
  `/readyz: a Redis answer bus that goes down answers 503, and 200 once the same connections are back${redisUp ? '' : ' [skipped: Redis is unreachable]'}`,
  async (t) => {
    const proxy = await redisProxy();
    t.teardown(() => proxy.cut());
    const w = await world(t, {
      config: { bus: { redis_url: `redis://127.0.0.1:${proxy.port}` }, limits: { store: 'memory' } },
    });
    t.is((await readyz(w)).status, 200);
    await proxy.cut();
    let r = await readyzUntil(w, 503);
    t.like(r.value, { ready: false, checks: { database: { ok: true }, answer_bus: { ok: false } } });
    t.regex(r.value.checks.answer_bus.error, /connection is (reconnecting|connecting|close|end)/);
    await proxy.restore();
    r = await readyzUntil(w, 200);
    t.like(r.value, { ready: true, checks: { answer_bus: { ok: true } } });
  },
);
