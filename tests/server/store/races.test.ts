/**
 * Race-free state changes, proven per database (issue 5, item 2). The suite runs on whatever PUSHGATE_TEST_DB selects
 * (sqlite | postgres | mysql), so CI runs every race below once per database.
 *
 * Every test sends real parallel HTTP requests (Promise.all over fetch) and forces the interleaving that would break
 * a read-modify-write implementation, without timers: a barrier on a repository read makes every request read the
 * same state before any of them writes, and a barrier in front of the write makes all writes reach the database
 * together. Only the conditional UPDATE of the store (whose row count decides) can then keep the outcome right:
 *   - OTP: `recordSuccess` updates only while `counter <= used counter` — without that guard all 50 would ACCEPT;
 *   - push: `answer` updates only a `pending` row, `consume` only an `accepted` one — without the `consume` guard all
 *     finalizes that saw the accepted challenge would ACCEPT, without the `answer` guard every answer would "win";
 *   - step 2: `updateIfRollout` updates only while `clientwait` — without it all 10 phones would get a server key;
 *   - fail counter: `fail_count = fail_count + 1` in SQL — a computed `failCount + 1` would store 1 for all 40.
 */
import test from 'ava';
import { RFC, barrier, check, deferred, enrollHotp, tokenOf, world } from '../../helpers/kit.ts';
import { beginEnrollment, enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import { TEST_DB } from '../../helpers/databases.ts';
import type { Reply, TestWorld } from '../../helpers/test_app.ts';
import type { FakePhone, SmartphoneData } from '../../helpers/fake_phone.ts';

/** These races send many attempts for one user at once: the per-user back-off (tested in backoff.test.ts) is off. */
const NO_BACKOFF = { failed_per_user: 0 };

const on = ` [${TEST_DB}]`;
/**
 * These tests release up to 200 requests' statements at the database together: with the suite's pool of 2 they could
 * queue past the pool's acquire timeout on a busy machine (and fail as -600), so each world here has 7 connections
 * (two world places in tests/helpers/db_budget.ts), and the tests run one after the other (test.serial): three such
 * storms at once on one database once queued past that timeout on MariaDB.
 */
const POOL = { pool_max: 7 };
const parallel = <T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> => Promise.all(Array.from({ length: n }, (_, i) => fn(i)));

/** The replies that are neither ACCEPT nor REJECT, counted by status and text (for failure messages). */
function others(replies: readonly Reply[]): string {
  const odd = new Map<string, number>();
  for (const r of replies) {
    const a = r.status === 200 ? r.body?.result?.authentication : undefined;
    if (a === 'ACCEPT' || a === 'REJECT') continue;
    const key = `${r.status} ${r.text.slice(0, 160)}`;
    odd.set(key, (odd.get(key) ?? 0) + 1);
  }
  return [...odd].map(([k, n]) => `${n}× ${k}`).join('; ');
}

function tally(replies: readonly Reply[]): { accept: number; reject: number; other: number } {
  const out = { accept: 0, reject: 0, other: 0 };
  for (const r of replies) {
    const a = r.status === 200 ? r.body?.result?.authentication : undefined;
    if (a === 'ACCEPT') out.accept++;
    else if (a === 'REJECT') out.reject++;
    else out.other++;
  }
  return out;
}

test.serial(`50 parallel submissions of one OTP value → exactly one ACCEPT${on}`, async (t) => {
  const w = await world(t, { config: { database: POOL, tokens: { max_fail: 1000 }, limits: NO_BACKOFF } });
  await enrollHotp(w);
  // Every request reads the token (counter 0) before any writes, and all 50 single-use updates start together.
  const read = barrier(w.deps.store.tokens, 'list', 50);
  const wrote = barrier(w.deps.store.tokens, 'recordSuccess', 50, 'before');
  const replies = await parallel(50, () => check(w, { user: 'alice', pass: '1234' + RFC[0] }));
  t.is(read(), 50, 'all 50 read counter 0 before any write');
  t.is(wrote(), 50, 'all 50 found the OTP valid and raced the conditional update');
  t.deepEqual(tally(replies), { accept: 1, reject: 49, other: 0 });
  for (const r of replies.filter((x) => x.body.result.value === false)) t.is(r.body.detail.message, 'wrong otp value');
  const token = await tokenOf(w, 'OATH0001');
  t.is(token.counter, 1, 'the counter moved exactly once');
  t.is(token.failCount, 49, 'every replay counted as a failed attempt');
  const audit = (await w.deps.store.audit.tail(1000)).filter((a) => a.action.endsWith('/validate/check'));
  t.is(audit.filter((a) => a.outcome === 'ACCEPT').length, 1, 'one ACCEPT in the audit');
});

/** An enrolled edupush phone with one open challenge (transaction id + the phone's signed data). */
async function pushChallenge(t: Parameters<typeof pushWorld>[0], maxFail = 100_000) {
  const w = await pushWorld(t, { config: { database: POOL, tokens: { max_fail: maxFail } } });
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const c = await check(w, { user: 'alice', pass: '1234' });
  const tid = c.body.detail.transaction_id as string;
  const polled = await phone.poll();
  const data = polled.body.result.value[0] as SmartphoneData;
  if (!data || !phone.verifyPushData(data)) throw new Error(`no verifiable challenge: ${polled.text}`);
  return { w, phone, serial, tid, data };
}

/** A phone answer that arrives after the login consumed its challenge (server/auth/smartphone.ts ANSWER_REFUSED.gone). */
const FINISHED = 'ERR401: The authentication request has expired or is finished: the answer was not accepted.';

/** 100 phone answers and 100 finalizes (`/validate/check` with the transaction id), interleaved, all at once. */
async function storm(p: {
  w: TestWorld;
  phone: FakePhone;
  tid: string;
  data: SmartphoneData;
}): Promise<{ answers: Reply[]; finalizes: Reply[] }> {
  const results = await parallel<{ kind: 'answer' | 'finalize'; r: Reply }>(200, async (i) =>
    i % 2 === 0
      ? { kind: 'answer', r: await p.phone.answer(p.data) }
      : { kind: 'finalize', r: await check(p.w, { user: 'alice', pass: '', transaction_id: p.tid }) },
  );
  return {
    answers: results.filter((x) => x.kind === 'answer').map((x) => x.r),
    finalizes: results.filter((x) => x.kind === 'finalize').map((x) => x.r),
  };
}

test.serial(`100 parallel phone answers + 100 finalizes of one push transaction → exactly one ACCEPT (forced)${on}`, async (t) => {
  const { w, phone, serial, tid, data } = await pushChallenge(t);
  // Answers: all 100 reach the conditional `pending → accepted` update together.
  const answersRaced = barrier(w.deps.store.challenges, 'answer', 100, 'before');
  // Finalizes: each reads the transaction only once some answer has landed (else there is nothing to finalize),
  // then all 100 hold their reads until every one of them has seen `accepted`, and race `accepted → consumed`.
  const firstAnswer = deferred();
  const off = w.events.on('challenge.answered', () => firstAnswer.resolve());
  t.teardown(off);
  const store = w.deps.store.challenges;
  const read = store.byTransaction;
  store.byTransaction = async (id) => {
    await firstAnswer.promise;
    return read(id);
  };
  const finalizesRead = barrier(store, 'byTransaction', 100);
  const consumed = barrier(store, 'consume', 100, 'before');

  const { answers, finalizes } = await storm({ w, phone, tid, data });

  t.is(answersRaced(), 100, 'all 100 answers raced the conditional update');
  t.is(finalizesRead(), 100, 'all 100 finalizes saw the accepted challenge before any consumed it');
  t.is(consumed(), 100, 'all 100 finalizes raced the conditional consume');
  t.is(w.seen.filter((e) => e.name === 'challenge.answered').length, 1, 'exactly one answer changed the challenge');
  // All 100 read the challenge while it was pending; the 99 that lost the update read it again: where they find the
  // same decision landed they report success too (they are the same answer; the apps count only a 200 as success),
  // where a finalize has already consumed it the login is over and they are refused like any late answer.
  t.true(
    answers.some((a) => a.status === 200 && a.body.result.value === true),
    'the answer landed',
  );
  t.true(
    answers.every(
      (a) => (a.status === 200 && a.body.result.value === true) || (a.status === 400 && a.body.result.error.message === FINISHED),
    ),
    'no other answer',
  );
  t.deepEqual(tally(finalizes), { accept: 1, reject: 99, other: 0 }, others(finalizes));
  t.like(finalizes.find((r) => r.body.result.value === true)!.body.detail, { message: 'Found matching challenge', serial });
  t.deepEqual(await w.deps.store.challenges.byTransaction(tid), [], 'the transaction is gone');
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid })).body, { result: { value: false, authentication: 'REJECT' } });
});

