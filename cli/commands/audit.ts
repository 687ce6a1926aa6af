/** `pushgate audit tail`: the newest audit rows, oldest first; with --follow, then every new row as it comes. */
import { MessageChannel } from 'node:worker_threads';
import type { Argv } from 'yargs';
import type { Clock } from '../../core/clock.ts';
import type { AuditFilter, AuditRow } from '../../server/store/audit_repo.ts';
import type { CliContext, GlobalArgs } from '../context.ts';
import { formatTable, formatTime, formatValue } from '../format.ts';

export function auditJson(r: AuditRow): Record<string, unknown> {
  return {
    id: r.id,
    time: formatTime(r.time),
    node: r.node,
    action: r.action,
    success: r.success,
    outcome: r.outcome,
    user: r.username,
    realm: r.realm,
    serials: r.serials,
    client: r.client,
    admin: r.admin,
    transaction_id: r.transactionId,
    policies: r.policies,
    info: r.info,
    request_id: r.requestId,
    application: r.application,
  };
}

const HEADERS = ['TIME', 'NODE', 'ACTION', 'OUTCOME', 'USER', 'REALM', 'SERIALS', 'CLIENT', 'ADMIN', 'POLICIES', 'APP', 'REQUEST', 'INFO'];
/** Column caps of the table (the full values: --json). TIME and OUTCOME are short by construction; INFO is last. */
const MAX_WIDTHS = [24, 12, 30, 9, 20, 12, 20, 39, 12, 20, 16, 36, undefined];
const cells = (r: AuditRow): string[] => [
  formatTime(r.time),
  r.node ?? '-',
  r.action,
  r.outcome,
  r.username ?? '-',
  r.realm ?? '-',
  formatValue(r.serials),
  r.client ?? '-',
  r.admin ?? '-',
  formatValue(r.policies),
  r.application ?? '-',
  r.requestId ?? '-',
  Object.keys(r.info).length ? JSON.stringify(r.info) : '',
];

/** Resolves after `ms` of `clock`, or at once when `signal` aborts. */
function pause(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const cancel = clock.schedule(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Keeps the process alive while following (the clock's timers do not hold the event loop); Ctrl-C ends it.
 * A message port is a handle that is not a timer, so no time is read outside the clock.
 */
function holdProcess(): () => void {
  const { port1 } = new MessageChannel();
  port1.on('message', () => {});
  return () => port1.close();
}

export function auditCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('audit', 'Read the audit trail', (audit) =>
    audit
      .command(
        'tail',
        'Show the newest audit rows (filters combine: every given one must match)',
        (b) =>
          b
            .option('n', { alias: 'lines', type: 'number', default: 20, describe: 'How many rows' })
            .option('json', { type: 'boolean', describe: 'One JSON object per line' })
            .option('follow', { alias: 'f', type: 'boolean', describe: 'Keep printing new rows as they are written (Ctrl-C ends)' })
            .option('interval', { type: 'number', default: 1, describe: 'With --follow: seconds between looks at the audit table' })
            .option('user', { type: 'string', describe: 'Only rows of this user name' })
            .option('serial', { type: 'string', describe: 'Only rows naming this token serial' })
            .option('action', {
              type: 'string',
              describe: 'Only rows whose action contains this text (e.g. /validate/check, "token enroll")',
            })
            .option('outcome', { type: 'string', describe: 'Only rows with this outcome: ACCEPT, REJECT, CHALLENGE, DECLINED, ERROR, OK' })
            .check((a) => {
              if (!Number.isInteger(a.n) || a.n < 1) throw new Error('-n must be a positive integer');
              if (!(a.interval > 0 && a.interval <= 3600)) throw new Error('--interval must be a number of seconds above 0 (at most 3600)');
              return true;
            }),
        (argv) =>
          ctx.run(() =>
            ctx.withDeps(argv, async (deps) => {
              const filter: AuditFilter = {
                user: argv.user,
                serial: argv.serial,
                action: argv.action,
                outcome: argv.outcome?.toUpperCase(),
              };
              const print = (rows: AuditRow[], header: boolean) => {
                if (argv.json) {
                  for (const r of rows) ctx.out(JSON.stringify(auditJson(r)));
                  return;
                }
                if (!rows.length) return;
                const table = formatTable(HEADERS, rows.map(cells), { max: MAX_WIDTHS, fixed: argv.follow === true }).split('\n');
                ctx.out((header ? table : table.slice(1)).join('\n'));
              };
              const rows = await deps.store.audit.tail(argv.n, undefined, filter);
              if (!argv.follow) {
                if (!rows.length && !argv.json) ctx.out('no audit rows');
                print(rows, true);
                return;
              }
              // Following: the id of the last row printed (or seen) is the cursor; each look reads every newer row.
              print(rows, true);
              let headed = rows.length > 0 || argv.json === true;
              let cursor = rows.length ? rows[rows.length - 1]!.id : ((await deps.store.audit.tail(1))[0]?.id ?? 0);
              const signal = ctx.io.signal;
              const release = signal ? () => {} : holdProcess();
              try {
                while (!signal?.aborted) {
                  await pause(deps.clock, argv.interval * 1000, signal);
                  if (signal?.aborted) break;
                  for (;;) {
                    const next = await deps.store.audit.after(cursor, 500, filter);
                    if (!next.length) break;
                    print(next, !headed);
                    headed = true;
                    cursor = next[next.length - 1]!.id;
                    if (next.length < 500) break;
                  }
                }
              } finally {
                release();
              }
            }),
          ),
      )
      .demandCommand(1, 'Specify an audit command: tail'),
  );
}
