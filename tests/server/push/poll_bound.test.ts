/**
 * Issue 9 item 3: the phone's poll never blocks the server. A poll answers at most `push.poll_max_challenges` open
 * challenges, newest first, read with a bounded query; the smartphone data is signed once when the challenge is
 * created (on libuv's thread pool) and the poll returns it as stored, so a poll makes no RSA signature on the event
 * loop — proven through the signature-count seam, not with a clock. The signature tests are serial: the counts are
 * per process.
 */
import test from 'ava';
import { parseConfig } from '../../../server/config.ts';
import { ConfigError } from '../../../core/errors.ts';
import { serverSignatureCounts } from '../../../tokens/push/signatures.ts';
import { check, policy } from '../../helpers/kit.ts';
import { startFakeFcm } from '../../helpers/fake_fcm.ts';
import { enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import type { FakePhone, SmartphoneData } from '../../helpers/fake_phone.ts';
import type { TestWorld } from '../../helpers/test_app.ts';

type T = { teardown(fn: () => Promise<void> | void): void };

/** A poll-only world whose poll answers at most `max` challenges, with alice's phone enrolled. */
async function pollWorld(t: T, max: number): Promise<{ w: TestWorld; phone: FakePhone; serial: string }> {
  // Up to 12 open logins for one user: more than the per-user challenge limit allows within a minute, and more than
  // the push-fatigue default of open push logins (a policy loosens it, as an installation would).
  const w = await pushWorld(t, {
    config: { push: { poll_max_challenges: max }, limits: { challenges_per_user: 0 } },
    policies: [policy('many-open-logins', 'authentication', { push_open_logins: 20 })],
  });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  return { w, phone, serial };
}

/** `n` push logins for alice (PIN 1234); the nonces of their challenges, oldest first. */
async function openLogins(w: TestWorld, n: number): Promise<string[]> {
  const nonces: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = await check(w, { user: 'alice', pass: '1234' });
    if (c.body?.result?.authentication !== 'CHALLENGE') throw new Error(`no challenge: ${c.text}`);
    const rows = await w.deps.store.challenges.byTransaction(c.body.detail.transaction_id);
    nonces.push(rows[0]!.nonce);
    w.clock.advance(1000);
  }
  return nonces;
}

/** Rows the database returned for statements on the challenges table while `fn` ran. */
async function challengeRowsRead<R>(w: TestWorld, fn: () => Promise<R>): Promise<{ result: R; rows: number }> {
  let rows = 0;
  const listener = (response: unknown, q: { sql?: string; method?: string }) => {
    if (q.method === 'select' && /challenges/.test(q.sql ?? '') && Array.isArray(response)) rows += response.length;
  };
  w.deps.store.knex.on('query-response', listener);
  try {
    return { result: await fn(), rows };
  } finally {
    w.deps.store.knex.removeListener('query-response', listener);
  }
}

async function signed<R>(fn: () => Promise<R>): Promise<{ result: R; sync: number; async: number }> {
  const before = serverSignatureCounts();
  const result = await fn();
  const after = serverSignatureCounts();
  return { result, sync: after.sync - before.sync, async: after.async - before.async };
}

test.serial('a poll with many open challenges answers the newest poll_max_challenges, reads no more rows, and signs nothing', async (t) => {
  const { w, phone } = await pollWorld(t, 3);
  const nonces = await openLogins(w, 12);
  const {
    result: { result: r, rows },
    sync,
    async,
  } = await signed(() => challengeRowsRead(w, () => phone.poll()));
  t.is(r.status, 200, r.text);
  const items: SmartphoneData[] = r.body.result.value;
  t.deepEqual(
    items.map((d) => d.nonce),
    nonces.slice(-3).reverse(),
    'the three newest, newest first',
  );
  for (const d of items) {
    t.true(phone.verifyPushData(d), 'the app verifies every item');
    t.deepEqual(Object.keys(d), ['nonce', 'question', 'serial', 'title', 'sslverify', 'url', 'signature'], 'wire field order');
    t.regex(d.signature, /^[A-Z2-7]+=*$/);
  }
  t.is(rows, 3, 'the bound is in the query: the database returned three challenge rows, not twelve');
  t.is(sync, 0, 'no signature on the event loop');
  t.is(async, 0, 'no signature at all: the poll returns what was signed at creation');
});

