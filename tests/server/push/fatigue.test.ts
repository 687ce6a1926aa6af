/**
 * Push fatigue (issue 11 items 1, 4, 5; server/auth/push_fatigue.ts), with the fake clock: open push logins per
 * user and end-user address, the back-off after unanswered or declined pushes (growth, cap, reset, per user), its
 * refusal before any PIN is hashed, declines (event, reason, audit, metrics, lock) and the admin view / unblock.
 * The IdP is a trusted proxy (127.0.0.1) that names each end user's address in `client`.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import { auditRows, check, policy } from '../../helpers/kit.ts';
import type { TestWorld, Reply } from '../../helpers/test_app.ts';
import type { FakePhone, SmartphoneData } from '../../helpers/fake_phone.ts';
import { fatigueSubject, pushFatigueView } from '../../../server/auth/push_fatigue.ts';
import { PUSH_MEMORY_FRESH_MS } from '../../../server/auth/push_memory.ts';

const USER = '198.51.100.7';
const ATTACKER = '203.0.113.66';
const VALIDITY_MS = 120_000;
const PROXY = { server: { public_url: 'https://mfa.example.org', trusted_proxies: ['127.0.0.1'] }, limits: { challenges_per_user: 0 } };

async function setup(t: ExecutionContext, policies: Array<Record<string, unknown>> = [], proxy = true) {
  const w = await pushWorld(t, { policies, config: proxy ? PROXY : { limits: { challenges_per_user: 0 } } });
  const phone = phoneFor(w, 'privacyidea');
  const serial = await enrollPhone(w, phone, 'push');
  return { w, phone, serial };
}

const login = (w: TestWorld, client?: string, pass = '1234') => check(w, { user: 'alice', pass, ...(client ? { client } : {}) });
const tid = (r: Reply): string => r.body?.detail?.transaction_id;
const polled = async (phone: FakePhone): Promise<SmartphoneData[]> => (await phone.poll()).body.result.value;
const events = (w: TestWorld, name: string) => w.seen.filter((e) => e.name === name).map((e) => e.payload as any);

function assert429(t: ExecutionContext, r: Reply, seconds: number | [number, number], message?: RegExp): void {
  t.is(r.status, 429, JSON.stringify(r.body));
  const retry = Number(r.headers.get('retry-after'));
  const [lo, hi] = Array.isArray(seconds) ? seconds : [seconds, seconds];
  t.true(retry >= lo && retry <= hi, `Retry-After ${retry} in ${lo}..${hi}`);
  t.like(r.body, { result: { status: false, error: { code: 429 } } });
  if (message) t.regex(r.body.result.error.message, message);
}

/** Counts PIN hashes. */
function countVerifies(w: TestWorld): () => number {
  let n = 0;
  const orig = w.deps.pins.verify.bind(w.deps.pins);
  (w.deps.pins as { verify: typeof orig }).verify = (stored, secret, job) => {
    n++;
    return orig(stored, secret, job);
  };
  return () => n;
}

test('same user + address while its login is open: the same transaction, no new push; another address gets its own; over the cap → 429', async (t) => {
  const { w, phone } = await setup(t);
  const hashes = countVerifies(w);
  const first = await login(w, USER);
  t.is(first.body.result.authentication, 'CHALLENGE');
  t.is(hashes(), 1);
  const again = await login(w, USER);
  t.is(tid(again), tid(first), 'the user reloading the page gets the login that is open');
  t.is(hashes(), 1, 'the same pass from the same address is answered without hashing the PIN again');
  const wrong = await login(w, USER, '9999');
  t.like(wrong.body.result, { value: false, authentication: 'REJECT' });
  t.is(wrong.body.detail.transaction_id, undefined, 'a wrong PIN from the same address (a NAT neighbour) is not handed the login');
  t.is(hashes(), 2);
  t.deepEqual(again.body.detail.multi_challenge, first.body.detail.multi_challenge);
  t.is((await polled(phone)).length, 1, 'one push, not two');
  const attacker = await login(w, ATTACKER);
  t.is(attacker.body.result.authentication, 'CHALLENGE');
  t.not(tid(attacker), tid(first), "the attacker never learns the user's transaction");
  t.is((await login(w, ATTACKER)).body.detail.transaction_id, tid(attacker));
  // push_open_logins 2 (default): a third address is refused until the first open login expires.
  assert429(t, await login(w, '192.0.2.3'), VALIDITY_MS / 1000, /open/);
  t.is((await polled(phone)).length, 2);
  t.true(events(w, 'throttle.refused').some((e) => e.limit === 'push_open'));
  t.is(events(w, 'push.reused').length, 2);
});

