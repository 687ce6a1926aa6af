/**
 * Wait mode (edupush_wait / push_wait, protocol.md §8 and issue 4): /validate/check with the PIN sends the push and
 * answers in the same request once the phone has answered. Time only moves when a test advances the FakeClock;
 * "the request is parked" is observed through the wait registry and the answer bus, never by sleeping.
 */
import test from 'ava';
import http from 'node:http';
import type { ExecutionContext } from 'ava';
import {
  asAdmin,
  auditRows,
  callsSince,
  check,
  deferred,
  drained,
  enroll,
  enrollHotp,
  hotpAt,
  policy,
  quiet,
  serverResponses,
  tokenOf,
  track,
  until,
} from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import type { TestWorld } from '../helpers/test_app.ts';
import type { FakePhone, SmartphoneData } from '../helpers/fake_phone.ts';
import { abortableCheck, auditRowsWhen, finishedWaits, parked, startedWaits } from '../helpers/wait.ts';
import { DECLINED_MESSAGE } from '../../server/auth/outcome.ts';

/** A phone answer that changed nothing: HTTP 400 (the apps count only a 200 as success), ERR401. */
const REFUSED = { status: 400, body: { result: { status: false, error: { code: 401 } } } };

interface WaitWorldOptions {
  /** edupush_wait seconds (default 20). */
  wait?: number;
  /** Further actions of the same authentication policy. */
  actions?: Record<string, unknown>;
  /** The `wait:` config section. */
  waitConfig?: Record<string, unknown>;
}

function waitWorld(t: ExecutionContext, o: WaitWorldOptions = {}): Promise<TestWorld> {
  return pushWorld(t, {
    policies: [policy('wait', 'authentication', { edupush_wait: o.wait ?? 20, ...(o.actions ?? {}) })],
    config: o.waitConfig ? { wait: o.waitConfig } : {},
  });
}

/** The phone's single open challenge (via its signed poll). */
async function openChallenge(t: ExecutionContext, phone: FakePhone): Promise<SmartphoneData> {
  const r = await phone.poll();
  t.is(r.status, 200, r.text);
  t.is(r.body.result.value.length, 1, 'exactly one open challenge');
  return r.body.result.value[0] as SmartphoneData;
}

/** The transaction's reads since `mark` (store calls naming it), e.g. ['challenges.byTransaction']. */
const callsFor = (w: TestWorld, mark: number, tid: string) => callsSince(w, mark, (c) => c.args.includes(tid));

const alice = { user: 'alice', pass: '1234' };

test('accept: the phone answers while the check waits → ACCEPT "matching 1 tokens" with the serial, no time passes', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const start = w.clock.now();
  const pending = track(check(w, alice));
  await parked(w);
  t.false(pending.settled());
  const [tid] = startedWaits(w);
  t.is((await w.deps.store.challenges.byTransaction(tid!)).length, 1);

  const data = await openChallenge(t, phone);
  t.is(data.serial, serial);
  t.true(phone.verifyPushData(data));
  t.like((await phone.answer(data)).body, { result: { status: true, value: true } });

  const r = await pending.promise;
  t.is(r.status, 200, r.text);
  t.like(r.body, {
    id: 2,
    result: { status: true, value: true, authentication: 'ACCEPT' },
    detail: { message: 'matching 1 tokens', serial, type: 'edupush', otplen: 6 },
  });
  t.false('transaction_id' in r.body.detail, 'wait mode never hands the transaction id to the client');
  t.is(w.clock.now(), start, 'woken by the answer, not by time');
  t.is(w.clock.pending, 0, 'the wait left no timer behind');
  t.is(w.deps.waits.active, 0);
  t.is(w.deps.answers.waiting, 0);
  t.deepEqual(finishedWaits(w), ['accept']);
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), [], 'the transaction is consumed and deleted');
  const tok = await tokenOf(w, serial);
  t.is(tok.failCount, 0);
  t.is(tok.lastAuthAt, start);
  // The consumed transaction cannot be finalized a second time.
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid! })).body, { result: { value: false } });
});