test.serial(
  `100 parallel phone answers + 100 finalizes of one push transaction, natural interleaving → exactly one ACCEPT overall${on}`,
  async (t) => {
    const { w, phone, tid, data } = await pushChallenge(t);
    const { answers, finalizes } = await storm({ w, phone, tid, data });
    t.is(w.seen.filter((e) => e.name === 'challenge.answered').length, 1, 'exactly one answer changed the challenge');
    t.true(
      answers.some((a) => a.status === 200 && a.body.result.value === true),
      'the answer landed',
    );
    const inStorm = tally(finalizes);
    t.is(inStorm.other, 0);
    // An answer is a success unless it arrived after a finalize had consumed the challenge (the login is over): then
    // it is refused like any answer to a finished challenge (400, never a 200 the app would show as success).
    t.true(
      answers.every(
        (a) => (a.status === 200 && a.body.result.value === true) || (a.status === 400 && a.body.result.error.message === FINISHED),
      ),
      'no other answer',
    );
    if (inStorm.accept === 0)
      t.true(
        answers.every((a) => a.status === 200),
        'nothing consumed in the storm: every answer succeeded',
      );
    t.true(inStorm.accept <= 1, `at most one ACCEPT in the storm (got ${inStorm.accept})`);
    // Finalizes that ran before any answer landed saw a pending challenge; one more finalize after the storm settles it.
    const after = await check(w, { user: 'alice', pass: '', transaction_id: tid });
    const late = after.body.result.authentication === 'ACCEPT' ? 1 : 0;
    t.is(inStorm.accept + late, 1, `exactly one ACCEPT overall (storm ${inStorm.accept}, after ${late})`);
  },
);

