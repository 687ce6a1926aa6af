/**
 * Applications (issue 15): signed requests (replay, clock skew, one 401 for every wrong part), the policy that
 * requires them on /validate, the push API with long-poll, approval chains (ordered with a No in the middle,
 * parallel all Yes and with one No), webhooks to a real local receiver (fails twice, then accepts), statistics.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { asAdmin, auditRows, check, policy, track, until } from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import type { TestWorld } from '../helpers/test_app.ts';
import type { FakePhone } from '../helpers/fake_phone.ts';
import { makeApp, signed } from '../helpers/signed.ts';
import { startWebhookDispatcher, webhookSignature } from '../../server/auth/webhooks.ts';
import { SIGNATURE_REFUSED } from '../../server/auth/app_signature.ts';
import { runCleanup } from '../../server/store/cleanup.ts';

const NEVER_MATCH = policy('no-matching', 'authentication', { push_matching: 'never' });

/** Two realms that take any user name: `default` and `staff`. */
const REALMS = [
  { name: 'default', default: true, users: { type: 'any' } },
  { name: 'staff', users: { type: 'any' } },
];

async function appWorld(t: ExecutionContext, policies: Array<Record<string, unknown>> = []): Promise<TestWorld> {
  return pushWorld(t, { policies: [NEVER_MATCH, ...policies], config: { realms: REALMS } });
}

/** A phone enrolled (edupush) for `user`. */
async function phoneOf(w: TestWorld, user: string): Promise<FakePhone> {
  const phone = phoneFor(w);
  await enrollPhone(w, phone, 'edupush', { user });
  return phone;
}

async function openPushes(t: ExecutionContext, phone: FakePhone) {
  const r = await phone.poll();
  t.is(r.status, 200, r.text);
  return r.body.result.value as Array<Parameters<FakePhone['answer']>[0]>;
}

/** The phone answers its one open push. */
async function answer(t: ExecutionContext, phone: FakePhone, decline = false): Promise<void> {
  const open = await openPushes(t, phone);
  t.is(open.length, 1, 'one open push');
  const r = await phone.answer(open[0]!, { decline });
  t.is(r.status, 200, r.text);
}

/** Lets the answer path (the `challenge.answered` subscriber) finish its database work. */
async function settled(w: TestWorld, pred: () => boolean): Promise<void> {
  await until(pred, 10_000);
  void w;
}

const settledCount = (w: TestWorld, name: string) => w.seen.filter((e) => e.name === name).length;

test('signed requests: a valid one passes; replay, clock skew, bad signature, unknown or disabled app and no signature get the same 401', async (t) => {
  const w = await appWorld(t);
  const app = await makeApp(w);
  await phoneOf(w, 'alice');
  const body = { user: 'alice', question: 'Deploy v2?', matching: 'never' };
  const ok = await signed(w, app, 'POST', '/api/v1/push', body, { nonce: 'n-0123456789abcdef' });
  t.is(ok.status, 200, ok.text);
  t.is(ok.body.result.value.status, 'pending');

  const refused = async (r: Promise<{ status: number; body: any }>, why: string) => {
    const x = await r;
    t.is(x.status, 401, why);
    t.is(x.body.result.error.message, SIGNATURE_REFUSED, why);
  };
  await refused(signed(w, app, 'POST', '/api/v1/push', body, { nonce: 'n-0123456789abcdef' }), 'replayed nonce');
  const now = Math.floor(w.clock.now() / 1000);
  await refused(signed(w, app, 'POST', '/api/v1/push', body, { timestamp: now - 301 }), 'timestamp 5 min + 1 s old');
  await refused(signed(w, app, 'POST', '/api/v1/push', body, { timestamp: now + 301 }), 'timestamp in the future');
  await refused(signed(w, app, 'POST', '/api/v1/push', body, { secret: 'not-the-secret' }), 'wrong secret');
  await refused(signed(w, app, 'POST', '/api/v1/push', body, { sendBody: JSON.stringify({ ...body, user: 'bob' }) }), 'body changed');
  await refused(signed(w, { ...app, id: 'app_000000000000000000000000' }, 'POST', '/api/v1/push', body), 'unknown application');
  const plain = await w.call('POST', '/api/v1/push', body, { as: 'json' });
  t.is(plain.status, 401, 'unsigned');
  t.is(plain.body.result.error.message, SIGNATURE_REFUSED);
  await w.deps.store.apps.setActive(app.id, false, w.clock.now());
  await refused(signed(w, app, 'POST', '/api/v1/push', body), 'disabled application');

  // Within the window the nonce is remembered (across nodes: it is a table); the cleanup drops it after the window.
  t.true(Number((await w.deps.store.knex('app_nonces').count({ n: '*' }).first())!.n) > 0);
  w.clock.advance(6 * 60_000);
  await runCleanup(w.deps);
  t.is(Number((await w.deps.store.knex('app_nonces').count({ n: '*' }).first())!.n), 0);
  const reasons = w.seen.filter((e) => e.name === 'app.auth_failed').map((e) => (e.payload as { reason: string }).reason);
  for (const r of ['replay', 'skew', 'signature', 'unknown_app', 'unsigned', 'disabled']) t.true(reasons.includes(r), r);
  // The audit names the application of the accepted request.
  const rows = (await auditRows(w)).filter((r) => r.action === 'POST /api/v1/push');
  t.true(rows.some((r) => r.success && r.application === 'crm'));
});

