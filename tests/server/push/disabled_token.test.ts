/**
 * Issue 9 item 7 (disabled token part): a disabled token's answers are refused and its pending challenges are
 * withdrawn. Disabling (POST /token/disable, `pushgate token disable`) deletes the token's challenges in the same
 * transaction; the store's answer lands only while the token is active (one conditional statement), so a login that
 * raced the disable cannot be approved either; a disabled token's phone polls an empty list. There is no revoked
 * state in pushgate yet (tokenView reports `revoked: false`).
 */
import test from 'ava';
import { asAdmin, check, deferred, until } from '../../helpers/kit.ts';
import { beginEnrollment, enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import type { SmartphoneData } from '../../helpers/fake_phone.ts';
import type { TestWorld } from '../../helpers/test_app.ts';

async function admin(w: TestWorld, action: 'enable' | 'disable', serial: string): Promise<void> {
  const r = await w.call('POST', `/token/${action}/${serial}`, {}, { headers: await asAdmin(w) });
  if (r.status !== 200) throw new Error(`${action} failed: ${r.status} ${r.text}`);
}

async function pushLogin(w: TestWorld, user = 'alice'): Promise<string> {
  const c = await check(w, { user, pass: '1234' });
  if (c.body?.result?.authentication !== 'CHALLENGE') throw new Error(`no challenge: ${c.text}`);
  return c.body.detail.transaction_id as string;
}

const finalize = (w: TestWorld, tid: string, user = 'alice') => check(w, { user, pass: '', transaction_id: tid });

test('the issue sequence: push → disable → the phone approves → enable → finalize is not ACCEPT', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const tid = await pushLogin(w);
  const [data] = (await phone.poll()).body.result.value as SmartphoneData[];
  t.truthy(data, 'the phone has the push request');

  await admin(w, 'disable', serial);
  const answered = await phone.answer(data!);
  t.is(answered.status, 400, 'refused with an error status: the apps count only a 200 as success');
  t.deepEqual(answered.body.result.error, { code: 401, message: 'ERR401: The token is disabled: the answer was not accepted.' });
  t.false(w.seen.some((e) => e.name === 'challenge.answered'));
  await admin(w, 'enable', serial);

  const fin = await finalize(w, tid);
  t.is(fin.status, 200, fin.text);
  t.like(fin.body, { result: { value: false, authentication: 'REJECT' } });
  t.like((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body, { result: { value: false } });

  // Enabled again, the token works for a new login.
  const next = await pushLogin(w);
  const [fresh] = (await phone.poll()).body.result.value as SmartphoneData[];
  t.like((await phone.answer(fresh!)).body, { result: { value: true } });
  t.like((await finalize(w, next)).body, { result: { authentication: 'ACCEPT' } });
});

test('disabling withdraws every challenge of the token — an approval given before the disable included — and only its own', async (t) => {
  const w = await pushWorld(t);
  const alicePhone = phoneFor(w);
  const aliceSerial = await enrollPhone(w, alicePhone);
  const bobPhone = phoneFor(w);
  await beginEnrollment(w, bobPhone, 'edupush', { user: 'bob' });
  t.is((await bobPhone.enroll()).status, 200);

  const approved = await pushLogin(w);
  const pending = await pushLogin(w);
  const bobs = await pushLogin(w, 'bob');
  const items = (await alicePhone.poll()).body.result.value as SmartphoneData[];
  const approvedNonce = (await w.deps.store.challenges.byTransaction(approved))[0]!.nonce;
  t.like((await alicePhone.answer(items.find((d) => d.nonce === approvedNonce)!)).body, { result: { value: true } });

  await admin(w, 'disable', aliceSerial);
  t.deepEqual(await w.deps.store.challenges.byTransaction(approved), [], 'the approved login is withdrawn');
  t.deepEqual(await w.deps.store.challenges.byTransaction(pending), [], 'the pending login is withdrawn');
  t.is((await w.deps.store.challenges.byTransaction(bobs)).length, 1, "another token's login is untouched");

  await admin(w, 'enable', aliceSerial);
  t.like(
    (await finalize(w, approved)).body,
    { result: { value: false, authentication: 'REJECT' } },
    'approved while active, but withdrawn by the disable',
  );
  t.deepEqual((await alicePhone.poll()).body.result.value, []);
});

test('a login that raced the disable (its challenge stored after the withdrawal) can be neither polled nor approved while disabled', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  // Hold the login's challenge insert: the login read the token while it was active; the disable runs meanwhile.
  const store = w.deps.store.challenges;
  const insert = store.insert.bind(store);
  const gate = deferred();
  let held = 0;
  store.insert = async (c) => {
    held++;
    await gate.promise;
    return insert(c);
  };
  const login = check(w, { user: 'alice', pass: '1234' });
  await until(() => held === 1);
  await admin(w, 'disable', serial);
  gate.resolve();
  const c = await login;
  const tid = c.body.detail.transaction_id as string;
  const [row] = await w.deps.store.challenges.byTransaction(tid);
  t.is(row?.status, 'pending', 'the challenge was stored after the withdrawal, for a disabled token');

  const polled = await phone.poll();
  t.is(polled.status, 200, polled.text);
  t.deepEqual(polled.body.result.value, [], 'a disabled token polls an empty list');
  const data = { nonce: row!.nonce, serial, url: phone.token!.url } as SmartphoneData;
  t.like(await phone.answer(data), { status: 400, body: { result: { status: false, error: { code: 401 } } } }, 'the answer is refused');
  t.false(await w.deps.store.challenges.answer(row!.id, 'accepted', w.clock.now()), 'the store refuses it in its conditional statement');
  t.is((await w.deps.store.challenges.byTransaction(tid))[0]?.status, 'pending');

  await admin(w, 'enable', serial);
  t.like((await finalize(w, tid)).body, { result: { authentication: 'REJECT' } }, 'nothing was approved while disabled');
});
