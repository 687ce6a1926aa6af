/**
 * Approval chains across two nodes (issue 15): two Deps + HTTP apps on ONE fresh PostgreSQL database with one secrets
 * key. The steps of one ordered chain are answered on alternating nodes, and both nodes read (and so try to settle and
 * advance) the chain at the same moment as the answer path does: each step must be decided once and each next push
 * sent once. Always PostgreSQL, whatever PUSHGATE_TEST_DB says: runs in the PostgreSQL suite, skipped elsewhere.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import crypto from 'node:crypto';
import { policy, until } from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import { freshDatabaseUrl, PG_ADMIN_URL, TEST_DB } from '../helpers/databases.ts';
import type { TestWorld } from '../helpers/test_app.ts';
import type { FakePhone } from '../helpers/fake_phone.ts';
import { reachable } from '../helpers/wait.ts';
import { makeApp, signed } from '../helpers/signed.ts';
import { readApproval } from '../../server/auth/app_push.ts';

const pgAt = new URL(PG_ADMIN_URL);
const here = TEST_DB === 'postgres';
const pgUp = here && (await reachable(Number(pgAt.port || 5432), pgAt.hostname));
const SKIP = pgUp
  ? ''
  : here
    ? ` [skipped: PostgreSQL at ${pgAt.hostname}:${pgAt.port || 5432} is unreachable]`
    : ' [skipped: runs in the PostgreSQL suite]';

async function twoNodes(t: ExecutionContext): Promise<[TestWorld, TestWorld]> {
  const db = await freshDatabaseUrl('postgres');
  t.teardown(db.drop); // registered first: runs after both nodes are closed
  const key = crypto.randomBytes(32);
  const opts = { policies: [policy('no-matching', 'authentication', { push_matching: 'never' })], world: { databaseUrl: db.url, key } };
  const a = await pushWorld(t, opts);
  const b = await pushWorld(t, opts);
  return [a, b];
}

/** The same phone (key, scanned token, server key) talking to another node. */
function samePhoneOn(w: TestWorld, phone: FakePhone): FakePhone {
  const other = phoneFor(w, phone.style, phone.key.kind);
  other.token = phone.token;
  other.serverKey = phone.serverKey;
  return other;
}

const count = (ws: TestWorld[], name: string) => ws.reduce((n, w) => n + w.seen.filter((e) => e.name === name).length, 0);

(pgUp ? test : test.skip)(`two nodes answer the steps of one ordered chain; racing readers decide each step once${SKIP}`, async (t) => {
  const [a, b] = await twoNodes(t);
  const nodes = [a, b];
  const app = await makeApp(a);
  const users = ['alice', 'bob', 'carol'];
  const phones: FakePhone[] = [];
  for (const user of users) {
    const p = phoneFor(a);
    await enrollPhone(a, p, 'edupush', { user });
    phones.push(p);
  }
  const r = await signed(b, app, 'POST', '/api/v1/approvals', { approvers: users, mode: 'ordered', question: 'Ship it?' });
  t.is(r.status, 200, r.text);
  const id = r.body.result.value.id as string;
  for (const [i, phone] of phones.entries()) {
    // Step i is answered on node B for even steps, on node A for odd ones.
    const on = samePhoneOn(i % 2 === 0 ? b : a, phone);
    const open = (await on.poll()).body.result.value;
    t.is(open.length, 1, `${users[i]} has exactly one push`);
    // The answer, and at the same time both nodes read the chain (each read tries to settle and advance it).
    const [answered] = await Promise.all([
      on.answer(open[0]),
      readApproval(a.deps, id),
      readApproval(b.deps, id),
      readApproval(a.deps, id),
    ]);
    t.is(answered.status, 200, answered.text);
    await until(() => count(nodes, 'app.push_settled') === i + 1, 15_000);
    // The winner of step i sends step i + 1 (after it emitted the settlement).
    if (i + 1 < users.length) await until(() => count(nodes, 'app.push_sent') === i + 2, 15_000);
    await Promise.all([readApproval(a.deps, id), readApproval(b.deps, id)]);
  }
  await until(() => count(nodes, 'approval.completed') === 1, 15_000);
  t.is(count(nodes, 'app.push_sent'), 3, 'one push per step, across both nodes');
  t.is(count(nodes, 'app.push_settled'), 3, 'each step decided once');
  t.is(count(nodes, 'approval.completed'), 1, 'the chain completed once');
  const read = await signed(a, app, 'GET', `/api/v1/approvals/${id}`);
  t.is(read.body.result.value.status, 'approved');
  t.deepEqual(
    read.body.result.value.steps.map((s: { status: string }) => s.status),
    ['approved', 'approved', 'approved'],
  );
  // The replay cache is shared: a nonce used on node B is refused on node A.
  const nonce = 'shared-nonce-0123456789';
  t.is((await signed(b, app, 'GET', `/api/v1/approvals/${id}`, undefined, { nonce })).status, 200);
  t.is((await signed(a, app, 'GET', `/api/v1/approvals/${id}`, undefined, { nonce })).status, 401);
});
