import test from 'ava';
import { world, until } from '../../helpers/kit.ts';
import { testKeySource } from '../../helpers/push_ctx.ts';
import type { ServerKeyPair } from '../../../tokens/push/signatures.ts';

async function countingSource() {
  const inner = await testKeySource();
  const counter = { made: 0 };
  return {
    counter,
    generate: async (): Promise<ServerKeyPair> => {
      counter.made++;
      return inner();
    },
  };
}

test('key pool: a serving process keeps keys ready; a CLI-like process (no router) never pre-generates', async (t) => {
  const served = await countingSource();
  const w = await world(t, { push: { keys: { generate: served.generate, size: 2 } } });
  await until(() => w.deps.push.keys.ready === 2);
  t.is(served.counter.made, 2);

  const cli = await countingSource();
  const c = await world(t, { noHttp: true, push: { keys: { generate: cli.generate, size: 2 } } });
  c.deps.push.support.prepareEnrollment();
  t.is(cli.counter.made, 0);
  t.is(c.deps.push.keys.ready, 0);
  c.deps.push.startServing();
  await until(() => c.deps.push.keys.ready === 2);
});

test('push support: unknown channel is a clean delivery failure with an event; poll only is no channel', async (t) => {
  const w = await world(t, { noHttp: true });
  t.false(w.deps.push.support.hasChannel('poll only'));
  t.false(w.deps.push.support.hasChannel('fcm'));
  const token = { id: 1, serial: 'EDUP1', type: 'edupush' } as Parameters<typeof w.deps.push.support.send>[1];
  const r = await w.deps.push.support.send('fcm', token, 'device', {
    data: {},
    notification: { title: '', body: '' },
    android: { priority: 'high', ttlMs: 1, analyticsLabel: '' },
    apns: { headers: {}, alert: { title: '', body: '' }, sound: '', category: '', analyticsLabel: '' },
  });
  t.false(r.ok);
  t.like(w.seen.find((e) => e.name === 'delivery.failed')?.payload, { serial: 'EDUP1', channel: 'fcm' });
});