test("a repeated pass is answered from this node's memory for a moment (no query but the audit row), then from the database again; an answer here forgets it", async (t) => {
  const { w, phone } = await setup(t);
  const first = await login(w, USER);
  const sqls: string[] = [];
  w.deps.store.knex.on('query', (q: { sql: string }) => sqls.push(q.sql));
  const notAudit = () => sqls.filter((s) => !/^insert into .audit./i.test(s));
  const again = await login(w, USER);
  t.is(tid(again), tid(first));
  t.deepEqual(notAudit(), [], 'from memory: neither the token list nor the push state is read');
  t.is((await login(w, USER, '9999')).body.result.authentication, 'REJECT', 'another pass is never answered from memory');
  t.true(notAudit().length > 0);

  w.clock.advance(PUSH_MEMORY_FRESH_MS);
  sqls.length = 0;
  t.is(tid(await login(w, USER)), tid(first), 'still open in the database: the same login');
  t.true(
    notAudit().some((s) => /push_logins/.test(s)),
    'after PUSH_MEMORY_FRESH_MS the database is asked again',
  );
  sqls.length = 0;
  await login(w, USER);
  t.deepEqual(notAudit(), [], 'and remembered again');

  const [data] = await polled(phone);
  t.is((await phone.answer(data!)).status, 200);
  const next = await login(w, USER);
  t.is(next.body.result.authentication, 'CHALLENGE');
  t.not(tid(next), tid(first), 'the answered login is forgotten at once: the next login is a new one');
});

test('a policy for a client range loosens the cap; no address named (no trusted proxy): nothing is handed back, each trigger takes a place', async (t) => {
  const loose = policy('lab', 'authentication', { push_open_logins: 3 }, { client: ['192.0.2.0/24'] });
  const { w } = await setup(t, [loose]);
  await login(w, USER);
  await login(w, ATTACKER);
  t.is((await login(w, '192.0.2.3')).body.result.authentication, 'CHALLENGE', 'the lab range may have 3');
  assert429(t, await login(w, '192.0.2.4'), [1, 120]);

  const bare = await setup(t, [], false);
  const a = await login(bare.w);
  const b = await login(bare.w);
  t.not(tid(a), tid(b), 'an unknown address is never given an open login');
  assert429(t, await login(bare.w), [1, 120], /open/);
});

test('back-off per address: starts after an unanswered push, grows by the factor up to the cap, refuses before any PIN hash, resets on an accept', async (t) => {
  const { w, phone } = await setup(t, [
    policy('fatigue', 'authentication', { push_backoff_start: 10, push_backoff_factor: 3, push_backoff_max: 60 }),
  ]);
  const hashes = countVerifies(w);
  const expected = [10, 30, 60, 60];
  for (const seconds of expected) {
    t.is((await login(w, ATTACKER)).body.result.authentication, 'CHALLENGE');
    w.clock.advance(VALIDITY_MS); // unanswered: expired
    const before = hashes();
    assert429(t, await login(w, ATTACKER), seconds, /not answered/);
    assert429(t, await login(w, ATTACKER, 'wrong-pin'), seconds);
    t.is(hashes(), before, 'a backed-off trigger is refused before the PIN is hashed, whatever the PIN');
    w.clock.advance(seconds * 1000 - 1000);
    t.is((await login(w, ATTACKER)).status, 429, 'still backed off one second before the end');
    w.clock.advance(1000);
  }
  t.true(events(w, 'push.unanswered').length >= 4);
  // The real user at another address is not held back by the attacker's address …
  const mine = await login(w, USER);
  t.is(mine.body.result.authentication, 'CHALLENGE');
  const [data] = await polled(phone);
  t.is((await phone.answer(data!)).status, 200);
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid(mine), client: USER })).body, { result: { value: true } });
  // An accept resets the user's row and the user's address, not the attacker's address.
  const view = await pushFatigueView(w.deps, fatigueSubject({ name: 'alice', realm: 'default' }, []), null);
  t.deepEqual(
    view.backoff.map((b) => [b.client, b.strikes]),
    [[ATTACKER, 4]],
  );
});