test('a woken one-token login is finished by the conditional delete alone; a decline still reads the transaction', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const store = w.deps.store.challenges;
  const calls: string[] = [];
  for (const name of ['byTransaction', 'consumeAccepted', 'consume', 'deleteTransaction'] as const) {
    const real = (store[name] as (...a: unknown[]) => Promise<unknown>).bind(store);
    (store as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      calls.push(name);
      return real(...a);
    };
  }
  let pending = track(check(w, alice));
  await parked(w);
  calls.length = 0;
  await phone.answer(await openChallenge(t, phone));
  t.like((await pending.promise).body, { result: { authentication: 'ACCEPT' } });
  t.deepEqual(calls, ['consumeAccepted'], 'no read, no separate delete');

  pending = track(check(w, alice));
  await parked(w);
  calls.length = 0;
  await phone.answer(await openChallenge(t, phone), { decline: true });
  t.like((await pending.promise).body, { result: { authentication: 'REJECT' }, detail: { challenge_status: 'declined' } });
  t.deepEqual(calls, ['consumeAccepted', 'byTransaction', 'deleteTransaction']);
});

test("decline: the wait ends at once with REJECT + challenge_status declined (eduMFA's wire), not at the timeout", async (t) => {
  const w = await waitWorld(t, { wait: 30 });
  const phone = phoneFor(w, 'edumfa-flutter');
  const serial = await enrollPhone(w, phone);
  const start = w.clock.now();
  const pending = track(check(w, alice));
  await parked(w);
  const [tid] = startedWaits(w);
  const data = await openChallenge(t, phone);
  t.like((await phone.answer(data, { decline: true })).body, { result: { value: true } });
  const r = await pending.promise;
  t.is(r.status, 200, r.text);
  t.like(r.body, {
    result: { status: true, value: false, authentication: 'REJECT' },
    detail: { message: DECLINED_MESSAGE, serial, type: 'edupush', challenge_status: 'declined' },
  });
  t.is(w.clock.now(), start);
  t.deepEqual(finishedWaits(w), ['decline']);
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), []);
  t.is(w.deps.waits.active, 0);
  t.is(w.deps.answers.waiting, 0);
  // Changing its mind afterwards does not turn the declined login into an accepted one.
  t.like(await phone.answer(data), REFUSED);
});

test('timeout: past the wait → REJECT "no answer from the phone within 20 s", fail counter +1, the challenge is gone so a late answer changes nothing', async (t) => {
  const w = await waitWorld(t, { wait: 20, waitConfig: { safety_reread_ms: 5000 } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const pending = track(check(w, alice));
  await parked(w);
  const [tid] = startedWaits(w);
  const data = await openChallenge(t, phone);

  // Just before the deadline: the safety-net re-reads happen, and the request goes on waiting.
  const mark = w.storeCalls.length;
  w.clock.advance(19_999);
  await quiet(w);
  const since = callsSince(w, mark);
  t.true(since.length > 0, 'the safety net re-read the transaction');
  t.deepEqual([...new Set(since)], ['challenges.byTransaction'], 'reads only: nothing deleted, no fail counter');
  t.is(w.deps.waits.active, 1);
  t.deepEqual(finishedWaits(w), []);
  t.false(pending.settled(), 'still waiting 1 ms before the deadline');
  w.clock.advance(1);
  const r = await pending.promise;
  t.is(r.status, 200, r.text);
  t.like(r.body, {
    result: { status: true, value: false, authentication: 'REJECT' },
    // eduMFA says "wrong otp value"; detail.message is free text the plugins show: it says what happened.
    detail: { message: 'no answer from the phone within 20 s', serial, type: 'edupush' },
  });
  t.deepEqual(finishedWaits(w), ['timeout']);
  t.is((await tokenOf(w, serial)).failCount, 1);
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), []);
  t.is(w.deps.waits.active, 0);
  t.is(w.deps.answers.waiting, 0);

  // The phone answers late: nothing left to answer, nothing changes.
  t.like(await phone.answer(data), REFUSED);
  t.is((await phone.poll()).body.result.value.length, 0);
  const tok = await tokenOf(w, serial);
  t.is(tok.failCount, 1);
  t.is(tok.lastAuthAt, null);
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid! })).body, { result: { value: false } });
});

test('disconnect: a client that goes away frees its waiter at once and the transaction rows are deleted', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const start = w.clock.now();
  const c = abortableCheck(w, alice);
  await parked(w);
  const [tid] = startedWaits(w);
  t.is((await w.deps.store.challenges.byTransaction(tid!)).length, 1);
  const data = await openChallenge(t, phone);

  c.abort();
  t.is(await c.reply, 'aborted');
  await until(() => w.deps.waits.active === 0 && w.deps.answers.waiting === 0);
  t.is(w.clock.now(), start, 'freed without any time passing');
  await until(() => finishedWaits(w).length === 1);
  t.deepEqual(finishedWaits(w), ['disconnect']);
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), []);
  t.is(w.clock.pending, 0);
  // The phone can no longer approve the abandoned login.
  t.is((await phone.poll()).body.result.value.length, 0);
  t.like(await phone.answer(data), REFUSED);
  t.is((await tokenOf(w, serial)).lastAuthAt, null);
});

