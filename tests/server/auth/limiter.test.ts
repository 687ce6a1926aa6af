/**
 * server/auth/limiter.ts (the PIN queue) and the PinHasher on top of it, with fake tasks held by deferreds and a
 * FakeClock: FIFO per key, round robin across keys, the per-key and global bounds, the wait deadline, and jobs whose
 * client went away. No sleeps, no timing: every step waits for a state (`until`), never for time.
 */
import test from 'ava';
import { ASSUMED_TASK_MS, Limiter, type LimiterOptions, type RejectReason } from '../../../server/auth/limiter.ts';
import { createPinHasher, type Argon } from '../../../server/auth/pin.ts';
import { ClientGoneError, UnavailableError } from '../../../core/errors.ts';
import { Events } from '../../../core/events.ts';
import { createMetrics } from '../../../server/metrics.ts';
import type { Clock } from '../../../core/clock.ts';
import { FakeClock } from '../../helpers/fake_clock.ts';
import { deferred, track, until, type Deferred } from '../../helpers/kit.ts';

/** A limiter on a FakeClock that records which jobs started (in order) and every refusal. */
function harness(o: Partial<LimiterOptions> = {}) {
  const clock = o.clock ?? new FakeClock();
  const rejects: Array<{ reason: RejectReason; key: string }> = [];
  const lim = new Limiter({
    max: 1,
    maxQueue: 100,
    maxQueuePerKey: 100,
    maxWaitMs: 10_000,
    clock,
    onReject: (reason, key) => rejects.push({ reason, key }),
    ...o,
  });
  const started: string[] = [];
  const gates = new Map<string, Deferred<void>>();
  /** Submits job `name` for `key`; its task records the start and then holds its slot until `release(name)`. */
  const submit = (key: string, name: string, signal?: AbortSignal) => {
    const gate = deferred();
    gates.set(name, gate);
    return track(
      lim.run(
        async () => {
          started.push(name);
          await gate.promise;
          return name;
        },
        { key, signal },
      ),
    );
  };
  const released = new Set<string>();
  const release = (name: string) => {
    released.add(name);
    gates.get(name)!.resolve();
  };
  /** Started and not yet released, oldest first. */
  const running = () => started.filter((n) => !released.has(n));
  return { lim, clock, rejects, started, submit, release, running };
}

test('FIFO within one key', async (t) => {
  const h = harness();
  const hold = h.submit('x', 'x0');
  const jobs = ['a1', 'a2', 'a3'].map((n) => h.submit('a', n));
  await until(() => h.lim.waiting === 3);
  t.deepEqual(h.started, ['x0']);
  for (const n of ['x0', 'a1', 'a2']) {
    h.release(n);
    await until(() => h.started.length === ['x0', 'a1', 'a2', 'a3'].indexOf(n) + 2);
  }
  h.release('a3');
  t.deepEqual(await Promise.all([hold.promise, ...jobs.map((j) => j.promise)]), ['x0', 'a1', 'a2', 'a3']);
  t.deepEqual(h.started, ['x0', 'a1', 'a2', 'a3']);
});

