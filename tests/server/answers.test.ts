/**
 * The AnswerBus (server/auth/answers.ts) on its own: persistent listeners keyed by transaction id, several per
 * transaction, exact `waiting` counts, waitFor's timeout and abort, and close() ending every listener.
 */
import test from 'ava';
import { createAnswerBus, type AnswerListener, type BusTransport } from '../../server/auth/answers.ts';
import { FakeClock } from '../helpers/fake_clock.ts';

function listener(transactionId: string): AnswerListener & { answers: number; closed: number } {
  return {
    transactionId,
    answers: 0,
    closed: 0,
    onAnswer() {
      this.answers++;
    },
    onBusClosed() {
      this.closed++;
    },
  };
}

test('a listener hears every notification of its transaction until it unlistens; others are not disturbed', (t) => {
  const bus = createAnswerBus(new FakeClock());
  const a1 = listener('T1');
  const a2 = listener('T1');
  const b = listener('T2');
  bus.listen(a1);
  bus.listen(a2);
  bus.listen(b);
  bus.listen(a1); // twice is once
  t.is(bus.waiting, 3);
  bus.notify('T1');
  bus.notify('T1');
  t.deepEqual([a1.answers, a2.answers, b.answers], [2, 2, 0], 'a notification does not remove the listener');
  bus.unlisten(a1);
  bus.unlisten(a1); // twice is once
  t.is(bus.waiting, 2);
  bus.notify('T1');
  t.deepEqual([a1.answers, a2.answers], [2, 3]);
  bus.unlisten(a2);
  bus.unlisten(b);
  t.is(bus.waiting, 0);
  bus.notify('T1');
  bus.notify('unknown');
  t.deepEqual([a1.answers, a2.answers, b.answers], [2, 3, 0]);
});

test('a listener may unlisten itself, or another one, while being told', (t) => {
  const bus = createAnswerBus(new FakeClock());
  const others: AnswerListener[] = [];
  const self: AnswerListener = {
    transactionId: 'T',
    onAnswer() {
      bus.unlisten(self);
      for (const o of others) bus.unlisten(o);
    },
    onBusClosed() {},
  };
  const other = listener('T');
  others.push(other);
  bus.listen(self);
  bus.listen(other);
  bus.notify('T');
  t.is(bus.waiting, 0);
  t.is(other.answers, 1, 'every listener registered when the notification came is told once');
});

test('waitFor: notified, timed out by the clock, aborted by its signal — and never left registered', async (t) => {
  const clock = new FakeClock();
  const bus = createAnswerBus(clock);
  const notified = bus.waitFor('T', { timeoutMs: 1000 });
  t.is(bus.waiting, 1);
  bus.notify('T');
  t.is(await notified, 'notified');
  const timedOut = bus.waitFor('T', { timeoutMs: 1000 });
  clock.advance(999);
  t.is(bus.waiting, 1);
  clock.advance(1);
  t.is(await timedOut, 'timeout');
  const ac = new AbortController();
  const aborted = bus.waitFor('T', { timeoutMs: 1000, signal: ac.signal });
  ac.abort();
  t.is(await aborted, 'aborted');
  t.is(await bus.waitFor('T', { timeoutMs: 1000, signal: ac.signal }), 'aborted', 'an aborted signal ends it at once');
  t.is(bus.waiting, 0);
  t.is(clock.pending, 0);
});

test('notify publishes to the transport after waking local listeners; remote messages wake local ones; close ends all', async (t) => {
  const published: string[] = [];
  let deliver: (tid: string) => void = () => {};
  let closed = false;
  let down = false;
  const transport: BusTransport = {
    name: 'test',
    async start(onMessage) {
      deliver = onMessage;
    },
    publish(tid) {
      published.push(tid);
    },
    async check() {
      if (down) throw new Error('transport down');
    },
    async close() {
      closed = true;
    },
  };
  const bus = createAnswerBus(new FakeClock(), transport);
  await bus.start();
  const l = listener('T');
  bus.listen(l);
  bus.notify('T');
  t.deepEqual(published, ['T']);
  t.is(l.answers, 1);
  deliver('T');
  t.is(l.answers, 2, 'a notification from another node wakes the local listener');
  await t.notThrowsAsync(bus.check());
  down = true;
  await t.throwsAsync(bus.check(), { message: 'transport down' }, 'readiness asks the transport');
  await bus.close();
  t.is(l.closed, 1);
  t.true(closed);
});

test('observe: every notification, local or from another node, is seen before the listeners are woken; not counted', async (t) => {
  let deliver: (tid: string) => void = () => {};
  const transport: BusTransport = {
    name: 'test',
    async start(onMessage) {
      deliver = onMessage;
    },
    publish() {},
    async check() {},
    async close() {},
  };
  const bus = createAnswerBus(new FakeClock(), transport);
  await bus.start();
  const order: string[] = [];
  const stop = bus.observe((tid) => order.push(`observed ${tid}`));
  bus.listen({ transactionId: 'T', onAnswer: () => order.push('woken T'), onBusClosed() {} });
  t.is(bus.waiting, 1, 'an observer is not a waiter');
  bus.notify('T');
  deliver('U');
  t.deepEqual(order, ['observed T', 'woken T', 'observed U']);
  stop();
  bus.notify('T');
  t.deepEqual(order.slice(3), ['woken T'], 'removed: no longer told');
});