test('capacity: wait.max_concurrent 2 → the third waiting request gets 503 + Retry-After at once, never queued', async (t) => {
  const w = await waitWorld(t, { waitConfig: { max_concurrent: 2 } });
  const pa = phoneFor(w, 'edumfa-next', 'rsa');
  const pb = phoneFor(w, 'edumfa-next', 'ec');
  const sa = await enrollPhone(w, pa);
  const sb = await enrollPhone(w, pb, 'edupush', { user: 'bob' });
  const a = track(check(w, alice));
  const b = track(check(w, { user: 'bob', pass: '1234' }));
  await parked(w, 2);

  const r = await check(w, alice);
  t.is(r.status, 503, r.text);
  t.is(r.headers.get('retry-after'), '5');
  t.like(r.body, {
    jsonrpc: '2.0',
    id: 1,
    detail: null,
    result: { status: false, error: { code: 503, message: 'Too many logins are waiting for an answer; try again shortly.' } },
  });
  t.is(startedWaits(w).length, 2, 'the refused request started no wait');
  t.is((await w.deps.store.challenges.openForSerial(sa, w.clock.now())).length, 1, 'and created no challenge');
  t.like(w.seen.find((e) => e.name === 'wait.rejected')?.payload, { reason: 'capacity' });
  t.false(a.settled());
  t.false(b.settled());

  // One answer frees a slot: a new wait is admitted again. (Bob's transaction by his token: the two waits may have
  // started in either order.)
  const tidB = (await w.deps.store.challenges.openForSerial(sb, w.clock.now()))[0]?.transactionId;
  t.true(startedWaits(w).includes(tidB!));
  const mark = w.storeCalls.length;
  await pa.answer(await openChallenge(t, pa));
  t.like((await a.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial: sa } });
  await quiet(w);
  t.deepEqual(callsFor(w, mark, tidB!), [], "another user's answer does not even wake bob's wait");
  t.is(w.deps.waits.active, 1);
  t.false(b.settled(), "another user's answer does not end bob's wait");
  const c = track(check(w, alice));
  await parked(w, 2);
  await pa.answer(await openChallenge(t, pa));
  await pb.answer(await openChallenge(t, pb));
  t.like((await c.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial: sa } });
  t.like((await b.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial: sb } });
  t.is(w.deps.waits.active, 0);
});

test('capacity: wait.max_per_user 1 → a second wait of the same user gets 503 + Retry-After; other users still wait', async (t) => {
  const w = await waitWorld(t, { waitConfig: { max_per_user: 1 } });
  const pa = phoneFor(w, 'edumfa-next', 'rsa');
  const pb = phoneFor(w, 'edumfa-next', 'ec');
  const sa = await enrollPhone(w, pa);
  const sb = await enrollPhone(w, pb, 'edupush', { user: 'bob' });
  const a = track(check(w, alice));
  await parked(w, 1);

  const r = await check(w, alice);
  t.is(r.status, 503, r.text);
  t.is(r.headers.get('retry-after'), '10');
  t.like(r.body, { result: { status: false, error: { code: 503, message: 'Too many logins of this user are waiting for an answer.' } } });
  t.like(w.seen.find((e) => e.name === 'wait.rejected')?.payload, { reason: 'per_user' });
  t.is((await w.deps.store.challenges.openForSerial(sa, w.clock.now())).length, 1);

  const b = track(check(w, { user: 'bob', pass: '1234' }));
  await parked(w, 2);
  await pb.answer(await openChallenge(t, pb));
  await pa.answer(await openChallenge(t, pa));
  t.like((await a.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial: sa } });
  t.like((await b.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial: sb } });
  // Leaving the wait gives the user's slot back.
  const again = track(check(w, alice));
  await parked(w, 1);
  await pa.answer(await openChallenge(t, pa));
  t.like((await again.promise).body, { result: { authentication: 'ACCEPT' } });
});