test('round robin across keys: a1 b1 c1 a2 b2 a3', async (t) => {
  const h = harness();
  const all = [
    h.submit('x', 'x0'),
    h.submit('a', 'a1'),
    h.submit('a', 'a2'),
    h.submit('a', 'a3'),
    h.submit('b', 'b1'),
    h.submit('b', 'b2'),
    h.submit('c', 'c1'),
  ];
  await until(() => h.lim.waiting === 6);
  t.is(h.lim.waitingKeys, 3);
  t.is(h.lim.longestKeyQueue, 3);
  for (let i = 0; i < 7; i++) {
    h.release(h.started[i]!);
    if (i < 6) await until(() => h.started.length === i + 2);
  }
  await Promise.all(all.map((j) => j.promise));
  t.deepEqual(h.started, ['x0', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
});

test('a flooder with 50 queued jobs: another key’s job starts within the next max-concurrency slots', async (t) => {
  const max = 3;
  const h = harness({ max });
  const flood = Array.from({ length: max + 50 }, (_, i) => h.submit('flooder', `f${i}`));
  await until(() => h.lim.active === max && h.lim.waiting === 50);
  const victim = h.submit('alice', 'victim');
  await until(() => h.lim.waiting === 51);
  // Free one slot at a time (the oldest running job ends); count the starts until the victim's.
  let startsAfter = 0;
  while (!h.started.includes('victim')) {
    const before = h.started.length;
    h.release(h.running()[0]!);
    await until(() => h.started.length === before + 1);
    startsAfter++;
  }
  t.true(startsAfter <= max, `the victim started as start no. ${startsAfter} after it was queued (FIFO: 51)`);
  t.is(h.lim.waitingFor('flooder'), 50 - (startsAfter - 1));
  await until(() => {
    for (const n of h.running()) h.release(n);
    return h.lim.active === 0 && h.lim.waiting === 0;
  });
  await Promise.all([...flood, victim].map((j) => j.promise));
  t.is(h.started.length, max + 51);
});

test('per-key bound: the flooder’s extra job gets 503 while another key still finds room', async (t) => {
  const h = harness({ maxQueue: 10, maxQueuePerKey: 2, maxWaitMs: 3000 });
  const hold = h.submit('x', 'x0');
  const f1 = h.submit('flooder', 'f1');
  const f2 = h.submit('flooder', 'f2');
  const err = await t.throwsAsync(
    h.lim.run(
      async () => {
        h.started.push('f3');
      },
      { key: 'flooder' },
    ),
    { instanceOf: UnavailableError },
  );
  t.is(err.status, 503);
  t.is(err.code, 503);
  t.deepEqual(err.headers, { 'Retry-After': '3' });
  t.deepEqual(h.rejects, [{ reason: 'key_full', key: 'flooder' }]);
  const other = h.submit('alice', 'a1');
  await until(() => h.lim.waiting === 3);
  t.false(other.settled(), 'alice is queued, not refused');
  for (const n of ['x0', 'f1', 'a1', 'f2']) {
    h.release(n);
    await until(() => h.started.includes(n));
  }
  await Promise.all([hold.promise, f1.promise, f2.promise, other.promise]);
  t.deepEqual(h.started, ['x0', 'f1', 'a1', 'f2'], 'f3 never ran; alice was served before the flooder’s second job');
});

test('global bound: beyond max_queue a job gets 503 at once and never runs', async (t) => {
  const h = harness({ maxQueue: 3, maxQueuePerKey: 3 });
  const jobs = [h.submit('x', 'x0'), h.submit('a', 'a1'), h.submit('b', 'b1'), h.submit('c', 'c1')];
  await until(() => h.lim.waiting === 3);
  const err = await t.throwsAsync(
    h.lim.run(
      async () => {
        h.started.push('d1');
      },
      { key: 'd' },
    ),
    { instanceOf: UnavailableError },
  );
  t.is(err.status, 503);
  t.deepEqual(h.rejects, [{ reason: 'queue_full', key: 'd' }]);
  for (const n of ['x0', 'a1', 'b1', 'c1']) {
    h.release(n);
    await until(() => h.started.includes(n));
  }
  await Promise.all(jobs.map((j) => j.promise));
  t.false(h.started.includes('d1'));
});

test('early refusal follows the measured task time: a job that could not start within max_wait_ms is refused at once', async (t) => {
  const clock = new FakeClock();
  const h = harness({ clock, maxWaitMs: 1000, maxQueue: 1000, maxQueuePerKey: 1000 });
  t.is(h.lim.taskMs, ASSUMED_TASK_MS, 'until a task ends, 50 ms are assumed');
  // Tasks of 100 ms (on the clock) pull the average up to about that.
  for (let i = 0; i < 30; i++) {
    const job = h.submit(`k${i}`, `slow${i}`);
    await until(() => h.started.includes(`slow${i}`));
    clock.advance(100);
    h.release(`slow${i}`);
    await job.promise;
  }
  t.true(h.lim.taskMs > 95 && h.lim.taskMs <= 100, `average ${h.lim.taskMs}`);
  // One running (up to 100 ms left), then 10 waiting fit: the 10th starts after about 10 × 100 ms = 1000 ms. The
  // 11th would start after 1100 ms: refused at once.
  const hold = h.submit('x', 'x0');
  await until(() => h.lim.active === 1);
  const fits = Array.from({ length: 10 }, (_, i) => h.submit(`u${i}`, `u${i}`));
  await until(() => h.lim.waiting === 10);
  const late = h.submit('late', 'late');
  await t.throwsAsync(late.promise, { instanceOf: UnavailableError });
  t.deepEqual(h.rejects, [{ reason: 'queue_full', key: 'late' }]);
  t.is(h.lim.waiting, 10, 'the others still wait');
  // Fast tasks bring the average down, and the same backlog is admitted again.
  h.release('x0');
  for (let i = 0; i < 10; i++) {
    await until(() => h.started.includes(`u${i}`));
    h.release(`u${i}`);
  }
  await Promise.all([hold.promise, ...fits.map((f) => f.promise)]);
  t.true(h.lim.taskMs < 20, `average ${h.lim.taskMs} after 11 instant tasks`);
  const hold2 = h.submit('x', 'x1');
  await until(() => h.lim.active === 1);
  const many = Array.from({ length: 40 }, (_, i) => h.submit(`v${i}`, `v${i}`));
  await until(() => h.lim.waiting === 40);
  t.is(h.rejects.length, 1, '40 waiting jobs fit at the measured time');
  h.release('x1');
  for (let i = 0; i < 40; i++) {
    await until(() => h.started.includes(`v${i}`));
    h.release(`v${i}`);
  }
  await Promise.all([hold2.promise, ...many.map((f) => f.promise)]);
});

test('deadline: a job queued longer than max_wait_ms is answered 503 at once, without running', async (t) => {
  const h = harness({ maxWaitMs: 2000 });
  const hold = h.submit('x', 'x0');
  const late = h.submit('a', 'a1');
  const later = h.submit('b', 'b1');
  await until(() => h.lim.waiting === 2);
  (h.clock as FakeClock).advance(1000);
  const fresh = h.submit('c', 'c1'); // queued 1000 ms after the others
  await until(() => h.lim.waiting === 3);
  (h.clock as FakeClock).advance(999);
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.false(late.settled(), 'not yet: 1999 ms');
  (h.clock as FakeClock).advance(1);
  await t.throwsAsync(late.promise, { instanceOf: UnavailableError });
  await t.throwsAsync(later.promise, { instanceOf: UnavailableError });
  t.is(h.lim.waiting, 1, 'the younger job still waits');
  t.deepEqual(
    h.rejects.map((r) => r.reason),
    ['deadline', 'deadline'],
  );
  h.release('x0');
  await until(() => h.started.includes('c1'));
  h.release('c1');
  await Promise.all([hold.promise, fresh.promise]);
  t.deepEqual(h.started, ['x0', 'c1'], 'the expired jobs never ran');
});

test('deadline: a job whose timer is late is refused when its turn comes, not run', async (t) => {
  // A clock whose timers never fire: only the check at dequeue time can catch the expired job.
  let now = 1_000_000;
  const lazy: Clock = { now: () => now, schedule: () => () => {} };
  const h = harness({ clock: lazy, maxWaitMs: 2000 });
  const hold = h.submit('x', 'x0');
  const expired = h.submit('a', 'a1');
  await until(() => h.lim.waiting === 1);
  now += 2000;
  const fresh = h.submit('b', 'b1');
  await until(() => h.lim.waiting === 2);
  h.release('x0');
  await t.throwsAsync(expired.promise, { instanceOf: UnavailableError });
  await until(() => h.started.includes('b1'));
  h.release('b1');
  await Promise.all([hold.promise, fresh.promise]);
  t.deepEqual(h.started, ['x0', 'b1']);
  t.deepEqual(h.rejects, [{ reason: 'deadline', key: 'a' }]);
});

test('a queued job whose client went away leaves the queue at once and never runs', async (t) => {
  const h = harness();
  const hold = h.submit('x', 'x0');
  const ac = new AbortController();
  const gone = h.submit('a', 'a1', ac.signal);
  const stays = h.submit('a', 'a2');
  await until(() => h.lim.waiting === 2);
  ac.abort();
  await t.throwsAsync(gone.promise, { instanceOf: ClientGoneError });
  t.is(h.lim.waiting, 1);
  h.release('x0');
  await until(() => h.started.includes('a2'));
  h.release('a2');
  await Promise.all([hold.promise, stays.promise]);
  t.deepEqual(h.started, ['x0', 'a2']);
  t.deepEqual(h.rejects, [{ reason: 'client_gone', key: 'a' }]);
  // Already gone before it was submitted: refused even with a free slot.
  const pre = h.submit('a', 'a3', AbortSignal.abort());
  await t.throwsAsync(pre.promise, { instanceOf: ClientGoneError });
  t.false(h.started.includes('a3'));
  t.is(h.lim.active, 0);
});

test('slots: never more than max at once; a failing task releases its slot', async (t) => {
  const h = harness({ max: 2 });
  const boom = deferred<void>();
  const failing = track(
    h.lim.run(
      async () => {
        h.started.push('bad');
        await boom.promise;
      },
      { key: 'a' },
    ),
  );
  const jobs = ['b1', 'c1', 'd1'].map((n, i) => h.submit(['b', 'c', 'd'][i]!, n));
  await until(() => h.lim.active === 2 && h.lim.waiting === 2);
  boom.reject(new Error('fail'));
  await t.throwsAsync(failing.promise, { message: 'fail' });
  await until(() => h.started.length === 3);
  t.is(h.lim.active, 2);
  for (const n of ['b1', 'c1', 'd1']) {
    h.release(n);
  }
  await Promise.all(jobs.map((j) => j.promise));
  t.is(h.lim.active, 0);
  t.is(h.lim.waiting, 0);
});

/** An argon2 stand-in whose verify is held until released, counting the calls. */
function heldArgon(): Argon & { calls: string[]; release(): void } {
  const calls: string[] = [];
  let gate = deferred();
  return {
    calls,
    hash: async (secret) => `$fake$${secret}`,
    async verify(stored, secret) {
      calls.push(secret);
      await gate.promise;
      return stored === `$fake$${secret}`;
    },
    release() {
      gate.resolve();
      gate = deferred();
    },
  };
}

test('PinHasher: an aborted job is never hashed; the others are', async (t) => {
  const argon = heldArgon();
  const clock = new FakeClock();
  const hasher = createPinHasher(
    { memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 1, maxQueue: 10, maxQueuePerKey: 10, maxWaitMs: 5000 },
    { clock, argon },
  );
  const first = hasher.verify('$fake$1', '1', { key: 'realm/alice' });
  const ac = new AbortController();
  const gone = track(hasher.verify('$fake$2', '2', { key: 'realm/bob', signal: ac.signal }));
  const third = hasher.verify('$fake$3', 'x', { key: 'realm/carol' });
  await until(() => hasher.limiter.waiting === 2);
  ac.abort();
  await t.throwsAsync(gone.promise, { instanceOf: ClientGoneError });
  argon.release();
  t.true(await first);
  await until(() => argon.calls.length === 2);
  argon.release();
  t.false(await third);
  t.deepEqual(argon.calls, ['1', 'x'], 'bob’s secret was never hashed');
});

test('PinHasher: a refusal is an error, not a "wrong PIN"; refusals are events and metrics', async (t) => {
  const argon = heldArgon();
  const clock = new FakeClock();
  const events = new Events();
  const hasher = createPinHasher(
    { memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 1, maxQueue: 1, maxQueuePerKey: 1, maxWaitMs: 1000 },
    { clock, argon, events },
  );
  const metrics = createMetrics(events, {
    waitsActive: () => 0,
    answerBusWaiters: () => 0,
    pinQueue: () => hasher.limiter,
    dbPool: () => null,
  });
  t.teardown(() => metrics.close());
  const running = hasher.verify('$fake$1', '1', { key: 'k1' });
  const queued = track(hasher.verify('$fake$2', '2', { key: 'k2' }));
  await until(() => hasher.limiter.waiting === 1);
  await t.throwsAsync(hasher.verify('$fake$3', '3', { key: 'k3' }), { instanceOf: UnavailableError, message: /Too many PIN checks/ });
  clock.advance(1000);
  await t.throwsAsync(queued.promise, { instanceOf: UnavailableError });
  argon.release();
  t.true(await running);
  t.deepEqual(argon.calls, ['1']);
  const counters = await metrics.counters();
  t.is(counters.get('pushgate_pin_rejected_total{reason="queue_full"}'), 1);
  t.is(counters.get('pushgate_pin_rejected_total{reason="deadline"}'), 1);
  // Only the job that ran was timed in the queue (it found a free slot: 0 s); refused jobs never start.
  t.regex(await metrics.render(), /^pushgate_pin_queue_wait_seconds_count 1$/m);
  // A stored value that is no hash still never matches (and frees its slot).
  const real = createPinHasher({ memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 1 }, { clock });
  t.false(await real.verify('$argon2id$garbage', 'x'));
  t.is(real.limiter.active, 0);
});

test('internal work (no job: CLI, an admin’s enrollment) is never refused or expired, uses no queue places, and takes turns', async (t) => {
  const h = harness({ maxQueue: 1, maxQueuePerKey: 1, maxWaitMs: 1000 });
  const hold = h.submit('x', 'x0');
  const internal = ['i1', 'i2', 'i3'].map((n) => {
    const gate = deferred();
    return {
      n,
      gate,
      run: track(
        h.lim.run(async () => {
          h.started.push(n);
          await gate.promise;
        }),
      ),
    };
  });
  await until(() => h.lim.waiting === 3);
  const user = h.submit('alice', 'a1');
  await until(() => h.lim.waiting === 4);
  t.false(user.settled(), 'the internal work took none of the one place');
  (h.clock as FakeClock).advance(999);
  t.deepEqual(h.rejects, []);
  h.release('x0');
  await until(() => h.started.length === 2);
  internal[0]!.gate.resolve();
  await until(() => h.started.length === 3);
  t.deepEqual(h.started, ['x0', 'i1', 'a1'], 'alice waited for one internal job, not for all three');
  (h.clock as FakeClock).advance(10_000);
  h.release('a1');
  for (const j of internal) j.gate.resolve();
  await Promise.all([hold.promise, user.promise, ...internal.map((j) => j.run.promise)]);
  t.deepEqual(h.started, ['x0', 'i1', 'a1', 'i2', 'i3']);
  t.deepEqual(h.rejects, []);
});
