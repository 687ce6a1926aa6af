import test from 'ava';
import { world, enroll, enrollHotp, check, drained, policy } from '../../helpers/kit.ts';
import { PUSH_BACKOFF_FORGET_MS, runCleanup, startCleanup } from '../../../server/store/cleanup.ts';
import { pushWorld } from '../../helpers/push_world.ts';

test('expired challenges are deleted, live ones kept', async (t) => {
  const w = await world(t, { config: { policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] })] } });
  await enrollHotp(w);
  const first = await check(w, { user: 'alice', pass: '1234' });
  t.is(first.body.result.authentication, 'CHALLENGE');
  w.clock.advance(60_000);
  const second = await check(w, { user: 'alice', pass: '1234' });
  w.clock.advance(61_000); // first is 121 s old (expired), second 61 s (alive)
  const r = await runCleanup(w.deps);
  t.is(r.challenges, 1);
  t.deepEqual(await w.deps.store.challenges.byTransaction(first.body.detail.transaction_id), []);
  t.is((await w.deps.store.challenges.byTransaction(second.body.detail.transaction_id)).length, 1);
});

test('half-enrolled push tokens are purged only rollout_purge_minutes after their TTL', async (t) => {
  const w = await pushWorld(t, { config: { tokens: { rollout_purge_minutes: 30 } } });
  const body = await enroll(w, { type: 'edupush', genkey: 1, user: 'alice' });
  const serial = body.detail.serial as string;
  w.clock.advance(11 * 60_000); // past the default ttl of 10 minutes
  t.is((await runCleanup(w.deps)).tokens, 0, 'still kept so a late phone gets the clear expiry error');
  w.clock.advance(30 * 60_000);
  t.is((await runCleanup(w.deps)).tokens, 1);
  t.is(await w.deps.store.tokens.bySerial(serial), null);
});

test('audit rows past the retention are deleted in chunks; recent rows stay', async (t) => {
  const w = await world(t, { config: { audit: { retention_days: 1 }, cleanup: { chunk: 2 } } });
  for (let i = 0; i < 5; i++) await check(w, { user: 'nobody', pass: 'x' });
  w.clock.advance(2 * 86_400_000);
  await check(w, { user: 'nobody', pass: 'x' });
  const r = await runCleanup(w.deps);
  t.is(r.audit, 5);
  t.is((await w.deps.store.audit.tail(100)).length, 1);
});

test('the cleanup timer runs on the injected clock and stops', async (t) => {
  const w = await world(t, { config: { cleanup: { interval_seconds: 60 } } });
  let runs = 0;
  const first = new Promise<void>((resolve) =>
    w.events.on('cleanup.ran', () => {
      runs++;
      resolve();
    }),
  );
  const before = w.clock.pending;
  const stop = startCleanup(w.deps);
  t.is(w.clock.pending, before + 1, 'one timer scheduled');
  w.clock.advance(59_999);
  t.is(runs, 0);
  w.clock.advance(1);
  await first;
  t.is(runs, 1);
  stop();
  // The run is over ('cleanup.ran' comes after its last query); what is left of it (re-arming the timer, unless
  // stopped) is promise continuations, which have all run after one macrotask turn.
  await drained();
  t.is(w.clock.pending, before, 'a stopped cleanup schedules nothing more');
  w.clock.advance(600_000);
  t.is(runs, 1);
});

test('push back-off rows untouched for a day are forgotten; a decline lock stays', async (t) => {
  const w = await world(t);
  const repo = w.deps.store.pushFatigue;
  await repo.strike('user:default:alice', '203.0.113.9', w.clock.now(), false);
  await repo.strike('user:default:alice', '', w.clock.now(), true);
  await repo.lock('user:default:alice', w.clock.now());
  w.clock.advance(PUSH_BACKOFF_FORGET_MS - 1000);
  await repo.strike('user:default:bob', '', w.clock.now(), false);
  t.is((await runCleanup(w.deps)).pushBackoff, 0, 'not a day old yet');
  w.clock.advance(2000);
  t.is((await runCleanup(w.deps)).pushBackoff, 1, "alice's address row; her locked user row stays");
  t.deepEqual(
    (await repo.backoff('user:default:alice')).map((r) => [r.client, r.lockedAt !== null]),
    [['', true]],
  );
  t.is((await repo.backoff('user:default:bob')).length, 1);
});