test('two push tokens of one user: both get a challenge in one transaction, the first answer wins, the other is dead', async (t) => {
  const w = await waitWorld(t);
  const p1 = phoneFor(w, 'edumfa-next', 'rsa');
  const p2 = phoneFor(w, 'edumfa-flutter', 'ec');
  const s1 = await enrollPhone(w, p1);
  const s2 = await enrollPhone(w, p2);
  const pending = track(check(w, alice));
  await parked(w);
  const [tid] = startedWaits(w);
  const rows = await w.deps.store.challenges.byTransaction(tid!);
  t.deepEqual(rows.map((r) => r.serial).sort(), [s1, s2].sort());
  const d1 = await openChallenge(t, p1);
  const d2 = await openChallenge(t, p2);

  t.like((await p2.answer(d2)).body, { result: { value: true } });
  const r = await pending.promise;
  t.like(r.body, {
    result: { status: true, value: true, authentication: 'ACCEPT' },
    detail: { message: 'matching 1 tokens', serial: s2, type: 'edupush' },
  });
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), []);
  // The other phone's challenge is dead: neither pollable nor answerable.
  t.is((await p1.poll()).body.result.value.length, 0);
  t.like(await p1.answer(d1), REFUSED);
  t.is((await tokenOf(w, s1)).lastAuthAt, null);
  t.not((await tokenOf(w, s2)).lastAuthAt, null);
});

test('HOTP with the same PIN and challenge_response: [hotp] → an immediate CHALLENGE, no wait; the OTP then logs in', async (t) => {
  const w = await waitWorld(t, { actions: { challenge_response: ['hotp'] } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  await enrollHotp(w);
  const r = track(check(w, alice));
  await until(() => r.settled() || w.deps.waits.active > 0);
  t.is(w.deps.waits.active, 0, 'the HOTP challenge is not delayed by a push wait');
  const res = await r.promise;
  t.like(res.body, { result: { status: true, value: false, authentication: 'CHALLENGE' } });
  const mc = res.body.detail.multi_challenge as Array<{ serial: string; type: string }>;
  t.true(mc.some((c) => c.type === 'hotp' && c.serial === 'OATH0001'));
  t.true(
    mc.some((c) => c.type === 'edupush' && c.serial === serial),
    'the push challenge is sent as a normal challenge',
  );
  t.deepEqual(startedWaits(w), []);
  const done = await check(w, { user: 'alice', pass: hotpAt(0), transaction_id: res.body.detail.transaction_id });
  t.like(done.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { serial: 'OATH0001' } });
});

test('HOTP with a different PIN (challenge_response: [hotp]): only the push PIN matched, so the login waits', async (t) => {
  const w = await waitWorld(t, { actions: { challenge_response: ['hotp'] } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  await enrollHotp(w, { pin: 'other' });
  const pending = track(check(w, alice));
  await parked(w);
  await phone.answer(await openChallenge(t, phone));
  t.like((await pending.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial, type: 'edupush' } });
});

test('SPASS with the same PIN → immediate ACCEPT of type spass; the push token is not even challenged', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  await enroll(w, { type: 'spass', user: 'alice', pin: '1234', serial: 'PISP0001' });
  const r = track(check(w, alice));
  await until(() => r.settled() || w.deps.waits.active > 0);
  t.is(w.deps.waits.active, 0);
  t.like((await r.promise).body, {
    result: { status: true, value: true, authentication: 'ACCEPT' },
    detail: { message: 'matching 1 tokens', serial: 'PISP0001', type: 'spass' },
  });
  t.deepEqual(startedWaits(w), []);
  t.is((await phone.poll()).body.result.value.length, 0);
});

test('a disabled push token never waits; enabled again, it does', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const off = await w.call('POST', `/token/disable/${serial}`, {}, { headers: await asAdmin(w) });
  t.is(off.status, 200, off.text);
  const r = track(check(w, alice));
  await until(() => r.settled() || w.deps.waits.active > 0);
  t.is(w.deps.waits.active, 0);
  t.like((await r.promise).body, { result: { status: true, value: false, authentication: 'REJECT' } });
  t.deepEqual(startedWaits(w), []);
  t.is((await phone.poll()).body.result.value.length, 0);

  t.is((await w.call('POST', `/token/enable/${serial}`, {}, { headers: await asAdmin(w) })).status, 200);
  const pending = track(check(w, alice));
  await parked(w);
  await phone.answer(await openChallenge(t, phone));
  t.like((await pending.promise).body, { result: { authentication: 'ACCEPT' }, detail: { serial } });
});