test('policy application_required: /validate/check of the realm needs a signed request; the audit row names the application', async (t) => {
  const w = await appWorld(t, [policy('signed-only', 'authorization', { application_required: true }, { realm: ['default'] })]);
  const app = await makeApp(w, 'idp', { webhookUrl: 'http://127.0.0.1:9/hook' });
  const unsigned = await check(w, { user: 'alice', pass: 'x' });
  t.is(unsigned.status, 401);
  t.is(unsigned.body.result.error.message, SIGNATURE_REFUSED);
  const form = 'user=alice&pass=x';
  const r = await signed(w, app, 'POST', '/validate/check', form);
  t.is(r.status, 200, r.text);
  t.is(r.body.result.authentication, 'REJECT');
  const rows = (await auditRows(w)).filter((x) => x.action === 'POST /validate/check');
  t.deepEqual(
    rows.map((x) => x.application),
    [null, 'idp'],
  );
  // GET /audit/ shows it and filters by it.
  const page = await w.call('GET', '/audit/', { application: 'idp' }, { headers: await asAdmin(w) });
  t.is(page.status, 200, page.text);
  t.deepEqual(
    page.body.result.value.auditdata.map((e: { action: string; application: string }) => [e.action, e.application]),
    [['POST /validate/check', 'idp']],
  );
  // Its signed login and a token enrolled in its realm are webhook events (outbox rows; nobody delivers them here).
  await phoneOf(w, 'alice');
  await until(() => w.seen.filter((e) => e.name === 'webhook.queued').length >= 2, 10_000);
  const events = (await w.deps.store.webhooks.log(app.id, 10)).map((r) => r.event).sort();
  t.deepEqual(events, ['auth.reject', 'token.enrolled']);
  // An application bound to a realm signs only for its users: 403 for another realm's, on /validate and the push API.
  const own = await makeApp(w, 'own', { realm: 'default' });
  t.is((await signed(w, own, 'POST', '/validate/check', form)).status, 200);
  const staff = await makeApp(w, 'staff-only', { realm: 'staff' });
  t.is((await signed(w, staff, 'POST', '/validate/check', form)).status, 403);
  t.is((await signed(w, staff, 'POST', '/api/v1/push', { user: 'alice', realm: 'default', question: 'x' })).status, 403);
});

