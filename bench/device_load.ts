/**
 * Device benchmark load child: `node --import tsx bench/device_load.ts URL COUNT RAMP`.
 *
 * COUNT v2 devices (BDEV0…, keys from bench/device_common.ts) each hold a long-poll on `GET /device/v2/challenges`
 * as the reference client does: a correctly signed `Authorization: PushGate-Device …` header per request (a fresh
 * timestamp and signature each cycle), `If-None-Match` with the last ETag, and at once the next poll after every answer
 * (200 or 304). One keep-alive connection per device. At most RAMP devices are between their first request and their
 * first held poll at a time. Prints one JSON line `{"opened", "answers", "errors", "byStatus"}` every second on stdout;
 * SIGTERM ends it.
 */
import http from 'node:http';
import { signDeviceText, signedText } from '../tokens/push/device.ts';
import { deviceKey, loadSerial } from './device_common.ts';

const [base, countArg, rampArg] = process.argv.slice(2);
if (!base || !countArg || !rampArg) {
  process.stderr.write('usage: bench/device_load.ts URL COUNT RAMP\n');
  process.exit(2);
}
const count = Number(countArg);
const ramp = Number(rampArg);
const PATH = '/device/v2/challenges';
const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: Number.POSITIVE_INFINITY });
const byStatus: Record<string, number> = {};
let opened = 0;
let answers = 0;
let errors = 0;
let stopping = false;

function poll(serial: string, key: ReturnType<typeof deviceKey>['privateKey'], etag: string | null): Promise<string | null> {
  const timestamp = String(Date.now());
  const signature = signDeviceText(key, signedText.request('GET', PATH, serial, timestamp));
  return new Promise((resolve) => {
    const req = http.request(
      `${base}${PATH}`,
      {
        agent,
        headers: {
          authorization: `PushGate-Device serial="${serial}", timestamp="${timestamp}", signature="${signature}"`,
          ...(etag ? { 'if-none-match': etag } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          answers++;
          byStatus[res.statusCode ?? 0] = (byStatus[res.statusCode ?? 0] ?? 0) + 1;
          resolve(res.statusCode === 200 ? (res.headers.etag ?? null) : res.statusCode === 304 ? etag : null);
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve(etag);
    });
    req.end();
  });
}

/** One device: the first poll (the list at once), then held polls for ever. */
async function device(i: number, started: () => void): Promise<void> {
  const serial = loadSerial(i);
  const key = deviceKey(serial).privateKey;
  let etag = await poll(serial, key, null);
  opened++;
  started();
  while (!stopping) {
    const next = await poll(serial, key, etag);
    if (next === null)
      await new Promise((r) => setTimeout(r, 2000)); // refused (503, 401): back off as the client does
    else etag = next;
  }
}

const report = setInterval(() => process.stdout.write(`${JSON.stringify({ opened, answers, errors, byStatus })}\n`), 1000);
let inRamp = 0;
const waiters: Array<() => void> = [];
for (let i = 0; i < count; i++) {
  if (inRamp >= ramp) await new Promise<void>((r) => waiters.push(r));
  inRamp++;
  void device(i, () => {
    inRamp--;
    waiters.shift()?.();
  });
}
process.once('SIGTERM', () => {
  stopping = true;
  clearInterval(report);
  agent.destroy();
  process.exit(0);
});