test.serial(`10 parallel enrollment step 2 for one serial → one winner, the others 404 code 601${on}`, async (t) => {
  const w = await pushWorld(t, { config: { database: POOL } });
  const phone = phoneFor(w);
  const init = await beginEnrollment(w, phone);
  const serial = init.detail.serial as string;
  // All ten read the token in `clientwait` before any can complete it.
  const read = barrier(w.deps.store.tokens, 'bySerial', 10);
  const raced = barrier(w.deps.store.tokens, 'updateIfRollout', 10, 'before');
  const replies = await parallel(10, () => phone.enroll());
  t.true(read() >= 10, 'all ten read clientwait before any could complete the enrollment');
  t.is(raced(), 10, 'all ten raced the conditional update');
  const winners = replies.filter((r) => r.status === 200);
  const losers = replies.filter((r) => r.status !== 200);
  t.is(winners.length, 1, replies.map((r) => `${r.status}`).join(' '));
  t.like(winners[0]!.body, { result: { status: true, value: true }, detail: { serial, rollout_state: 'enrolled' } });
  t.is(losers.length, 9);
  for (const r of losers) {
    t.is(r.status, 404);
    t.like(r.body, {
      result: { status: false, error: { code: 601, message: "No token with this serial number in the rollout state 'clientwait'." } },
    });
  }
  const token = await tokenOf(w, serial);
  t.like(token, { rolloutState: 'enrolled', active: true });
  // The stored server key is the one handed to the winner (no loser overwrote it).
  const bare = (pem: string) => pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, '');
  t.is(
    bare(token.info['public_key_server'] ?? ''),
    bare(String(winners[0]!.body.detail.public_key)),
    "the stored server public key is the winner's",
  );
  // The phone that won can log in.
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.is(c.body.result.authentication, 'CHALLENGE');
});

test.serial(`40 parallel wrong OTPs (max_fail 1000) → the fail counter counts every one${on}`, async (t) => {
  const w = await world(t, { config: { database: POOL, tokens: { max_fail: 1000 }, limits: NO_BACKOFF } });
  await enrollHotp(w);
  const read = barrier(w.deps.store.tokens, 'list', 40); // all read fail_count 0
  const bumped = barrier(w.deps.store.tokens, 'incrementFailCount', 40, 'before'); // all increments hit the database together
  const replies = await parallel(40, (i) => check(w, { user: 'alice', pass: `1234${String(300000 + i)}` }));
  t.is(read(), 40);
  t.is(bumped(), 40);
  t.deepEqual(tally(replies), { accept: 0, reject: 40, other: 0 });
  t.is((await tokenOf(w, 'OATH0001')).failCount, 40, 'no increment was lost');
  const counts = w.seen.filter((e) => e.name === 'token.fail_counter').map((e) => (e.payload as { failCount: number }).failCount);
  t.is(counts.length, 40);
  t.is(Math.max(...counts), 40);
  // Still usable: the right OTP is accepted and resets the counter.
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: { authentication: 'ACCEPT' } });
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0);
});
