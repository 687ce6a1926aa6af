/** ChallengesRepo.newestOpen (the phone's poll) and the active-token guard of answer, on every database. */
import test from 'ava';
import { tokenRow, world } from '../../helpers/kit.ts';
import { TEST_DB } from '../../helpers/databases.ts';
import type { TestWorld } from '../../helpers/test_app.ts';

const on = ` [${TEST_DB}]`;

async function token(w: TestWorld, serial: string) {
  return w.deps.store.tokens.insert(tokenRow({ serial, type: 'edupush', rolloutState: 'enrolled' }), w.clock.now());
}

test(`newestOpen: pending, unexpired, not of the excluded session, this serial only — newest first, at most limit${on}`, async (t) => {
  const w = await world(t, { noHttp: true });
  const a = await token(w, 'EDUPA');
  const b = await token(w, 'EDUPB');
  const now = w.clock.now();
  const add = (serial: string, tokenId: number, nonce: string, o: { session?: string; expiresAt?: number } = {}) =>
    w.deps.store.challenges.insert({
      transactionId: `tx-${nonce}`,
      serial,
      tokenId,
      nonce,
      session: o.session ?? '',
      data: {},
      createdAt: now,
      expiresAt: o.expiresAt ?? now + 120_000,
    });
  await add('EDUPA', a.id, 'n1');
  await add('EDUPA', a.id, 'n2');
  const answered = await add('EDUPA', a.id, 'n3');
  await add('EDUPA', a.id, 'n4', { expiresAt: now });
  await add('EDUPA', a.id, 'n5', { session: 'enrollment' });
  await add('EDUPB', b.id, 'n6');
  await add('EDUPA', a.id, 'n7');
  t.true(await w.deps.store.challenges.answer(answered.id, 'accepted', now));
  const nonces = async (limit: number) => (await w.deps.store.challenges.newestOpen('EDUPA', now, limit, 'enrollment')).map((r) => r.nonce);
  t.deepEqual(await nonces(10), ['n7', 'n2', 'n1']);
  t.deepEqual(await nonces(2), ['n7', 'n2']);
  t.deepEqual(await nonces(1), ['n7']);
});

test(`answer: lands only while the challenge's token is active${on}`, async (t) => {
  const w = await world(t, { noHttp: true });
  const a = await token(w, 'EDUPA');
  const now = w.clock.now();
  const row = await w.deps.store.challenges.insert({
    transactionId: 'tx-1',
    serial: 'EDUPA',
    tokenId: a.id,
    nonce: 'n1',
    session: '',
    data: {},
    createdAt: now,
    expiresAt: now + 120_000,
  });
  await w.deps.store.tokens.update('EDUPA', { active: false }, now);
  t.false(await w.deps.store.challenges.answer(row.id, 'accepted', now));
  t.false(await w.deps.store.challenges.answer(row.id, 'declined', now));
  t.is((await w.deps.store.challenges.byTransaction('tx-1'))[0]!.status, 'pending');
  await w.deps.store.tokens.update('EDUPA', { active: true }, now);
  t.true(await w.deps.store.challenges.answer(row.id, 'accepted', now));
});

test(`tokens.disable: the token inactive and all its challenges gone, in one transaction; unknown serial false${on}`, async (t) => {
  const w = await world(t, { noHttp: true });
  const a = await token(w, 'EDUPA');
  const b = await token(w, 'EDUPB');
  const now = w.clock.now();
  for (const [serial, id, n] of [
    ['EDUPA', a.id, 'n1'],
    ['EDUPA', a.id, 'n2'],
    ['EDUPB', b.id, 'n3'],
  ] as const) {
    await w.deps.store.challenges.insert({
      transactionId: `tx-${n}`,
      serial,
      tokenId: id,
      nonce: n,
      session: '',
      data: {},
      createdAt: now,
      expiresAt: now + 120_000,
    });
  }
  await w.deps.store.challenges.answer((await w.deps.store.challenges.byTransaction('tx-n2'))[0]!.id, 'accepted', now);
  t.true(await w.deps.store.tokens.disable('EDUPA', now));
  t.false((await w.deps.store.tokens.bySerial('EDUPA'))!.active);
  t.deepEqual(await w.deps.store.challenges.byTransaction('tx-n1'), []);
  t.deepEqual(await w.deps.store.challenges.byTransaction('tx-n2'), []);
  t.is((await w.deps.store.challenges.byTransaction('tx-n3')).length, 1);
  t.false(await w.deps.store.tokens.disable('NOPE', now));
});
