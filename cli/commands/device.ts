/**
 * `pushgate device …`: the reference device client of the open device protocol v2 (cli/device_client.ts,
 * docs/device-protocol.md). It talks HTTP to a server and keeps its keys in `--store FILE` (mode 0600; default
 * `~/.config/pushgate/device.json`). It never reads the server's config or database.
 *   device enroll URL              enroll from an edupush enrollment URL (`/token/init`, `pushgate token enroll`)
 *   device list [--json]           the pending requests of every enrolled device, now
 *   device listen [--json] [--once] [--sse]   print each request as it arrives (long-poll, or SSE)
 *   device approve ID / device decline ID [--reason R]   answer; exit 0 when the server took the answer
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv } from 'yargs';
import type { CliContext, GlobalArgs } from '../context.ts';
import { CliError } from '../context.ts';
import {
  answer,
  defaultStorePath,
  DeviceClientError,
  discover,
  enrollDevice,
  pollOnce,
  readStore,
  streamOnce,
  writeStore,
  type ShownRequest,
  type StoredDevice,
} from '../device_client.ts';
import type { AuthMode, DeviceKeyType } from '../../tokens/push/device.ts';

interface StoreArgs extends GlobalArgs {
  store?: string;
  serial?: string;
}

const RETRY_MS = 2000;

export function deviceCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  const storeFile = (a: StoreArgs) => a.store || defaultStorePath(ctx.io.env ?? process.env);
  const devicesOf = (a: StoreArgs): StoredDevice[] => {
    const all = readStore(storeFile(a)).devices;
    const chosen = a.serial ? all.filter((d) => d.serial === a.serial) : all;
    if (!chosen.length) throw new CliError(a.serial ? `no device ${a.serial} in ${storeFile(a)}` : `no device enrolled in ${storeFile(a)}`);
    return chosen;
  };
  const run = (fn: () => Promise<void>) =>
    ctx.run(async () => {
      try {
        await fn();
      } catch (err) {
        if (err instanceof DeviceClientError) throw new CliError(err.message);
        throw err;
      }
    });
  const human = (r: ShownRequest) =>
    `${r.serial}  ${r.id}  ${r.code ? `code ${r.code}  ` : ''}${JSON.stringify(r.question)}  (${r.title})  expires ${new Date(r.expires_at).toISOString()}`;
  const print = (r: ShownRequest, json: boolean) =>
    ctx.out(
      json
        ? JSON.stringify({ id: r.id, serial: r.serial, question: r.question, title: r.title, code: r.code, expires_at: r.expires_at })
        : human(r),
    );

  return y.command('device', 'The reference device client of the device protocol v2 (a desktop authenticator)', (k) =>
    k
      .option('store', { type: 'string', describe: 'Key store file (default: ~/.config/pushgate/device.json, created 0600)' })
      .command(
        'enroll <url>',
        'Enroll this computer as a v2 device from an edupush enrollment URL',
        (b) =>
          b
            .positional('url', { type: 'string', demandOption: true, describe: 'The enrollment URL (edumfa-push://…)' })
            .option('key-type', { choices: ['ed25519', 'ec', 'rsa'] as const, default: 'ed25519' as const, describe: 'Device key type' })
            .option('rsa-bits', { choices: [2048, 3072, 4096], default: 4096, describe: 'RSA key length' })
            .option('auth-mode', { choices: ['strict', 'lax'] as const, describe: 'Claimed mode (default: what the server asks)' }),
        (argv) =>
          run(async () => {
            const file = storeFile(argv);
            const store = readStore(file);
            const device = await enrollDevice(
              argv.url,
              {
                keyType: argv['key-type'] as DeviceKeyType,
                rsaBits: argv['rsa-bits'],
                authMode: argv['auth-mode'] as AuthMode | undefined,
              },
              { signal: ctx.io.signal },
            );
            writeStore(file, { version: 1, devices: [...store.devices.filter((d) => d.serial !== device.serial), device] });
            ctx.out(`enrolled ${device.serial} (${device.key_type}, ${device.auth_mode}) at ${device.server}; keys in ${file}`);
          }),
      )
      .command(
        'list',
        'Print the pending requests of every enrolled device',
        (b) =>
          b.option('json', { type: 'boolean', default: false, describe: 'One JSON line per request' }).option('serial', { type: 'string' }),
        (argv) =>
          run(async () => {
            for (const d of devicesOf(argv)) {
              const { offsetMs } = await discover(d.server, { signal: ctx.io.signal }, d.server_key);
              const r = await pollOnce(d, { signal: ctx.io.signal }, offsetMs, null, 0);
              for (const req of r?.requests ?? []) print(req, argv.json);
            }
          }),
      )
      .command(
        'listen',
        'Wait for requests and print each as it arrives (long-poll; --sse for the event stream)',
        (b) =>
          b
            .option('json', {
              type: 'boolean',
              default: false,
              describe: 'One JSON line per request: id, serial, question, title, code, expires_at',
            })
            .option('once', { type: 'boolean', default: false, describe: 'Exit after the first request' })
            .option('sse', { type: 'boolean', default: false, describe: 'Use the Server-Sent Events stream instead of the long-poll' })
            .option('serial', { type: 'string' }),
        (argv) =>
          run(async () => {
            const devices = devicesOf(argv);
            const stop = new AbortController();
            const signal = ctx.io.signal ? AbortSignal.any([ctx.io.signal, stop.signal]) : stop.signal;
            const seen = new Set<string>();
            const onList = (list: readonly ShownRequest[]): boolean => {
              for (const r of list) {
                if (seen.has(r.id) || stop.signal.aborted) continue;
                seen.add(r.id);
                print(r, argv.json);
                if (argv.once) {
                  stop.abort();
                  return true;
                }
              }
              return false;
            };
            const follow = async (d: StoredDevice) => {
              let etag: string | null = null;
              let offsetMs: number | null = null;
              while (!signal.aborted) {
                try {
                  offsetMs ??= (await discover(d.server, { signal }, d.server_key)).offsetMs;
                  if (argv.sse) etag = await streamOnce(d, { signal }, offsetMs, etag, (_e, list) => onList(list));
                  else {
                    const r = await pollOnce(d, { signal }, offsetMs, etag);
                    if (r) {
                      etag = r.etag;
                      onList(r.requests);
                    }
                  }
                } catch (err) {
                  if (signal.aborted) return;
                  if (err instanceof DeviceClientError && /HTTP 4\d\d/.test(err.message) && !/HTTP 401/.test(err.message)) throw err;
                  ctx.warn(`warning: ${d.serial}: ${err instanceof Error ? err.message : String(err)}; retrying`);
                  offsetMs = null; // a 401 may be a clock that moved: learn the offset again
                  await sleep(RETRY_MS, undefined, { signal }).catch(() => {});
                }
              }
            };
            await Promise.all(devices.map(follow));
          }),
      )
      .command(
        'approve <id>',
        'Approve a pending request (exit 0 when the server took the answer)',
        (b) => b.positional('id', { type: 'string', demandOption: true }).option('serial', { type: 'string' }),
        (argv) => run(() => answerCommand(argv, argv.id, 'accept', undefined)),
      )
      .command(
        'decline <id>',
        'Decline a pending request, with an optional reason (exit 0 when the server took the answer)',
        (b) =>
          b
            .positional('id', { type: 'string', demandOption: true })
            .option('reason', { type: 'string', describe: 'Why (sent signed to the server, shown in its audit)' })
            .option('serial', { type: 'string' }),
        (argv) => run(() => answerCommand(argv, argv.id, 'decline', argv.reason)),
      )
      .demandCommand(1, 'Specify a device command: enroll, list, listen, approve or decline'),
  );

  /** The device a request id belongs to: the only one, else the one whose pending list holds it. */
  async function answerCommand(a: StoreArgs, id: string, decision: 'accept' | 'decline', reason: string | undefined): Promise<void> {
    const devices = devicesOf(a);
    let owner = devices.length === 1 ? devices[0]! : null;
    for (const d of owner ? [] : devices) {
      const { offsetMs } = await discover(d.server, { signal: ctx.io.signal }, d.server_key);
      const r = await pollOnce(d, { signal: ctx.io.signal }, offsetMs, null, 0);
      if (r?.requests.some((x) => x.id === id)) {
        owner = d;
        break;
      }
    }
    if (!owner) throw new CliError(`no enrolled device has a pending request ${id}; name it with --serial`);
    await answer(owner, id, decision, reason, { signal: ctx.io.signal });
    ctx.out(`${decision === 'accept' ? 'approved' : 'declined'} ${id}`);
  }
}
