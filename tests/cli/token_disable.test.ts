/** `pushgate token disable` withdraws the token's open challenges, like POST /token/disable (issue 9 item 7). */
import test from 'ava';
import { triggerChallenges } from '../../server/auth/trigger.ts';
import { createCliWorld } from './cli_world.ts';

test('token disable withdraws the challenges of that token only; enable does not bring them back', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  for (const serial of ['OATH0001', 'OATH0002']) {
    const r = await w.run(['token', 'enroll', '--type', 'hotp', '--user', 'alice', '--serial', serial, '--genkey']);
    t.is(r.code, 0, r.stderr);
  }
  const deps = await w.deps();
  const one = await triggerChallenges(deps, { serial: 'OATH0001' });
  const two = await triggerChallenges(deps, { serial: 'OATH0002' });
  const tid1 = one.challenges[0]!.transactionId;
  const tid2 = two.challenges[0]!.transactionId;
  t.is((await deps.store.challenges.byTransaction(tid1)).length, 1);

  t.is((await w.run(['token', 'disable', 'OATH0001'])).stdout, 'disabled OATH0001\n');
  t.deepEqual(await deps.store.challenges.byTransaction(tid1), []);
  t.is((await deps.store.challenges.byTransaction(tid2)).length, 1);
  t.false((await deps.store.tokens.bySerial('OATH0001'))!.active);

  t.is((await w.run(['token', 'enable', 'OATH0001'])).stdout, 'enabled OATH0001\n');
  t.deepEqual(await deps.store.challenges.byTransaction(tid1), []);
  t.true((await deps.store.tokens.bySerial('OATH0001'))!.active);
});
