import test from 'ava';
import { world } from '../../helpers/kit.ts';
import { AUDIT_BATCH_MAX } from '../../../server/store/audit_repo.ts';
import { DatabaseError } from '../../../core/errors.ts';

/** Counts the INSERTs into the audit table the store's knex runs from now on. */
function countAuditInserts(w: Awaited<ReturnType<typeof world>>): () => number {
  let n = 0;
  w.deps.store.knex.on('query', (q: { sql: string }) => {
    if (/^insert into [`"]?audit[`"]?/i.test(q.sql)) n++;
  });
  return () => n;
}

const entry = (i: number) => ({
  time: 1_000 + i,
  action: `POST /validate/check ${i}`,
  success: false,
  outcome: 'REJECT',
  username: `u${i}`,
});

test('the audit rows of one turn of the event loop are written by one INSERT, each insert resolving once stored', async (t) => {
  const w = await world(t);
  const inserts = countAuditInserts(w);
  await Promise.all(Array.from({ length: 40 }, (_, i) => w.deps.store.audit.insert(entry(i))));
  t.is(inserts(), 1);
  const rows = await w.deps.store.audit.tail(100);
  t.deepEqual(
    rows.map((r) => r.action),
    Array.from({ length: 40 }, (_, i) => `POST /validate/check ${i}`),
    'every row, in the order the requests wrote them',
  );
});

test('rows beyond one batch go into further INSERTs of at most AUDIT_BATCH_MAX rows', async (t) => {
  const w = await world(t);
  const inserts = countAuditInserts(w);
  const n = AUDIT_BATCH_MAX + 10;
  await Promise.all(Array.from({ length: n }, (_, i) => w.deps.store.audit.insert(entry(i))));
  t.is(inserts(), 2);
  t.is((await w.deps.store.audit.tail(n + 10)).length, n);
});

test('a row the database refuses fails only its own insert: the rest of its batch is stored one by one', async (t) => {
  const w = await world(t);
  const inserts = countAuditInserts(w);
  const results = await Promise.allSettled(
    Array.from({ length: 5 }, (_, i) => w.deps.store.audit.insert(i === 2 ? { ...entry(i), time: Number.NaN } : entry(i))),
  );
  t.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
  const failed = results[2] as PromiseRejectedResult;
  t.true(failed.reason instanceof DatabaseError);
  t.is(inserts(), 1 + 5, 'the batch, then each row on its own');
  t.deepEqual(
    (await w.deps.store.audit.tail(10)).map((r) => r.username),
    ['u0', 'u1', 'u3', 'u4'],
  );
});

test('rows written in different turns are not held back for each other', async (t) => {
  const w = await world(t);
  const inserts = countAuditInserts(w);
  for (let i = 0; i < 3; i++) await w.deps.store.audit.insert(entry(i));
  t.is(inserts(), 3);
  t.is((await w.deps.store.audit.tail(10)).length, 3);
});

/** The audit INSERTs the store's knex runs from now on, each as the `action` values of its rows (in statement order). */
function auditInsertActions(w: Awaited<ReturnType<typeof world>>): string[][] {
  const seen: string[][] = [];
  w.deps.store.knex.on('query', (q: { sql: string; bindings?: unknown[] }) => {
    if (!/^insert into [`"]?audit[`"]?/i.test(q.sql)) return;
    seen.push((q.bindings ?? []).filter((b): b is string => typeof b === 'string' && b.startsWith('POST /validate/check')));
  });
  return seen;
}

test('a row inserted alone gets its own INSERT at once: it does not wait for the turn, the queued rows keep their batch', async (t) => {
  const w = await world(t);
  const statements = auditInsertActions(w);
  const audit = w.deps.store.audit;
  const before = [0, 1, 2].map((i) => audit.insert(entry(i)));
  const alone = audit.insert(entry(3), { alone: true });
  const after = [4, 5].map((i) => audit.insert(entry(i)));
  await Promise.all([...before, alone, ...after]);
  t.deepEqual(statements, [
    ['POST /validate/check 3'],
    ['POST /validate/check 0', 'POST /validate/check 1', 'POST /validate/check 2', 'POST /validate/check 4', 'POST /validate/check 5'],
  ]);
  t.is((await audit.tail(10)).length, 6);
});

test('a row inserted alone that the database refuses fails its own insert only', async (t) => {
  const w = await world(t);
  const audit = w.deps.store.audit;
  const results = await Promise.allSettled([
    audit.insert(entry(0)),
    audit.insert({ ...entry(1), time: Number.NaN }, { alone: true }),
    audit.insert(entry(2)),
  ]);
  t.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  t.true((results[1] as PromiseRejectedResult).reason instanceof DatabaseError);
  t.deepEqual(
    (await audit.tail(10)).map((r) => r.username),
    ['u0', 'u2'],
  );
});