test('a wrong PIN never waits', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const r = track(check(w, { user: 'alice', pass: 'wrong' }));
  await until(() => r.settled() || w.deps.waits.active > 0);
  t.is(w.deps.waits.active, 0);
  t.like((await r.promise).body, { result: { value: false, authentication: 'REJECT' }, detail: { message: 'wrong otp pin' } });
  t.is((await tokenOf(w, serial)).failCount, 1);
});

test('/validate/triggerchallenge never waits, even with edupush_wait', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const headers = await asAdmin(w);
  const r = track(w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers }));
  await until(() => r.settled() || w.deps.waits.active > 0);
  t.is(w.deps.waits.active, 0);
  const res = await r.promise;
  t.is(res.status, 200, res.text);
  t.like(res.body, { result: { status: true, value: 1, authentication: 'CHALLENGE' }, detail: { serial } });
  t.deepEqual(startedWaits(w), []);
  // The challenge is a normal one: answered by the phone, finalized with the transaction id.
  await phone.answer(await openChallenge(t, phone));
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: res.body.detail.transaction_id })).body, {
    result: { authentication: 'ACCEPT' },
  });
});

test('legacy push tokens wait with push_wait (and only with push_wait, not edupush_wait)', async (t) => {
  const w = await pushWorld(t, { policies: [policy('wait', 'authentication', { push_wait: 20 })] });
  const phone = phoneFor(w, 'privacyidea');
  const serial = await enrollPhone(w, phone, 'push');
  t.regex(serial, /^PIPU/);
  const pending = track(check(w, alice));
  await parked(w);
  await phone.answer(await openChallenge(t, phone));
  t.like((await pending.promise).body, {
    result: { value: true, authentication: 'ACCEPT' },
    detail: { message: 'matching 1 tokens', serial, type: 'push' },
  });

  const w2 = await pushWorld(t, { policies: [policy('wait', 'authentication', { edupush_wait: 20 })] });
  const phone2 = phoneFor(w2, 'privacyidea');
  await enrollPhone(w2, phone2, 'push');
  const r = track(check(w2, alice));
  await until(() => r.settled() || w2.deps.waits.active > 0);
  t.is(w2.deps.waits.active, 0, 'edupush_wait does not apply to legacy push tokens');
  t.like((await r.promise).body, { result: { authentication: 'CHALLENGE' } });
});

test('safety net: a lost notification is picked up by the re-read after safety_reread_ms', async (t) => {
  const w = await waitWorld(t, { wait: 60, waitConfig: { safety_reread_ms: 5000 } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const pending = track(check(w, alice));
  await parked(w);
  const [tid] = startedWaits(w);
  const [row] = await w.deps.store.challenges.byTransaction(tid!);
  // The answer lands in the database, but nobody notifies the bus.
  t.true(await w.deps.store.challenges.answer(row!.id, 'accepted', w.clock.now()));
  const mark = w.storeCalls.length;
  await quiet(w);
  t.deepEqual(callsSince(w, mark), [], 'no polling loop: without a notification nothing reads the row');
  t.false(pending.settled());
  w.clock.advance(4_999);
  await quiet(w);
  t.deepEqual(callsSince(w, mark), [], 'nor before the safety-net interval');
  t.is(w.deps.waits.active, 1);
  t.false(pending.settled());
  w.clock.advance(1);
  const r = await pending.promise;
  t.like(r.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { message: 'matching 1 tokens', serial } });
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), []);
});

test('an answer that lands while the deadline read is running is read once more, not lost to the timeout', async (t) => {
  const w = await waitWorld(t, { wait: 20, waitConfig: { safety_reread_ms: 60_000 } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const pending = track(check(w, alice));
  await parked(w);
  const data = await openChallenge(t, phone);
  // The read at the deadline sees the challenge still pending, and is held before it returns.
  const store = w.deps.store.challenges;
  const read = store.byTransaction.bind(store);
  const gate = deferred();
  let held = 0;
  store.byTransaction = async (id) => {
    const rows = await read(id);
    if (held++ === 0) await gate.promise;
    return rows;
  };
  w.clock.advance(20_000);
  await until(() => held === 1);
  // Meanwhile the phone's answer lands (and is notified).
  t.like((await phone.answer(data)).body, { result: { value: true } });
  gate.resolve();
  const r = await pending.promise;
  t.like(r.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { serial } });
  t.is(held, 1, 'the read after the notification was the woken one: the conditional delete, no second full read');
  t.deepEqual(finishedWaits(w), ['accept']);
  t.is((await tokenOf(w, serial)).failCount, 0);
});

test('an answer missed until the deadline still wins at the final read (ACCEPT, no fail counter, counted as accept)', async (t) => {
  const w = await waitWorld(t, { wait: 20, waitConfig: { safety_reread_ms: 60_000 } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const pending = track(check(w, alice));
  await parked(w);
  const [tid] = startedWaits(w);
  const [row] = await w.deps.store.challenges.byTransaction(tid!);
  t.true(await w.deps.store.challenges.answer(row!.id, 'accepted', w.clock.now()));
  w.clock.advance(20_000);
  const r = await pending.promise;
  t.like(r.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { message: 'matching 1 tokens', serial } });
  t.is((await tokenOf(w, serial)).failCount, 0);
  t.deepEqual(finishedWaits(w), ['accept']);
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), []);
});

