/** `pushgate audit tail` (issue 10): filters, the node column, --follow driven by an injected clock (no sleeps). */
import test from 'ava';
import { FakeClock } from '../helpers/fake_clock.ts';
import { createCliWorld } from './cli_world.ts';
import type { Deps } from '../../server/deps.ts';

/** Lets the event loop run until `cond` holds (no timers: each turn is one setImmediate). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 20_000; i++) {
    if (cond()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}

const row = (deps: Deps, action: string, outcome: string, username: string | null, serials: string[] = []) =>
  deps.store.audit.insert({
    time: deps.clock.now(),
    action,
    success: outcome === 'ACCEPT' || outcome === 'OK',
    outcome,
    username,
    serials,
  });

test("filters: --user, --serial (one of the row's serials), --action (contains), --outcome (any case); all must match", async (t) => {
  const w = await createCliWorld({ server: { node_name: 'node-a' } });
  t.teardown(() => w.close());
  const deps = await w.deps();
  await row(deps, 'POST /validate/check', 'ACCEPT', 'alice', ['HOTP1']);
  await row(deps, 'POST /validate/check', 'REJECT', 'alice', ['HOTP1', 'TOTP22']);
  await row(deps, 'POST /validate/check', 'REJECT', 'bob', ['TOTP2']);
  await row(deps, 'cli token enroll', 'OK', 'bob', ['TOTP2']);
  await row(deps, 'POST /validate/check', 'REJECT', 'a_ice', ['X%1']);
  const pick = async (...args: string[]) =>
    (await w.run(['audit', 'tail', '--json', ...args])).stdout
      .trimEnd()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { user: string; outcome: string; serials: string[]; node: string });
  t.deepEqual(
    (await pick('--user', 'alice')).map((r) => r.outcome),
    ['ACCEPT', 'REJECT'],
  );
  t.deepEqual(
    (await pick('--serial', 'TOTP2')).map((r) => r.user),
    ['bob', 'bob'],
    'TOTP22 is not TOTP2',
  );
  t.deepEqual((await pick('--serial', 'HOTP1')).length, 2);
  t.deepEqual(
    (await pick('--action', 'validate', '--outcome', 'reject')).map((r) => r.user),
    ['alice', 'bob', 'a_ice'],
  );
  t.deepEqual(
    (await pick('--action', 'token enroll')).map((r) => r.user),
    ['bob'],
  );
  t.deepEqual(
    (await pick('--user', 'bob', '--outcome', 'OK')).map((r) => r.serials),
    [['TOTP2']],
  );
  t.deepEqual(await pick('--serial', 'X_1'), [], '_ is no wildcard');
  t.deepEqual(
    (await pick('--serial', 'X%1')).map((r) => r.user),
    ['a_ice'],
  );
  t.deepEqual(await pick('--user', 'nobody'), []);
  t.true(
    (await pick()).every((r) => r.node === 'node-a'),
    'every row names the node that wrote it',
  );
  const table = await w.run(['audit', 'tail', '--user', 'alice']);
  t.regex(table.stdout, /^TIME\s+NODE\s+ACTION\s+OUTCOME\s+USER/);
  t.regex(table.stdout, /\snode-a\s+POST \/validate\/check\s+ACCEPT\s+alice\s/);
  t.is((await w.run(['audit', 'tail', '--user', 'nobody'])).stdout, 'no audit rows\n');
});

test('--follow: prints the newest rows, then each new matching row after every interval of the injected clock; ends on abort', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const deps = await w.deps();
  const clock = new FakeClock();
  await row(deps, 'POST /validate/check', 'ACCEPT', 'alice');
  let out = '';
  const stop = new AbortController();
  const following = w.run(['audit', 'tail', '--follow', '--json', '--interval', '2', '--user', 'alice'], '', {
    buildOptions: { clock },
    signal: stop.signal,
    onStdout: (s) => {
      out = s;
    },
  });
  const lines = () =>
    out
      .trimEnd()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { outcome: string; user: string });
  await until(() => lines().length === 1 && clock.pending === 1, 'the first row, then a wait');
  t.is(lines()[0]!.outcome, 'ACCEPT');

  await row(deps, 'POST /validate/check', 'REJECT', 'alice');
  await row(deps, 'POST /validate/check', 'REJECT', 'bob');
  clock.advance(1_999);
  for (let i = 0; i < 50; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  t.is(lines().length, 1, 'nothing before the interval has passed');
  clock.advance(1);
  await until(() => lines().length === 2 && clock.pending === 1, 'the new row of alice');
  t.deepEqual(
    lines().map((l) => l.outcome),
    ['ACCEPT', 'REJECT'],
    "bob's row is filtered out",
  );

  for (let i = 0; i < 3; i++) await row(deps, 'POST /validate/check', 'CHALLENGE', 'alice');
  clock.advance(2_000);
  await until(() => lines().length === 5 && clock.pending === 1, 'three more rows');
  t.deepEqual(
    lines()
      .slice(2)
      .map((l) => l.outcome),
    ['CHALLENGE', 'CHALLENGE', 'CHALLENGE'],
  );

  stop.abort();
  const r = await following;
  t.is(r.code, 0, r.stderr);
  t.is(clock.pending, 0, 'no wait left behind');
});

test('--follow in a table: the header once, then only rows', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const deps = await w.deps();
  const clock = new FakeClock();
  let out = '';
  const stop = new AbortController();
  const following = w.run(['audit', 'tail', '-f'], '', {
    buildOptions: { clock },
    signal: stop.signal,
    onStdout: (s) => {
      out = s;
    },
  });
  await until(() => clock.pending === 1, 'waiting');
  t.is(out, '', 'no rows yet: nothing printed');
  await row(deps, 'POST /validate/check', 'ACCEPT', 'alice');
  clock.advance(1_000);
  await until(() => out.includes('alice') && clock.pending === 1, 'the first row');
  await row(deps, 'POST /validate/check', 'REJECT', 'carol');
  clock.advance(1_000);
  await until(() => out.includes('carol'), 'the second row');
  stop.abort();
  t.is((await following).code, 0);
  const lines = out.trimEnd().split('\n');
  t.is(lines.length, 3);
  t.regex(lines[0]!, /^TIME\s+NODE\s+ACTION/);
  t.regex(lines[2]!, /REJECT\s+carol/);
});
