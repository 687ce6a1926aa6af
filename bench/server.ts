/**
 * Benchmark server child: `node --import tsx bench/server.ts CONFIG USERS`.
 * Enrolls USERS spass tokens (users sp0…) and USERS HOTP tokens (users ho0…, keys from bench/common.ts), all with
 * the PIN from common.ts, through buildDeps + enrollToken (PIN hashes use the config's argon2 parameters — the
 * parameters are stored in each hash, so they decide the verify cost), then runs startServer on the same config
 * and prints `READY <url>`. Answers `{type: 'stats'}` on the IPC channel; SIGTERM stops it.
 */
import { loadConfig } from '../server/config.ts';
import { buildDeps } from '../server/deps.ts';
import { enrollToken } from '../server/auth/tokens_admin.ts';
import { startServer } from '../server/main.ts';
import { PIN, hotpKey, hotpUser, spassUser, type StatsReply } from './common.ts';

const [configFile, usersArg] = process.argv.slice(2);
if (!configFile || !usersArg) {
  process.stderr.write('usage: bench/server.ts CONFIG USERS\n');
  process.exit(2);
}
const users = Number(usersArg);
const config = loadConfig(configFile);

// Enrollment with two PIN hashes at a time (both cores; nothing else runs yet).
const enrollDeps = await buildDeps({ ...config, pin: { ...config.pin, maxConcurrent: 2 } });
const jobs: Array<() => Promise<unknown>> = [];
for (let i = 0; i < users; i++) {
  jobs.push(() => enrollToken(enrollDeps, { type: 'spass', serial: `BSP${i}`, user: spassUser(i), pin: PIN, params: {} }));
  jobs.push(() =>
    enrollToken(enrollDeps, {
      type: 'hotp',
      serial: `BHO${i}`,
      user: hotpUser(i),
      pin: PIN,
      params: { otpkey: hotpKey(i).toString('hex'), otplen: '6', hashlib: 'sha1' },
    }),
  );
}
const t0 = performance.now();
for (let i = 0; i < jobs.length; i += 8) await Promise.all(jobs.slice(i, i + 8).map((job) => job()));
const enrollMs = performance.now() - t0;
await enrollDeps.close();

const running = await startServer(configFile, {
  config,
  log: (line) => process.stderr.write(line + '\n'),
});
process.on('message', (msg: unknown) => {
  if ((msg as { type?: string } | null)?.type !== 'stats') return;
  const cpu = process.cpuUsage();
  const reply: StatsReply = {
    type: 'stats',
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    pinActive: running.deps.pins.limiter.active,
    pinWaiting: running.deps.pins.limiter.waiting,
    rssBytes: process.memoryUsage().rss,
  };
  process.send?.(reply);
});
process.once('SIGTERM', () => {
  void running.stop('SIGTERM').then(() => process.exit(0));
});
// A serving node keeps RSA-4096 server keys ready for push enrollment (server/auth/push_services.ts startServing); making
// them takes seconds of CPU on the thread pool. They are waited for here, so that they do not count against the first
// measurement (the 2026-12-01 run without this wait showed spass at concurrency 1 at twice its CPU per answer).
const keygenStarted = performance.now();
while (running.deps.push.keys.ready < running.deps.push.keys.size && performance.now() - keygenStarted < 120_000)
  await new Promise((resolve) => setTimeout(resolve, 100));
process.stdout.write(
  `READY ${running.url} ${JSON.stringify({ tokens: jobs.length, enrollMs: Math.round(enrollMs), pinMaxConcurrent: config.pin.maxConcurrent })}\n`,
);