test('back-off per user: after push_backoff_user_after unanswered pushes from changing addresses, every address is refused; an accept resets it', async (t) => {
  const { w, phone } = await setup(t, [policy('fatigue', 'authentication', { push_backoff_user_after: 2, push_open_logins: 1 })]);
  for (let i = 1; i <= 2; i++) {
    t.is((await login(w, `192.0.2.${i}`)).body.result.authentication, 'CHALLENGE');
    w.clock.advance(VALIDITY_MS);
  }
  t.is((await login(w, '192.0.2.3')).body.result.authentication, 'CHALLENGE', 'two in a row are free for the user as a whole');
  w.clock.advance(VALIDITY_MS);
  assert429(t, await login(w, '192.0.2.4'), 30, /not answered/);
  assert429(t, await login(w, USER), 30);
  t.true(events(w, 'throttle.refused').some((e) => e.limit === 'push_user'));
  w.clock.advance(30_000);
  const r = await login(w, USER);
  t.is(r.body.result.authentication, 'CHALLENGE');
  const [d] = await polled(phone);
  t.is((await phone.answer(d!)).status, 200);
  const view = await pushFatigueView(w.deps, fatigueSubject({ name: 'alice', realm: 'default' }, []), null);
  t.false(
    view.backoff.some((b) => b.client === ''),
    'the accept reset the user row',
  );
});

test('"this wasn\'t me": a decline is an event with address, time and the app\'s reason, an audit row, a metric, and raises the back-off', async (t) => {
  const { w, phone, serial } = await setup(t);
  const r = await login(w, ATTACKER);
  const [d] = await polled(phone);
  t.is((await phone.answer(d!, { decline: true, declineReason: 'not_me' })).status, 200);
  const [e] = events(w, 'push.declined');
  t.like(e, {
    serial,
    transactionId: tid(r),
    user: 'alice',
    realm: 'default',
    client: ATTACKER,
    at: w.clock.now(),
    reason: 'not_me',
    declinesInRow: 1,
  });
  const rows = await auditRows(w);
  const row = rows.filter((a) => a.action === 'POST /ttype/push').at(-1);
  t.like(row, { outcome: 'DECLINED', success: true });
  t.like(row!.info as Record<string, unknown>, { decline: true, decline_reason: 'not_me' });
  t.regex((await w.call('GET', '/metrics')).text, /pushgate_push_declines_total 1/);
  assert429(t, await login(w, ATTACKER), 30, /declined/);
  // A reason next to a plain decline signature is not recorded (it is not signed).
  const w2 = await setup(t);
  await login(w2.w, ATTACKER);
  const [d2] = await polled(w2.phone);
  const sig = w2.phone.sign(`${d2!.nonce}|${d2!.serial}|decline`);
  t.is((await w2.phone.answer(d2!, { decline: true, declineReason: 'forged', signature: sig })).status, 200);
  t.is(events(w2.w, 'push.declined')[0].reason, undefined);
});

