/** `pushgate audit tail`: the newest audit rows, oldest first. */
import type { Argv } from 'yargs';
import type { AuditRow } from '../../server/store/audit_repo.ts';
import type { CliContext, GlobalArgs } from '../context.ts';
import { formatTable, formatTime, formatValue } from '../format.ts';

export function auditJson(r: AuditRow): Record<string, unknown> {
  return {
    id: r.id, time: formatTime(r.time), action: r.action, success: r.success, outcome: r.outcome, user: r.username,
    realm: r.realm, serials: r.serials, client: r.client, admin: r.admin, transaction_id: r.transactionId,
    policies: r.policies, info: r.info,
  };
}

export function auditCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('audit', 'Read the audit trail', (audit) => audit
    .command('tail', 'Show the newest audit rows', (b) => b
      .option('n', { alias: 'lines', type: 'number', default: 20, describe: 'How many rows' })
      .option('json', { type: 'boolean', describe: 'One JSON object per line' })
      .check((a) => {
        if (!Number.isInteger(a.n) || a.n < 1) throw new Error('-n must be a positive integer');
        return true;
      }),
    (argv) => ctx.run(() => ctx.withDeps(argv, async (deps) => {
      const rows = await deps.store.audit.tail(argv.n);
      if (argv.json) { for (const r of rows) ctx.out(JSON.stringify(auditJson(r))); return; }
      if (!rows.length) { ctx.out('no audit rows'); return; }
      ctx.out(formatTable(['TIME', 'ACTION', 'OUTCOME', 'USER', 'REALM', 'SERIALS', 'CLIENT', 'ADMIN', 'POLICIES', 'INFO'], rows.map((r) => [
        formatTime(r.time), r.action, r.outcome, r.username ?? '-', r.realm ?? '-', formatValue(r.serials), r.client ?? '-',
        r.admin ?? '-', formatValue(r.policies), Object.keys(r.info).length ? JSON.stringify(r.info) : '',
      ])));
    })))
    .demandCommand(1, 'Specify an audit command: tail'));
}
