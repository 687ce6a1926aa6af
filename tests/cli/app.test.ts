/** `pushgate app …`: add (secret once, --json), list, show, rotate-secret, disable/enable, webhook, deliveries, stats, delete. */
import test from 'ava';
import { createCliWorld } from './cli_world.ts';

test('app add prints id and secret once (stored encrypted); list/show never show it; rotate, disable, webhook, deliveries, stats, delete', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const added = await w.json<{ id: string; secret: string }>(['app', 'add', 'crm', '--realm', 'default', '--json']);
  t.regex(added.id, /^app_[0-9a-f]{24}$/);
  t.regex(added.secret, /^[A-Za-z0-9_-]{43}$/);
  const text = await w.run(['app', 'add', 'erp']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /secret: +[A-Za-z0-9_-]{43}\n.*shown only now/);
  const dup = await w.run(['app', 'add', 'crm']);
  t.is(dup.code, 1);
  t.regex(dup.stderr, /exists already/);
  t.is((await w.run(['app', 'add', 'bad name'])).code, 1);

  const list = await w.json<Array<Record<string, unknown>>>(['app', 'list', '--json']);
  t.deepEqual(
    list.map((a) => [a.name, a.realm, a.active]),
    [
      ['crm', 'default', true],
      ['erp', null, true],
    ],
  );
  const show = await w.run(['app', 'show', 'crm']);
  t.regex(show.stdout, /realm: +default/);
  const deps = await w.deps();
  const stored = await deps.store.knex('applications').where({ name: 'crm' }).first();
  t.false(JSON.stringify(stored).includes(added.secret), 'the secret is stored encrypted');
  t.is(await deps.store.apps.secretOf(added.id), added.secret);
  t.false((list.map((a) => JSON.stringify(a)).join('') + show.stdout).includes(added.secret), 'never shown again');

  const rotated = await w.json<{ id: string; secret: string }>(['app', 'rotate-secret', 'crm', '--json']);
  t.is(rotated.id, added.id);
  t.not(rotated.secret, added.secret);
  t.is(await deps.store.apps.secretOf(added.id), rotated.secret);

  t.is((await w.run(['app', 'disable', 'crm'])).code, 0);
  t.false((await deps.store.apps.byName('crm'))!.active);
  t.is((await w.run(['app', 'enable', 'crm'])).code, 0);
  t.true((await deps.store.apps.byName('crm'))!.active);

  t.is((await w.run(['app', 'webhook', 'crm', 'https://hooks.example.org/pushgate', '--events', 'approval.completed'])).code, 0);
  t.like(await deps.store.apps.byName('crm'), { webhookUrl: 'https://hooks.example.org/pushgate', webhookEvents: ['approval.completed'] });
  const badEvent = await w.run(['app', 'webhook', 'crm', 'https://x.example', '--events', 'nope']);
  t.is(badEvent.code, 1);
  t.regex(badEvent.stderr, /Unknown webhook event nope/);
  t.deepEqual(await w.json(['app', 'deliveries', 'crm', '--json']), []);
  t.deepEqual(await w.json(['app', 'stats', 'crm', '--json', '--since', '2026-01-01']), []);
  t.is((await w.run(['app', 'stats', 'crm', '--since', 'soon'])).code, 2);

  const audit = await deps.store.audit.tail(50);
  t.true(audit.some((a) => a.action === 'cli app add' && a.success));
  t.true(audit.some((a) => a.action === 'cli app rotate-secret' && a.success));
  t.false(JSON.stringify(audit).includes(rotated.secret), 'no secret in the audit');

  t.is((await w.run(['app', 'delete', 'erp'])).code, 0);
  t.is((await w.run(['app', 'show', 'erp'])).code, 1);
});