test("push API: a push on the user's edupush token, long-poll until the phone approves, who and when", async (t) => {
  const w = await appWorld(t);
  const app = await makeApp(w);
  const phone = await phoneOf(w, 'alice');
  const created = await signed(w, app, 'POST', '/api/v1/push', {
    user: 'alice',
    question: 'Approve payment of 120 EUR?',
    title: 'Payments',
    context: { amount: 120 },
    timeout: 60,
  });
  t.is(created.status, 200, created.text);
  const push = created.body.result.value;
  t.regex(push.id, /^psh_[0-9a-f]{24}$/);
  t.like(push, { status: 'pending', user: 'alice', context: { amount: 120 } });
  const open = await openPushes(t, phone);
  t.is(open.length, 1);
  t.is(open[0]!.question, 'Approve payment of 120 EUR?');
  t.is(open[0]!.title, 'Payments');
  t.true(phone.verifyPushData(open[0]!), 'the phone verifies the server-signed question');

  const polling = track(signed(w, app, 'GET', `/api/v1/push/${push.id}?wait=30`));
  await until(() => w.deps.answers.waiting > 0, 10_000);
  t.false(polling.settled());
  w.clock.advance(3000);
  t.is((await phone.answer(open[0]!)).status, 200);
  const done = await polling.promise;
  t.is(done.status, 200, done.text);
  t.like(done.body.result.value, { id: push.id, status: 'approved', answered_by: { user: 'alice' } });
  t.is(done.body.result.value.answered_at, w.clock.now());
  // The approval answers what the application asked, never a login: its transaction id finishes no /validate/check.
  const finish = await check(w, { user: 'alice', transaction_id: push.transaction_id, pass: '' });
  t.is(finish.body.result.authentication, 'REJECT', finish.text);
  // Another application cannot read it; a form body works too.
  const other = await makeApp(w, 'other');
  t.is((await signed(w, other, 'GET', `/api/v1/push/${push.id}`)).status, 404);
  const form = await signed(w, app, 'POST', '/api/v1/push', 'user=alice&question=Again%3F&matching=never');
  t.is(form.status, 200, form.text);
  const unknown = await signed(w, app, 'POST', '/api/v1/push', { user: 'nobody-with-a-phone', question: 'x' });
  t.is(unknown.status, 400, unknown.text);
  // Number matching: the service gets the code to show (message), the phone shows the same one.
  const matched = await signed(w, app, 'POST', '/api/v1/push', { user: 'alice', question: 'Log in to the CRM?', matching: 'always' });
  t.is(matched.status, 200, matched.text);
  const code = /shows: (.+)$/.exec(matched.body.result.value.message)?.[1];
  t.truthy(code, matched.body.result.value.message);
  const shown = (await openPushes(t, phone)).find((d) => d.question.startsWith('Log in to the CRM?'));
  t.true(shown?.question.endsWith(`shows: ${code}`), shown?.question);
  // A timeout makes it expired.
  w.clock.advance(w.deps.config.challenge.validitySeconds * 1000 + 1);
  const late = await signed(w, app, 'GET', `/api/v1/push/${form.body.result.value.id}`);
  t.is(late.body.result.value.status, 'expired');
});

test('ordered chain with a No in the middle: the chain is declined and the later approver never gets a push', async (t) => {
  const w = await appWorld(t);
  const app = await makeApp(w);
  const [alice, bob, carol] = [await phoneOf(w, 'alice'), await phoneOf(w, 'bob'), await phoneOf(w, 'carol')];
  const r = await signed(w, app, 'POST', '/api/v1/approvals', {
    approvers: ['alice', 'bob', 'carol'],
    mode: 'ordered',
    question: 'Release to production?',
    timeout_seconds: 120,
  });
  t.is(r.status, 200, r.text);
  const id = r.body.result.value.id as string;
  t.deepEqual(
    r.body.result.value.steps.map((s: { status: string }) => s.status),
    ['pending', 'waiting', 'waiting'],
  );
  t.is((await openPushes(t, bob)).length, 0, 'bob is not asked before alice answered');
  await answer(t, alice);
  await settled(w, () => w.seen.filter((e) => e.name === 'app.push_sent').length === 2);
  t.is((await openPushes(t, carol)).length, 0);
  const waiting = track(signed(w, app, 'GET', `/api/v1/approvals/${id}?wait=30`));
  await until(() => w.deps.answers.waiting > 0, 10_000);
  await answer(t, bob, true);
  const done = await waiting.promise;
  t.like(done.body.result.value, { id, status: 'declined' });
  t.deepEqual(
    done.body.result.value.steps.map((s: { user: string; status: string }) => [s.user, s.status]),
    [
      ['alice', 'approved'],
      ['bob', 'declined'],
      ['carol', 'skipped'],
    ],
  );
  t.is((await openPushes(t, carol)).length, 0, 'carol never got a push');
  t.is(w.seen.filter((e) => e.name === 'app.push_sent').length, 2);
  t.is(settledCount(w, 'approval.completed'), 1);
});

