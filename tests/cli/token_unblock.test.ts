/**
 * `pushgate token show` lists a push token owner's open push logins and push back-off; `pushgate token unblock`
 * (by serial or --user) clears the back-off and the decline lock and frees the open logins (issue 11 item 5).
 */
import test from 'ava';
import { createCliWorld } from './cli_world.ts';
import { tokenRow } from '../helpers/kit.ts';
import { fatigueSubject } from '../../server/auth/push_fatigue.ts';

test('token show: open push logins and back-off; token unblock SERIAL | --user clears them (audited)', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const deps = await w.deps();
  const now = Date.now();
  await deps.store.tokens.insert(tokenRow({ serial: 'PUSH0001', type: 'edupush', rolloutState: 'enrolled' }), now);
  const subject = fatigueSubject({ name: 'alice', realm: 'default' }, []);
  const repo = deps.store.pushFatigue;
  await repo.ensureSlots(subject, 2);
  t.true(await repo.claim(subject, 0, '203.0.113.66', '12345678901234567890', now, now + 120_000));
  await repo.strike(subject, '203.0.113.66', now, true);
  await repo.strike(subject, '', now, true);
  await repo.lock(subject, now);

  const shown = await w.run(['token', 'show', 'PUSH0001']);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /open: 12345678901234567890 from 203\.0\.113\.66/);
  t.regex(shown.stdout, /back-off address 203\.0\.113\.66: 1 unanswered\/declined in a row, 1 declines in a row, blocked for (29|30) s/);
  t.regex(shown.stdout, /back-off user: 1 unanswered\/declined in a row, 1 declines in a row, LOCKED since/);
  const json = await w.json(['token', 'show', 'PUSH0001', '--json']);
  t.like(json.push_fatigue, { open_logins: [{ transaction_id: '12345678901234567890', client: '203.0.113.66' }] });
  t.is(json.push_fatigue.backoff.length, 2);
  t.is((await w.json(['token', 'show', 'PUSH0001', '--json'])).serial, 'PUSH0001');

  const un = await w.run(['token', 'unblock', 'PUSH0001']);
  t.is(un.code, 0, un.stderr);
  t.regex(un.stdout, /unblocked push logins of alice@default \(2 back-off rows cleared, 1 open logins freed\)/);
  const after = await w.json(['token', 'show', 'PUSH0001', '--json']);
  t.deepEqual(after.push_fatigue, { open_logins: [], backoff: [] });
  const audit = await deps.store.knex('audit').where({ action: 'cli token unblock' });
  t.is(audit.length, 1);

  await repo.strike(subject, '', now, false);
  t.regex((await w.run(['token', 'unblock', '--user', 'alice'])).stdout, /alice@default \(1 back-off rows cleared/);
  t.is((await w.run(['token', 'unblock'])).code, 2, 'a serial or --user is needed (a usage error)');
  // An HOTP token has no push section.
  await deps.store.tokens.insert(tokenRow({ serial: 'OATH0001' }), now);
  t.is((await w.json(['token', 'show', 'OATH0001', '--json'])).push_fatigue, undefined);
});