test("decline lock: after push_decline_lock declines in a row the user's push logins are locked (REJECT, no PIN hash) until unblock; target token locks the token", async (t) => {
  const { w, phone } = await setup(t, [
    policy('fatigue', 'authentication', { push_decline_lock: 2, push_backoff_start: 1 }),
    policy('trig', 'admin', { triggerchallenge: true, enroll: true, reset: true }),
  ]);
  const hashes = countVerifies(w);
  for (let i = 0; i < 2; i++) {
    await login(w, ATTACKER);
    const [d] = await polled(phone);
    t.is((await phone.answer(d!, { decline: true })).status, 200);
    w.clock.advance(10_000);
  }
  t.is(events(w, 'push.locked').length, 1);
  const before = hashes();
  const locked = await login(w, USER);
  t.like(locked.body.result, { status: true, value: false, authentication: 'REJECT' });
  t.regex(locked.body.detail.message, /locked after repeated declines/);
  t.is(hashes(), before, 'no PIN hash for a locked user');
  const trig = await w.call(
    'POST',
    '/validate/triggerchallenge',
    { user: 'alice', client: USER },
    { headers: { Authorization: await w.adminToken() } },
  );
  t.like(trig.body.result, { value: 0, authentication: 'REJECT' }, 'triggerchallenge sends no push either');
  const subject = fatigueSubject({ name: 'alice', realm: 'default' }, []);
  t.truthy((await pushFatigueView(w.deps, subject, null)).backoff.find((b) => b.client === '')?.lockedAt);
  // The admin API's unblock (admin right `reset`; the CLI's `token unblock` is tested in tests/cli).
  const { serial } = (await w.deps.store.tokens.list({ username: 'alice', realm: 'default' }))[0]!;
  const un = await w.call('POST', `/token/unblock/${serial}`, {}, { headers: { Authorization: await w.adminToken() } });
  t.is(un.status, 200, un.text);
  t.deepEqual(un.body.result.value, { backoff: 2, open_logins: 0 });
  t.is((await login(w, USER)).body.result.authentication, 'CHALLENGE');

  const tok = await setup(t, [policy('fatigue', 'authentication', { push_decline_lock: 1, push_decline_lock_target: 'token' })]);
  await login(tok.w, ATTACKER);
  const [d] = await polled(tok.phone);
  await tok.phone.answer(d!, { decline: true });
  const token = await tok.w.deps.store.tokens.bySerial(tok.serial);
  t.is(token!.failCount, token!.maxFail, 'the token is locked');
  t.is(events(tok.w, 'token.locked').length, 1);
});

test('triggerchallenge is gated too: same address → the open login; over the cap → 429', async (t) => {
  const { w } = await setup(t, [policy('trig', 'admin', { triggerchallenge: true, enroll: true })]);
  const headers = { Authorization: await w.adminToken() };
  const trig = (client: string) => w.call('POST', '/validate/triggerchallenge', { user: 'alice', client }, { headers });
  const a = await trig(USER);
  t.is(a.body.result.authentication, 'CHALLENGE');
  t.is(tid(await trig(USER)), tid(a));
  t.is((await login(w, USER)).body.detail.transaction_id, tid(a), 'check and triggerchallenge share the open login');
  await trig(ATTACKER);
  assert429(t, await trig('192.0.2.9'), [1, 120]);
});

test('a push flood with the PIN: each repeat has its audit row and its count, the log writes the first repeat and then one line per 10 s', async (t) => {
  const { w, phone } = await setup(t);
  const first = await login(w, ATTACKER);
  for (let i = 0; i < 6; i++) t.is(tid(await login(w, ATTACKER)), tid(first)); // from the database, then from memory
  t.is((await polled(phone)).length, 1, 'one push');
  const results = events(w, 'check.result');
  t.deepEqual(
    results.map((e) => e.reused ?? false),
    [false, true, true, true, true, true, true],
    'the event marks the repeats (the open login again, no new push)',
  );
  const rows = (await auditRows(w)).filter((r) => r.action === 'POST /validate/check');
  t.is(rows.length, 7, 'an audit row per request');
  t.true(rows.every((r) => r.outcome === 'CHALLENGE' && r.transactionId === tid(first)));
  const lines = () => w.logLines().filter((l) => l.event === 'check.result');
  t.deepEqual(
    lines().map((l) => l.reused ?? false),
    [false, true],
    'the opening login and the first repeat are written at once, the other repeats are being counted',
  );
  w.clock.advance(10_000);
  t.like(lines()[2], { repeated: 5, client: ATTACKER, outcome: 'CHALLENGE', window_ms: 10_000 });
  // Another address's repeats are their own kind.
  const user = await login(w, USER);
  t.is(tid(await login(w, USER)), tid(user));
  t.deepEqual(
    lines()
      .slice(3)
      .map((l) => [l.client, l.reused ?? false]),
    [
      [USER, false],
      [USER, true],
    ],
  );
});

/** Every SQL statement but the audit rows' inserts, from now on. */
function queries(w: TestWorld): { notAudit(): string[]; clear(): void } {
  const sqls: string[] = [];
  w.deps.store.knex.on('query', (q: { sql: string }) => sqls.push(q.sql));
  return {
    notAudit: () => sqls.filter((s) => !/^insert into .audit./i.test(s)),
    clear: () => {
      sqls.length = 0;
    },
  };
}