test("parallel: all Yes approves; one No ends it and withdraws the others' pending pushes", async (t) => {
  const w = await appWorld(t);
  const app = await makeApp(w);
  const phones = { alice: await phoneOf(w, 'alice'), bob: await phoneOf(w, 'bob'), carol: await phoneOf(w, 'carol') };
  const start = async () => {
    const r = await signed(w, app, 'POST', '/api/v1/approvals', {
      approvers: ['alice', 'bob', 'carol'],
      mode: 'parallel',
      question: 'Open the vault?',
    });
    t.is(r.status, 200, r.text);
    t.deepEqual(
      r.body.result.value.steps.map((s: { status: string }) => s.status),
      ['pending', 'pending', 'pending'],
    );
    return r.body.result.value.id as string;
  };
  const read = async (id: string) => (await signed(w, app, 'GET', `/api/v1/approvals/${id}`)).body.result.value;

  const yes = await start();
  await answer(t, phones.alice);
  await answer(t, phones.carol);
  await settled(w, () => settledCount(w, 'app.push_settled') === 2);
  t.is((await read(yes)).status, 'pending');
  await answer(t, phones.bob);
  await settled(w, () => settledCount(w, 'approval.completed') === 1);
  t.like(await read(yes), { status: 'approved' });

  const no = await start();
  await answer(t, phones.bob, true);
  await settled(w, () => settledCount(w, 'approval.completed') === 2);
  const v = await read(no);
  t.is(v.status, 'declined');
  t.deepEqual(
    v.steps.map((s: { status: string }) => s.status),
    ['withdrawn', 'declined', 'withdrawn'],
  );
  t.is((await openPushes(t, phones.alice)).length, 0, "alice's push was withdrawn");
  t.is((await openPushes(t, phones.carol)).length, 0, "carol's push was withdrawn");
  // The withdrawn pushes are no strike against alice: she gets the next push at once.
  const next = await signed(w, app, 'POST', '/api/v1/push', { user: 'alice', question: 'Still there?' });
  t.is(next.status, 200, next.text);
});

test('an ordered step that times out ends the chain (expired) — found by the sweep even if nobody reads', async (t) => {
  const w = await appWorld(t);
  const app = await makeApp(w);
  await phoneOf(w, 'alice');
  const bob = await phoneOf(w, 'bob');
  const r = await signed(w, app, 'POST', '/api/v1/approvals', {
    approvers: 'alice,bob',
    mode: 'ordered',
    question: 'Go?',
    timeout_seconds: 30,
  });
  t.is(r.status, 200, r.text);
  w.clock.advance(31_000);
  const { expireOverduePushes } = await import('../../server/auth/app_push.ts');
  t.is(await expireOverduePushes(w.deps), 1);
  const v = (await signed(w, app, 'GET', `/api/v1/approvals/${r.body.result.value.id}`)).body.result.value;
  t.like(v, { status: 'expired' });
  t.deepEqual(
    v.steps.map((s: { status: string }) => s.status),
    ['expired', 'skipped'],
  );
  t.is((await openPushes(t, bob)).length, 0);
});

