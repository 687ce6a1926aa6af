/**
 * server/app.ts error rendering for unexpected failures: a broken database is 500 / -600 `A database error
 * occurred.`, anything else 500 / -500 `An internal error occurred.`; the detail (message, stack) goes to the
 * log events only, never into the body.
 */
import test from 'ava';
import { RFC, asAdmin, check, enrollHotp, world } from '../helpers/kit.ts';
import type { Reply } from '../helpers/test_app.ts';

function assertOpaque(
  t: {
    is(a: unknown, b: unknown, m?: string): void;
    false(v: boolean, m?: string): void;
    deepEqual(a: unknown, b: unknown, m?: string): void;
  },
  r: Reply,
  code: number,
  message: string,
) {
  t.is(r.status, 500, r.text);
  t.deepEqual(r.body.result, { status: false, error: { code, message } });
  t.is(r.body.detail, null);
  t.is(r.body.id, 1);
  for (const leak of ['stack', '    at ', 'knex', 'Error:', '.ts:', 'node_modules', 'secret boom'])
    t.false(r.text.includes(leak), `body leaks "${leak}": ${r.text}`);
}

test('database gone: /validate/check, polltransaction, /auth and /token are 500 code -600 without detail', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const h = await asAdmin(w);
  await w.deps.store.knex.destroy();

  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  assertOpaque(t, r, -600, 'A database error occurred.');
  t.is(r.headers.get('cache-control'), 'no-cache');
  assertOpaque(
    t,
    await w.call('GET', '/validate/polltransaction', { transaction_id: '12345678901234567890' }),
    -600,
    'A database error occurred.',
  );
  assertOpaque(t, await w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' }), -600, 'A database error occurred.');
  assertOpaque(t, await w.call('GET', '/token/', {}, { headers: h }), -600, 'A database error occurred.');

  const failed = w.seen
    .filter((e) => e.name === 'request.failed')
    .map((e) => e.payload as { status: number; code: number; error: string; stack?: string; path: string });
  t.true(failed.length >= 4);
  t.like(failed[0], { status: 500, code: -600, path: '/validate/check' });
  t.truthy(failed[0]!.stack, 'the stack is logged');
  t.not(failed[0]!.error, 'A database error occurred.', 'the log has the driver detail');
  t.true(
    w.seen.some((e) => e.name === 'audit.write_failed'),
    'the audit write failure is reported, not shown',
  );
});

test('an unexpected exception is 500 code -500 with a generic message; the detail is logged', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  (w.deps.realms as { resolveUser: unknown }).resolveUser = () => {
    throw new TypeError('secret boom');
  };
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  assertOpaque(t, r, -500, 'An internal error occurred.');
  const failed = w.seen.find((e) => e.name === 'request.failed')!.payload as {
    status: number;
    code: number;
    error: string;
    stack?: string;
  };
  t.like(failed, { status: 500, code: -500, error: 'secret boom' });
  t.regex(failed.stack ?? '', /TypeError: secret boom/);
  const rows = await w.deps.store.audit.tail(10);
  t.like(rows.at(-1), { action: 'POST /validate/check', outcome: 'ERROR', info: { error: 'An internal error occurred.' } });
});

test('client errors are not logged as failures with a stack', async (t) => {
  const w = await world(t);
  await check(w, { user: 'alice' });
  const failed = w.seen.find((e) => e.name === 'request.failed')!.payload as { status: number; stack?: string };
  t.is(failed.status, 400);
  t.is(failed.stack, undefined);
});

test('/healthz reports ok with the database, and 500 once it is gone', async (t) => {
  const w = await world(t);
  const ok = await w.call('GET', '/healthz');
  t.is(ok.status, 200);
  t.like(ok.body, { result: { status: true, value: { status: 'ok', database: w.deps.store.dialect, pin_queue: 0 } } });
  await w.deps.store.knex.destroy();
  const down = await w.call('GET', '/healthz');
  t.is(down.status, 500);
  t.false(down.text.includes('    at '));
});