test('shutdown: drain() refuses new waits with 503; abortAll() answers running waits with 503 and deletes their rows', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const running = track(check(w, alice));
  await parked(w);
  const [tid] = startedWaits(w);
  const data = await openChallenge(t, phone);

  w.deps.waits.drain();
  t.true(w.deps.waits.draining);
  const refused = await check(w, alice);
  t.is(refused.status, 503, refused.text);
  t.is(refused.headers.get('retry-after'), '5');
  t.like(refused.body, { result: { status: false, error: { code: 503, message: 'The server is shutting down; try again.' } } });
  t.like(w.seen.find((e) => e.name === 'wait.rejected')?.payload, { reason: 'draining' });
  t.is(startedWaits(w).length, 1);

  const idle = track(w.deps.waits.idle());
  await quiet(w);
  t.is(w.deps.waits.active, 1);
  t.false(idle.settled(), 'a wait is still running');
  t.false(running.settled());
  w.deps.waits.abortAll();
  const r = await running.promise;
  t.is(r.status, 503, r.text);
  t.is(r.headers.get('retry-after'), '5');
  t.like(r.body, { result: { status: false, error: { code: 503, message: 'The server is shutting down; the login was not completed.' } } });
  await idle.promise;
  t.is(w.deps.waits.active, 0);
  t.is(w.deps.answers.waiting, 0);
  t.deepEqual(finishedWaits(w), ['shutdown']);
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid!), [], 'no challenge left that a later answer could misuse');
  t.like(await phone.answer(data), REFUSED);
  t.is((await tokenOf(w, serial)).lastAuthAt, null);
});

test('finished waits leave nothing behind: no listener on the bus, no timer, no capacity slot', async (t) => {
  const w = await waitWorld(t, { wait: 20, waitConfig: { safety_reread_ms: 5000 } });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const clean = () => {
    t.is(w.deps.waits.active, 0);
    t.is(w.deps.answers.waiting, 0);
    t.is(w.clock.pending, 0, 'no timer left');
  };
  // accepted, with a safety-net re-read in between
  let p = track(check(w, alice));
  await parked(w);
  w.clock.advance(5000);
  await parked(w);
  t.is(w.clock.pending, 1, 'one timer per wait, re-armed after the safety-net re-read');
  await phone.answer(await openChallenge(t, phone));
  t.like((await p.promise).body, { result: { authentication: 'ACCEPT' } });
  clean();
  // timed out
  p = track(check(w, alice));
  await parked(w);
  w.clock.advance(20_000);
  await until(() => p.settled());
  clean();
  // client gone
  const c = abortableCheck(w, alice);
  await parked(w);
  c.abort();
  await until(() => w.deps.waits.active === 0);
  clean();
  t.deepEqual(finishedWaits(w), ['accept', 'timeout', 'disconnect']);
});