test.serial('a challenge is signed once when it is created, on the thread pool', async (t) => {
  const { w } = await pollWorld(t, 5);
  const { sync, async } = await signed(() => openLogins(w, 2));
  t.is(sync, 0);
  t.is(async, 2);
});

test.serial('a row without presigned data is signed at poll time on the thread pool — at most poll_max_challenges of them', async (t) => {
  const { w, phone } = await pollWorld(t, 4);
  const nonces = await openLogins(w, 9);
  await w.deps.store.knex('challenges').update({ data: '{}' }); // rows stored before presigning existed
  const { result: r, sync, async } = await signed(() => phone.poll());
  t.is(r.status, 200, r.text);
  const items: SmartphoneData[] = r.body.result.value;
  t.deepEqual(
    items.map((d) => d.nonce),
    nonces.slice(-4).reverse(),
  );
  for (const d of items) t.true(phone.verifyPushData(d));
  t.is(sync, 0, 'never on the event loop');
  t.is(async, 4, 'one thread-pool signature per answered row, not per open row');
});

test.serial('Firebase: the push reuses the signature made at creation, and the poll returns the very bytes the push carried', async (t) => {
  const fcm = await startFakeFcm();
  t.teardown(() => fcm.close());
  // Texts per user at one priority: with the user (the login) one matches; without a user (eduMFA's poll) both do,
  // a conflict. The poll item carries the texts of its login, exactly as the push did.
  const w = await pushWorld(t, {
    channel: 'fcm',
    fcm,
    policies: [
      policy('alice-text', 'authentication', { edupush_text_on_mobile: 'Alice, is this you?' }, { user: ['alice'] }),
      policy('bob-text', 'authentication', { edupush_text_on_mobile: 'Bob, is this you?' }, { user: ['bob'] }),
    ],
  });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const { sync, async } = await signed(() => check(w, { user: 'alice', pass: '1234' }));
  t.deepEqual([sync, async], [0, 1], 'one signature per challenge, off the event loop');
  t.is(fcm.received.length, 1);
  const pushed: SmartphoneData = fcm.received[0]!.body.message.data;
  t.is(pushed.question, 'Alice, is this you?');
  t.true(phone.verifyPushData(pushed));
  const polled = await phone.poll();
  t.is(polled.status, 200, polled.text);
  t.deepEqual(polled.body.result.value, [pushed]);
});

test("the poll's audit row is written alone (no wait for the turn's group commit); a refused poll's row joins the batch", async (t) => {
  // Under a login flood a row of the group commit waits a whole turn of the flood's requests (bench:attack). The
  // phone's proven requests skip it; a flood of refused ones (bad signatures) must not, so their rows stay batched.
  const { w, phone, serial } = await pollWorld(t, 5);
  await openLogins(w, 1);
  const audit = w.deps.store.audit;
  const insert = audit.insert.bind(audit);
  const written: { action: string; outcome: string; alone: boolean }[] = [];
  audit.insert = (e, opts) => {
    written.push({ action: e.action, outcome: e.outcome, alone: opts?.alone === true });
    return insert(e, opts);
  };
  const ok = await phone.poll();
  t.is(ok.status, 200, ok.text);
  t.is(ok.body.result.value.length, 1);
  const refused = await phone.poll({ signature: 'A'.repeat(52) });
  t.is(refused.status, 400, refused.text);
  t.deepEqual(written, [
    { action: 'GET /ttype/edupush', outcome: 'OK', alone: true },
    { action: 'GET /ttype/edupush', outcome: 'ERROR', alone: false },
  ]);
  const rows = (await audit.tail(10)).filter((r) => r.action === 'GET /ttype/edupush');
  t.deepEqual(
    rows.map((r) => [r.outcome, r.serials, r.info.request ?? null]),
    [
      ['OK', [serial], 'poll'],
      ['ERROR', [serial], null],
    ],
    "both rows stored, the poll's with what it answered",
  );
});

test('push.poll_max_challenges: default 5, an integer 1–100 with a path-precise error', (t) => {
  t.is(parseConfig({}, '/srv').push.pollMaxChallenges, 5);
  t.is(parseConfig({ push: { poll_max_challenges: 20 } }, '/srv').push.pollMaxChallenges, 20);
  for (const bad of [0, 101, 'many', 2.5]) {
    const err = t.throws(() => parseConfig({ push: { poll_max_challenges: bad } }, '/srv'), { instanceOf: ConfigError });
    t.deepEqual(err!.problems, ['push.poll_max_challenges must be an integer between 1 and 100']);
  }
});
