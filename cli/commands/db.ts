/** `pushgate db migrate|cleanup`. */
import type { Argv } from 'yargs';
import { runCleanup } from '../../server/store/cleanup.ts';
import type { CliContext, GlobalArgs } from '../context.ts';

export function dbCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('db', 'Database maintenance', (db) =>
    db
      .command(
        'migrate',
        'Apply pending schema migrations',
        (b) => b,
        (argv) =>
          ctx.run(() =>
            ctx.withDeps(
              argv,
              async (deps) => {
                const applied = await deps.store.migrate();
                if (!applied.length) ctx.out('database is up to date');
                for (const name of applied) ctx.out(`applied ${name}`);
              },
              { migrate: false, access: 'create' },
            ),
          ),
      )
      .command(
        'cleanup',
        'Delete expired challenges, stale half-enrolled tokens, old audit rows, unused login addresses, day-old push back-off rows, self-service sessions past their timeouts, old request nonces and old webhook events',
        (b) => b,
        (argv) =>
          ctx.run(() =>
            ctx.withDeps(argv, async (deps) => {
              const r = await runCleanup(deps);
              ctx.out(
                `deleted ${r.challenges} challenges, ${r.tokens} tokens, ${r.audit} audit rows, ${r.loginAddresses} login addresses, ${r.pushBackoff} push back-off rows, ${r.selfserviceSessions} self-service sessions, ${r.nonces} request nonces, ${r.webhooks} webhook events`,
              );
            }),
          ),
      )
      .demandCommand(1, 'Specify a db command: migrate or cleanup'),
  );
}
