/**
 * The attacker of bench/attack.ts, in its own process so that its load generation does not distort the parent's
 * latency measurements: `node --import tsx bench/attack_flood.ts '<FloodTask JSON>'` runs autocannon (POST
 * /validate/check, form body) and prints one FloodResult JSON line.
 */
import autocannon from 'autocannon';
import type { FloodResult, FloodTask } from './attack_common.ts';

const task = JSON.parse(process.argv[2] ?? '{}') as FloodTask;
const result = await autocannon({
  url: `${task.url}/validate/check`,
  connections: task.connections,
  duration: task.seconds,
  timeout: 60,
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: task.body,
});
const byStatus: Record<string, number> = {};
for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) byStatus[code] = stat.count;
const out: FloodResult = {
  requests: result.requests.total,
  byStatus,
  errors: result.errors,
  timeouts: result.timeouts,
  p50: result.latency.p50,
  p99: result.latency.p99,
  cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
};
process.stdout.write(JSON.stringify(out) + '\n');