test('webhooks: a receiver that fails twice then accepts gets three signed attempts with back-off; the log shows them', async (t) => {
  const got: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.statusCode = got.length <= 2 ? 503 : 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const w = await appWorld(t);
  const app = await makeApp(w, 'crm', { webhookUrl: url, webhookEvents: ['challenge.created'] });
  const dispatcher = startWebhookDispatcher(w.deps, { intervalMs: 0 });
  t.teardown(() => dispatcher.stop());
  await phoneOf(w, 'alice');
  const attempts = () => w.seen.filter((e) => e.name === 'webhook.attempted').length;
  const r = await signed(w, app, 'POST', '/api/v1/push', { user: 'alice', question: 'Hook?' });
  t.is(r.status, 200, r.text);
  await until(() => attempts() === 1, 10_000); // queued → this node's dispatcher wakes at once
  t.is(await dispatcher.runOnce(), 0, 'not due before the back-off');
  w.clock.advance(10_000);
  t.is(await dispatcher.runOnce(), 1);
  w.clock.advance(19_999);
  t.is(await dispatcher.runOnce(), 0);
  w.clock.advance(1);
  t.is(await dispatcher.runOnce(), 1);
  t.is(await dispatcher.runOnce(), 0, 'delivered: never again');
  t.is(got.length, 3);
  const ids = new Set(got.map((g) => g.headers['x-pushgate-event-id']));
  t.is(ids.size, 1, 'one event, three attempts');
  for (const g of got) {
    const ts = String(g.headers['x-pushgate-timestamp']);
    t.is(g.headers['x-pushgate-signature'], webhookSignature(app.secret, ts, g.body));
    t.is(g.headers['x-pushgate-event'], 'challenge.created');
    const doc = JSON.parse(g.body);
    t.like(doc, { event: 'challenge.created', application: 'crm', data: { id: r.body.result.value.id, user: 'alice' } });
  }
  const log = await w.deps.store.webhooks.log(app.id, 10);
  t.is(log.length, 1);
  t.like(log[0], { status: 'delivered', attempts: 3 });
  t.deepEqual(
    log[0]!.tries.map((x) => x.status),
    [503, 503, 204],
  );
  const forged = crypto.createHmac('sha256', 'x').update('y').digest('hex');
  t.not(got[0]!.headers['x-pushgate-signature'], `v1=${forged}`);
});

test('statistics per day: pushes, approvals, declines, timeouts, median and p95; admin endpoint', async (t) => {
  const w = await appWorld(t);
  const app = await makeApp(w);
  const phone = await phoneOf(w, 'alice');
  for (const [i, decline] of [false, true, false].entries()) {
    const r = await signed(w, app, 'POST', '/api/v1/push', { user: 'alice', question: `Q${i}?` });
    t.is(r.status, 200, r.text);
    w.clock.advance((i + 1) * 2000);
    await answer(t, phone, decline);
    await settled(w, () => settledCount(w, 'app.push_settled') === i + 1);
  }
  const r = await signed(w, app, 'POST', '/api/v1/push', { user: 'alice', question: 'Nobody answers' });
  t.is(r.status, 200);
  w.clock.advance(w.deps.config.challenge.validitySeconds * 1000);
  t.is((await signed(w, app, 'GET', `/api/v1/push/${r.body.result.value.id}`)).body.result.value.status, 'expired');
  const s = await w.call('GET', '/application/crm/stats', {}, { headers: await asAdmin(w) });
  t.is(s.status, 200, s.text);
  t.is(s.body.result.value.days.length, 1);
  t.like(s.body.result.value.days[0], { challenges: 4, approvals: 2, declines: 1, timeouts: 1, median_seconds: 4, p95_seconds: 6 });
  t.is((await w.call('GET', '/application/nope/stats', {}, { headers: await asAdmin(w) })).status, 404);
  t.is((await w.call('GET', '/application/crm/stats')).status, 401);
  const metrics = await w.deps.metrics.counters();
  t.is(metrics.get('pushgate_app_pushes_total{application="crm",result="approved"}'), 2);
});