test('metrics: /metrics counts waits started, finished by result, rejected, and the wait durations by result', async (t) => {
  const w = await waitWorld(t, { wait: 20, waitConfig: { max_concurrent: 1, safety_reread_ms: 60_000 } });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);

  // accept after 1 s, with one capacity rejection meanwhile
  let p = track(check(w, alice));
  await parked(w);
  t.is((await check(w, alice)).status, 503);
  w.clock.advance(1000);
  await phone.answer(await openChallenge(t, phone));
  t.like((await p.promise).body, { result: { authentication: 'ACCEPT' } });
  // decline after 3 s
  p = track(check(w, alice));
  await parked(w);
  w.clock.advance(3000);
  await phone.answer(await openChallenge(t, phone), { decline: true });
  t.like((await p.promise).body, { result: { authentication: 'REJECT' }, detail: { challenge_status: 'declined' } });
  // timeout
  p = track(check(w, alice));
  await parked(w);
  w.clock.advance(20_000);
  t.like((await p.promise).body, { result: { authentication: 'REJECT' } });
  // disconnect
  const c = abortableCheck(w, alice);
  await parked(w);
  c.abort();
  await until(() => w.deps.waits.active === 0 && finishedWaits(w).length === 4);

  const m = await w.call('GET', '/metrics');
  t.is(m.status, 200);
  const lines = new Set(m.text.trim().split('\n'));
  for (const line of [
    'pushgate_waits_started_total 4',
    'pushgate_waits_finished_total{result="accept"} 1',
    'pushgate_waits_finished_total{result="decline"} 1',
    'pushgate_waits_finished_total{result="timeout"} 1',
    'pushgate_waits_finished_total{result="disconnect"} 1',
    'pushgate_waits_rejected_total{reason="capacity"} 1',
    'pushgate_waits_active 0',
    'pushgate_answer_bus_waiters 0',
    'pushgate_wait_duration_seconds_count{result="accept"} 1',
    'pushgate_wait_duration_seconds_sum{result="accept"} 1',
    'pushgate_wait_duration_seconds_bucket{le="0.5",result="accept"} 0',
    'pushgate_wait_duration_seconds_bucket{le="1",result="accept"} 1',
    'pushgate_wait_duration_seconds_sum{result="decline"} 3',
    'pushgate_wait_duration_seconds_bucket{le="2",result="decline"} 0',
    'pushgate_wait_duration_seconds_bucket{le="5",result="decline"} 1',
    'pushgate_wait_duration_seconds_sum{result="timeout"} 20',
    'pushgate_wait_duration_seconds_count{result="disconnect"} 1',
  ])
    t.true(lines.has(line), `${line}\n--- got:\n${m.text}`);
});

test('a waiting login is answered outside Koa with the same wire as an immediate answer: headers, audit row, radiuscheck, samlcheck', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const approve = async () => {
    await parked(w);
    t.like((await phone.answer(await openChallenge(t, phone))).body, { result: { value: true } });
  };

  // /validate/check over GET: the JSON envelope with Koa's headers plus the app's.
  const pending = w.call('GET', '/validate/check', alice);
  await approve();
  const r = await pending;
  t.is(r.status, 200, r.text);
  t.is(r.headers.get('content-type'), 'application/json; charset=utf-8');
  t.is(r.headers.get('cache-control'), 'no-cache');
  t.is(r.headers.get('content-length'), String(Buffer.byteLength(r.text)));
  t.like(r.body, { result: { status: true, value: true, authentication: 'ACCEPT' }, detail: { serial } });
  // The audit row is written before the reply, as for every request: it is there when the client has the answer.
  const row = (await auditRows(w)).find((a) => a.action === 'GET /validate/check');
  t.like(row, { success: true, outcome: 'ACCEPT', username: 'alice', realm: 'default', serials: [serial], client: '127.0.0.1' });
  t.deepEqual(row?.info, { message: 'matching 1 tokens' });
  t.false(JSON.stringify(await auditRows(w)).includes(alice.pass), 'no PIN in the audit');

  // radiuscheck: 204 without a body on success, 400 without a body on a decline.
  const radius = w.call('POST', '/validate/radiuscheck', alice);
  await approve();
  const rr = await radius;
  t.is(rr.status, 204);
  t.is(rr.text, '');
  const declined = w.call('POST', '/validate/radiuscheck', alice);
  await parked(w);
  await phone.answer(await openChallenge(t, phone), { decline: true });
  const rd = await declined;
  t.is(rd.status, 400);
  t.is(rd.text, '');
  t.is(rd.headers.get('content-length'), '0');
  t.deepEqual(
    (await auditRows(w))
      .filter((a) => a.action === 'POST /validate/radiuscheck')
      .map((a) => a.outcome)
      .sort(),
    ['ACCEPT', 'DECLINED'],
  );

  // samlcheck: the user's attributes with the ACCEPT.
  const saml = w.call('POST', '/validate/samlcheck', alice);
  await approve();
  const rs = await saml;
  t.is(rs.status, 200, rs.text);
  t.like(rs.body, {
    result: { status: true, authentication: 'ACCEPT', value: { auth: true, attributes: { username: 'alice', realm: 'default' } } },
  });
  t.is(w.deps.waits.active, 0);
});