/** What a refusal tells the client: status, error message and Retry-After. */
const answerOf = (r: Reply) => ({
  status: r.status,
  message: r.body?.result?.error?.message ?? r.body?.detail?.message,
  authentication: r.body?.result?.authentication,
  retryAfter: r.headers.get('retry-after'),
});

/** The same request answered by the database: this node's memory of the subject forgotten first. */
async function fromDatabase(w: TestWorld, client: string, pass = '1234'): Promise<Reply> {
  w.deps.push.memory.forget(fatigueSubject({ name: 'alice', realm: 'default' }, []));
  return login(w, client, pass);
}

/** The audit rows of the checks, without what differs per request (id, time, request id). */
const auditOf = async (w: TestWorld) =>
  (await auditRows(w)).filter((r) => r.action === 'POST /validate/check').map(({ id, time, requestId, ...rest }) => rest);

test("a back-off refusal is repeated from this node's memory for a moment (no query but the audit row), the same answer as the database's, then read again; never past the back-off's end", async (t) => {
  const { w, phone } = await setup(t);
  await login(w, ATTACKER);
  const [d] = await polled(phone);
  t.is((await phone.answer(d!, { decline: true })).status, 200);
  const q = queries(w);
  const first = await login(w, ATTACKER);
  assert429(t, first, 30, /declined/);
  t.true(q.notAudit().length > 0, 'the first refusal reads the database');
  q.clear();
  const refusedBefore = events(w, 'throttle.refused').length;
  const again = await login(w, ATTACKER);
  t.deepEqual(q.notAudit(), [], 'from memory: neither the token list nor the push state is read');
  t.deepEqual(answerOf(again), answerOf(first));
  t.deepEqual(answerOf(await login(w, ATTACKER, 'wrong-pin')), answerOf(first), 'refused whatever the pass, as the database way');
  t.deepEqual(q.notAudit(), []);
  t.deepEqual(
    events(w, 'throttle.refused').slice(refusedBefore),
    [
      { limit: 'push_address', key: fatigueSubject({ name: 'alice', realm: 'default' }, []), retryAfterSeconds: 30 },
      { limit: 'push_address', key: fatigueSubject({ name: 'alice', realm: 'default' }, []), retryAfterSeconds: 30 },
    ],
    'the same event',
  );
  const audit = await auditOf(w);
  t.is(audit.length, 4, 'an audit row per request');
  t.deepEqual(audit.at(-2), audit.at(-3), 'the same audit row as the refusal read from the database');
  t.like(audit.at(-2), { success: false, client: ATTACKER });

  // Retry-After counts down from the back-off's end, as the database's would.
  w.clock.advance(PUSH_MEMORY_FRESH_MS - 1);
  q.clear();
  const late = await login(w, ATTACKER);
  t.deepEqual(q.notAudit(), [], 'still fresh');
  t.deepEqual(answerOf(late), answerOf(await fromDatabase(w, ATTACKER)));

  w.clock.advance(PUSH_MEMORY_FRESH_MS);
  q.clear();
  assert429(t, await login(w, ATTACKER), 29);
  t.true(
    q.notAudit().some((s) => /push_backoff/.test(s)),
    'after PUSH_MEMORY_FRESH_MS the database is asked again',
  );

  // Read 300 ms before the back-off ends: the memory refuses until the end and not a moment longer.
  const view = await pushFatigueView(w.deps, fatigueSubject({ name: 'alice', realm: 'default' }, []), null);
  const end = view.backoff.find((b) => b.client === ATTACKER)!.lastStrikeAt + 30_000;
  w.clock.advance(end - 300 - w.clock.now());
  assert429(t, await login(w, ATTACKER), 1);
  q.clear();
  w.clock.advance(299);
  assert429(t, await login(w, ATTACKER), 1);
  t.deepEqual(q.notAudit(), [], 'remembered until the end');
  w.clock.advance(1);
  t.is((await login(w, ATTACKER)).body.result.authentication, 'CHALLENGE', 'the back-off is over: never refused from memory past its end');
});

