/**
 * `pushgate app add|list|show|rotate-secret|disable|enable|delete|webhook|deliveries|stats`: applications that sign
 * their requests to the push API, approvals and /validate (issue 15; README "Applications").
 */
import type { Argv } from 'yargs';
import { addApp, appView, deleteApp, requireApp, rotateAppSecret, setAppActive, setAppWebhook } from '../../server/auth/apps_admin.ts';
import { appStats } from '../../server/auth/app_stats.ts';
import type { CliContext, GlobalArgs } from '../context.ts';
import { formatFields, formatTable, formatTime, formatValue, yesNo } from '../format.ts';

const nameArg = <T>(b: Argv<T>) => b.positional('name', { type: 'string', demandOption: true, describe: 'Application name' });
const jsonOpt = <T>(b: Argv<T>, what: string) => b.option('json', { type: 'boolean', describe: what });
const eventsList = (s: string | undefined): string[] | null =>
  s === undefined || s.trim() === ''
    ? null
    : s
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean);

export function appCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('app', 'Applications: services that sign requests to the push API, approvals and /validate', (a) =>
    a
      .command(
        'add <name>',
        'Create an application; prints its id and its secret ONCE',
        (b) =>
          jsonOpt(
            nameArg(b)
              .option('realm', { type: 'string', describe: 'Only users of this realm' })
              .option('webhook', { type: 'string', describe: 'Webhook URL (events are POSTed there, signed)' })
              .option('events', { type: 'string', describe: 'Comma-separated webhook events (default: all)' }),
            'Print {"id": …, "secret": …} only',
          ),
        (argv) =>
          ctx.run(async () => {
            const { app, secret } = await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli app add', info: { name: argv.name, realm: argv.realm ?? null } }, () =>
                addApp(deps, {
                  name: argv.name,
                  realm: argv.realm ?? null,
                  webhookUrl: argv.webhook ?? null,
                  webhookEvents: eventsList(argv.events),
                }),
              ),
            );
            if (argv.json) ctx.out(JSON.stringify({ id: app.id, secret }));
            else {
              ctx.out(
                formatFields([
                  ['id', app.id],
                  ['secret', secret],
                ]),
              );
              ctx.out('The secret is shown only now: store it with the service (it signs every request).');
            }
          }),
      )
      .command(
        'list',
        'List applications',
        (b) => jsonOpt(b, 'JSON array'),
        (argv) =>
          ctx.run(async () => {
            const apps = await ctx.withDeps(argv, (deps) => deps.store.apps.list());
            if (argv.json) return ctx.out(JSON.stringify(apps.map(appView)));
            ctx.out(
              formatTable(
                ['NAME', 'ID', 'REALM', 'ACTIVE', 'WEBHOOK'],
                apps.map((x) => [x.name, x.id, x.realm ?? '-', yesNo(x.active), x.webhookUrl ?? '-']),
              ),
            );
          }),
      )
      .command(
        'show <name>',
        'Show one application (never its secret)',
        (b) => jsonOpt(nameArg(b), 'JSON object'),
        (argv) =>
          ctx.run(async () => {
            const app = await ctx.withDeps(argv, (deps) => requireApp(deps, argv.name));
            if (argv.json) return ctx.out(JSON.stringify(appView(app)));
            ctx.out(
              formatFields([
                ['name', app.name],
                ['id', app.id],
                ['realm', app.realm ?? '-'],
                ['active', yesNo(app.active)],
                ['webhook', app.webhookUrl ?? '-'],
                ['webhook events', formatValue(app.webhookEvents ?? 'all')],
                ['created', formatTime(app.createdAt)],
                ['updated', formatTime(app.updatedAt)],
              ]),
            );
          }),
      )
      .command(
        'rotate-secret <name>',
        'Give an application a new secret (the old one stops working at once); prints it ONCE',
        (b) => jsonOpt(nameArg(b), 'Print {"id": …, "secret": …} only'),
        (argv) =>
          ctx.run(async () => {
            const { app, secret } = await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli app rotate-secret', info: { name: argv.name } }, () => rotateAppSecret(deps, argv.name)),
            );
            if (argv.json) ctx.out(JSON.stringify({ id: app.id, secret }));
            else
              ctx.out(
                formatFields([
                  ['id', app.id],
                  ['secret', secret],
                ]),
              );
          }),
      )
      .command(
        'disable <name>',
        'Refuse every request of an application (its pushes and webhooks stop)',
        (b) => nameArg(b),
        (argv) =>
          ctx.run(async () => {
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli app disable', info: { name: argv.name } }, () => setAppActive(deps, argv.name, false)),
            );
            ctx.out(`application ${argv.name} disabled`);
          }),
      )
      .command(
        'enable <name>',
        'Accept the requests of a disabled application again',
        (b) => nameArg(b),
        (argv) =>
          ctx.run(async () => {
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli app enable', info: { name: argv.name } }, () => setAppActive(deps, argv.name, true)),
            );
            ctx.out(`application ${argv.name} enabled`);
          }),
      )
      .command(
        'delete <name>',
        'Delete an application (its secret stops working at once)',
        (b) => nameArg(b),
        (argv) =>
          ctx.run(async () => {
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli app delete', info: { name: argv.name } }, () => deleteApp(deps, argv.name)),
            );
            ctx.out(`application ${argv.name} deleted`);
          }),
      )
      .command(
        'webhook <name> [url]',
        'Set (or with --off remove) the webhook of an application',
        (b) =>
          nameArg(b)
            .positional('url', { type: 'string', describe: 'Webhook URL' })
            .option('events', { type: 'string', describe: 'Comma-separated webhook events (default: all)' })
            .option('off', { type: 'boolean', describe: 'Remove the webhook' })
            .check((x) => {
              if (!x.off && !x.url) throw new Error('Give a webhook URL or --off');
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            const url = argv.off ? null : (argv.url ?? null);
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli app webhook', info: { name: argv.name, url } }, () =>
                setAppWebhook(deps, argv.name, url, eventsList(argv.events)),
              ),
            );
            ctx.out(url ? `webhook of ${argv.name}: ${url}` : `webhook of ${argv.name} removed`);
          }),
      )
      .command(
        'deliveries <name>',
        'The webhook delivery log of an application (newest first, with every attempt)',
        (b) => jsonOpt(nameArg(b).option('limit', { type: 'number', default: 20, describe: 'Events to show' }), 'JSON array'),
        (argv) =>
          ctx.run(async () => {
            const rows = await ctx.withDeps(argv, async (deps) => {
              const app = await requireApp(deps, argv.name);
              return deps.store.webhooks.log(app.id, Math.max(1, Math.min(1000, Math.floor(argv.limit))));
            });
            if (argv.json)
              return ctx.out(
                JSON.stringify(
                  rows.map((r) => ({
                    event_id: r.eventId,
                    event: r.event,
                    status: r.status,
                    attempts: r.attempts,
                    created_at: r.createdAt,
                    delivered_at: r.deliveredAt,
                    next_at: r.status === 'pending' ? r.nextAt : null,
                    tries: r.tries.map((x) => ({ attempt: x.attempt, at: x.at, status: x.status, error: x.error, ms: x.ms })),
                  })),
                ),
              );
            ctx.out(
              formatTable(
                ['CREATED', 'EVENT', 'ID', 'STATUS', 'ATTEMPTS', 'LAST'],
                rows.map((r) => {
                  const last = r.tries.at(-1);
                  return [
                    formatTime(r.createdAt),
                    r.event,
                    r.eventId,
                    r.status === 'pending' && r.attempts > 0 ? `retry at ${formatTime(r.nextAt)}` : r.status,
                    String(r.attempts),
                    last ? `${last.status ?? '-'} ${last.error ?? 'ok'} (${last.ms} ms)` : '-',
                  ];
                }),
                { max: [undefined, undefined, undefined, undefined, undefined, 80] },
              ),
            );
          }),
      )
      .command(
        'stats <name>',
        'Statistics per day: pushes, approvals, declines, timeouts, median and p95 time to answer',
        (b) =>
          jsonOpt(
            nameArg(b)
              .option('since', { type: 'string', describe: 'First day (YYYY-MM-DD; default: 30 days ago)' })
              .check((x) => {
                if (x.since !== undefined && (!/^\d{4}-\d{2}-\d{2}$/.test(x.since) || Number.isNaN(Date.parse(x.since))))
                  throw new Error('--since must be a date (YYYY-MM-DD)');
                return true;
              }),
            'JSON array of days',
          ),
        (argv) =>
          ctx.run(async () => {
            const days = await ctx.withDeps(argv, async (deps) => {
              const app = await requireApp(deps, argv.name);
              return appStats(deps, app.id, argv.since ? Date.parse(argv.since) : undefined);
            });
            if (argv.json) return ctx.out(JSON.stringify(days));
            const s = (v: number | null) => (v === null ? '-' : v.toFixed(1));
            ctx.out(
              formatTable(
                ['DAY', 'PUSHES', 'APPROVED', 'DECLINED', 'TIMEOUTS', 'WITHDRAWN', 'MEDIAN S', 'P95 S'],
                days.map((d) => [
                  d.day,
                  String(d.challenges),
                  String(d.approvals),
                  String(d.declines),
                  String(d.timeouts),
                  String(d.withdrawn),
                  s(d.median_seconds),
                  s(d.p95_seconds),
                ]),
              ),
            );
          }),
      )
      .demandCommand(1, 'Specify an app command: add, list, show, rotate-secret, disable, enable, delete, webhook, deliveries, stats'),
  );
}
