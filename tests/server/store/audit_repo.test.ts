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