test('a remembered refusal is per address: another address of the user gets the database answer (its own login, or the user back-off); an accept or an unblock on this node forgets it', async (t) => {
  const { w, phone, serial } = await setup(t, [policy('fatigue', 'authentication', { push_backoff_user_after: 0 })]);
  const subject = fatigueSubject({ name: 'alice', realm: 'default' }, []);
  // The user's login is open; the attacker's push is declined: the user row and the attacker's address are backed off.
  const mine = await login(w, USER);
  const [userPush] = await polled(phone);
  await login(w, ATTACKER);
  const attackerPush = (await polled(phone)).find((p) => p.nonce !== userPush!.nonce);
  t.is((await phone.answer(attackerPush!, { decline: true })).status, 200);
  const q = queries(w);
  assert429(t, await login(w, ATTACKER), 30, /declined/);
  t.like(w.deps.push.memory.get(subject, ATTACKER, w.clock.now()), { kind: 'refusal', limit: 'push_address' });
  q.clear();
  const userRefused = await login(w, USER);
  assert429(t, userRefused, 30);
  t.true(q.notAudit().length > 0, "another address is not answered from the first address's entry");
  t.is(events(w, 'throttle.refused').at(-1).limit, 'push_user');
  q.clear();
  const userAgain = await login(w, USER);
  t.deepEqual(q.notAudit(), []);
  t.deepEqual(answerOf(userAgain), answerOf(userRefused));
  t.deepEqual(answerOf(userAgain), answerOf(await fromDatabase(w, USER)), 'with and without the memory: the same answer');
  t.is(events(w, 'throttle.refused').at(-1).limit, 'push_user');

  // The phone accepts the user's open login: the user row and the user's address are reset — the memory forgets.
  t.is((await phone.answer(userPush!)).status, 200);
  t.is(w.deps.push.memory.get(subject, USER, w.clock.now()), undefined);
  t.is(w.deps.push.memory.get(subject, ATTACKER, w.clock.now()), undefined);
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid(mine), client: USER })).body, { result: { value: true } });
  t.is((await login(w, USER)).body.result.authentication, 'CHALLENGE', 'after the accept the user logs in at once');
  const attacker = await login(w, ATTACKER);
  assert429(t, attacker, 30, /declined/);
  t.deepEqual(answerOf(attacker), answerOf(await fromDatabase(w, ATTACKER)), "the attacker's address is still backed off");

  // Remembered again, then unblocked on this node (the admin API; the CLI calls the same unblockPush).
  await login(w, ATTACKER);
  t.like(w.deps.push.memory.get(subject, ATTACKER, w.clock.now()), { kind: 'refusal' });
  const un = await w.call('POST', `/token/unblock/${serial}`, {}, { headers: { Authorization: await w.adminToken() } });
  t.is(un.status, 200, un.text);
  t.is((await login(w, ATTACKER)).body.result.authentication, 'CHALLENGE', 'unblocked: the next login is not refused from memory');
});

test('a request that narrows the tokens (serial, type) is never refused from memory, and a locked user is not remembered', async (t) => {
  const { w, phone, serial } = await setup(t, [policy('fatigue', 'authentication', { push_decline_lock: 2, push_backoff_start: 1 })]);
  const subject = fatigueSubject({ name: 'alice', realm: 'default' }, []);
  await login(w, ATTACKER);
  const [d] = await polled(phone);
  await phone.answer(d!, { decline: true });
  assert429(t, await login(w, ATTACKER), 1);
  const q = queries(w);
  assert429(t, await check(w, { user: 'alice', pass: '1234', serial, client: ATTACKER }), 1);
  t.true(q.notAudit().length > 0, 'a serial goes the normal way');
  q.clear();
  assert429(t, await check(w, { user: 'alice', pass: '1234', type: 'push', client: ATTACKER }), 1);
  t.true(q.notAudit().length > 0, 'a type goes the normal way');
  // The second decline locks: REJECT on the normal way, nothing remembered.
  w.clock.advance(1000);
  await login(w, ATTACKER);
  const [d2] = await polled(phone);
  await phone.answer(d2!, { decline: true });
  t.is(events(w, 'push.locked').length, 1);
  t.is((await login(w, ATTACKER)).body.result.authentication, 'REJECT');
  t.is(w.deps.push.memory.get(subject, ATTACKER, w.clock.now()), undefined, 'a lock is not remembered');
});
