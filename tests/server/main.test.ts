import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { startServer } from '../../server/main.ts';
import { TEST_PUSH } from '../helpers/test_app.ts';

function tempConfig(t: { teardown(fn: () => void): void }, policies: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-main-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    file,
    `server: { port: 0 }\ndatabase: { url: "sqlite:./db.sqlite" }\nsecrets: { key_file: ./key }\npin: { memory_kib: 1024, time_cost: 1 }\npolicies:\n${policies}`,
  );
  return file;
}

const POLICY_A = '  - { name: a, scope: authentication, actions: { otppin: none } }\n';
const POLICY_B = '  - { name: b, scope: authentication, priority: 2, actions: { passOnNoToken: true } }\n';

test('reload (SIGHUP) swaps in the new policies; a broken file keeps the old set and logs why', async (t) => {
  const file = tempConfig(t, POLICY_A);
  const lines: string[] = [];
  const s = await startServer(file, { push: TEST_PUSH, log: (l) => lines.push(l) });
  t.teardown(() => s.stop());
  t.deepEqual(
    s.deps.policies.policies.map((p) => p.name),
    ['a'],
  );
  const before = (await (await fetch(`${s.url}/validate/check?user=bob&pass=x`)).json()) as any;
  t.is(before.detail.message, 'The user has no tokens assigned');

  fs.appendFileSync(file, POLICY_B);
  s.reload();
  t.deepEqual(s.deps.policies.policies.map((p) => p.name).sort(), ['a', 'b']);
  const after = (await (await fetch(`${s.url}/validate/check?user=bob&pass=x`)).json()) as any;
  t.like(after, { result: { value: true, authentication: 'ACCEPT' } });

  fs.appendFileSync(file, '  - { name: c, scope: authentication, actions: { edupush_wait: -1 } }\n');
  s.reload();
  t.deepEqual(s.deps.policies.policies.map((p) => p.name).sort(), ['a', 'b'], 'old set kept');
  const failed = lines.map((l) => JSON.parse(l)).find((e) => e.event === 'policies.reload_failed');
  t.truthy(failed);
  t.regex(failed.error, /policies\[2\]\.actions\.edupush_wait/);
});

test('start-up refuses a broken configuration with every problem path', async (t) => {
  const file = tempConfig(t, '  - { name: a, scope: nope, actions: {} }\n');
  fs.appendFileSync(file, 'log: { level: loud }\n');
  const err = await t.throwsAsync(() => startServer(file, { log: () => {} }));
  t.regex(err!.message, /log\.level must be one of/);
  const err2 = await t.throwsAsync(() => startServer(tempConfig(t, '  - { name: a, scope: nope, actions: {} }\n'), { log: () => {} }));
  t.regex(err2!.message, /policies\[0\]\.scope/);
});

test('stop drains: a request already being received completes, then the port is closed', async (t) => {
  const file = tempConfig(t, POLICY_A);
  const s = await startServer(file, { push: TEST_PUSH, log: () => {} });
  const body = 'user=bob&pass=x';
  const { port } = new URL(s.url);
  // A POST whose body arrives only after stop() was called: the server has the connection and must finish it.
  const status = new Promise<number>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: Number(port),
        method: 'POST',
        path: '/validate/check',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.flushHeaders();
    s.server.once('request', () => {
      const stopped = s.stop('test');
      req.end(body);
      void stopped;
    });
  });
  t.is(await status, 200);
  await s.stop();
  await t.throwsAsync(() => fetch(`${s.url}/healthz`));
});