test('a wait longer than the challenge validity is a config.warning at start and at every policy reload', async (t) => {
  const w = await waitWorld(t, { wait: 300 });
  const warnings = () => w.seen.filter((e) => e.name === 'config.warning').map((e) => (e.payload as { message: string }).message);
  t.is(warnings().length, 1);
  t.regex(
    warnings()[0]!,
    /^policy 'wait': edupush_wait is 300 s, but edupush challenges are valid for 120 s \(challenge\.validity_seconds\)/,
  );
  w.deps.reloadPolicies();
  t.is(warnings().length, 2);
  const ok = await waitWorld(t, { wait: 120 });
  t.false(ok.seen.some((e) => e.name === 'config.warning' && (e.payload as { message: string }).message.includes('_wait')));
});

test('a woken login is in the audit before its client hears the answer (as every request)', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const audit = w.deps.store.audit;
  const insert = audit.insert.bind(audit);
  const gate = deferred();
  let held = 0;
  audit.insert = async (e) => {
    if (e.action === 'POST /validate/check') {
      held++;
      await gate.promise;
    }
    return insert(e);
  };
  const responses = serverResponses(w);
  const pending = track(check(w, alice));
  await parked(w);
  await phone.answer(await openChallenge(t, phone));
  await until(() => held === 1);
  await drained(); // whatever the server does next without I/O (writing the reply, say) has run now
  const reply = responses.find((r) => r.path === '/validate/check');
  t.truthy(reply);
  t.false(reply!.res.writableEnded, 'no answer while its audit row is being written');
  t.false(pending.settled());
  gate.resolve();
  t.like((await pending.promise).body, { result: { authentication: 'ACCEPT' } });
});

test('a keep-alive connection that carried a waiting login serves the next request (the raw reply is complete)', async (t) => {
  const w = await waitWorld(t);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const send = (method: string, path: string, body?: string) =>
    new Promise<{ status: number; text: string; reused: boolean; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request(
        `${w.url}${path}`,
        { method, agent, headers: body ? { 'content-type': 'application/x-www-form-urlencoded' } : {} },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode!, text, reused: req.reusedSocket, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const waiting = send('POST', '/validate/check', new URLSearchParams(alice).toString());
  await parked(w);
  await phone.answer(await openChallenge(t, phone));
  const first = await waiting;
  t.is(first.status, 200, first.text);
  t.is(JSON.parse(first.text).result.authentication, 'ACCEPT');
  t.is(first.headers.connection, 'keep-alive');
  const next = await send('GET', '/healthz');
  t.is(next.status, 200, next.text);
  t.true(next.reused, 'the same connection carried the next request');
});

test('a client that goes away while its transaction is being read: the read finishes, then the rows go and the audit says so', async (t) => {
  const w = await waitWorld(t, { waitConfig: { safety_reread_ms: 5000 } });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const responses = serverResponses(w);
  const c = abortableCheck(w, alice);
  await parked(w);
  const [tid] = startedWaits(w);
  // Hold the next read (the safety-net re-read) and let the client go meanwhile.
  const store = w.deps.store.challenges;
  const read = store.byTransaction.bind(store);
  const gate = deferred();
  let reads = 0;
  store.byTransaction = async (id) => {
    reads++;
    const rows = await read(id);
    await gate.promise;
    return rows;
  };
  w.clock.advance(5000);
  await until(() => reads === 1);
  c.abort();
  t.is(await c.reply, 'aborted');
  const mark = w.storeCalls.length;
  const served = responses.find((r) => r.path === '/validate/check')!;
  await until(() => served.closed); // the server has seen the client go ('close' of the response)
  await drained();
  t.is(w.deps.waits.active, 1, 'the running read is not cut off');
  t.deepEqual(callsSince(w, mark), [], 'nothing deleted while the read runs');
  gate.resolve();
  await until(() => w.deps.waits.active === 0);
  await until(() => finishedWaits(w).length === 1);
  t.deepEqual(finishedWaits(w), ['disconnect']);
  store.byTransaction = read;
  t.deepEqual(await store.byTransaction(tid!), []);
  // Nobody is left to answer; the audit row is written all the same.
  const [row] = await auditRowsWhen(w, (a) => a.action === 'POST /validate/check' && a.outcome === 'REJECT');
  t.deepEqual(row?.info, { message: 'The client went away.' });
  t.is(w.clock.pending, 0);
});
