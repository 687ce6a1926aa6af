/** `pushgate admin add|list|delete`: administrators of the /auth + /token API. */
import type { Argv } from 'yargs';
import { CliError, readSecret, type CliContext, type GlobalArgs } from '../context.ts';
import { formatTable, formatTime } from '../format.ts';
import { COLUMN_LIMITS, charLength } from '../../server/store/limits.ts';

export function adminCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('admin', 'Manage administrators', (admin) =>
    admin
      .command(
        'add <name>',
        'Add an administrator; the password is read from stdin',
        (b) =>
          b
            .positional('name', { type: 'string', demandOption: true, describe: 'Login name' })
            .option('password-stdin', {
              type: 'boolean',
              demandOption: true,
              describe: 'Read the password from stdin (one trailing newline is dropped)',
            })
            .check((a) => {
              if (a.name.trim() === '') throw new Error('The administrator name must not be empty');
              if (charLength(a.name) > COLUMN_LIMITS.admins.username)
                throw new Error(`The administrator name must be at most ${COLUMN_LIMITS.admins.username} characters`);
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            if (!argv.passwordStdin) throw new CliError('--password-stdin is required');
            const password = await readSecret(ctx.io, 'password');
            await ctx.withDeps(
              argv,
              (deps) =>
                ctx.audited(deps, { action: 'cli admin add', username: argv.name }, async () => {
                  if (await deps.store.admins.byName(argv.name)) throw new CliError(`administrator ${argv.name} already exists`);
                  await deps.store.admins.insert(argv.name, await deps.pins.hash(password), deps.clock.now());
                }),
              { access: 'create' },
            );
            ctx.out(`added administrator ${argv.name}`);
          }),
      )
      .command(
        'list',
        'List administrators',
        (b) => b.option('json', { type: 'boolean', describe: 'JSON output' }),
        (argv) =>
          ctx.run(() =>
            ctx.withDeps(argv, async (deps) => {
              const admins = await deps.store.admins.list();
              if (argv.json) ctx.out(JSON.stringify(admins.map((a) => ({ username: a.username, created: a.createdAt }))));
              else if (!admins.length) ctx.out('no administrators');
              else
                ctx.out(
                  formatTable(
                    ['USERNAME', 'CREATED'],
                    admins.map((a) => [a.username, formatTime(a.createdAt)]),
                  ),
                );
            }),
          ),
      )
      .command(
        'delete <name>',
        'Delete an administrator',
        (b) => b.positional('name', { type: 'string', demandOption: true, describe: 'Login name' }),
        (argv) =>
          ctx.run(async () => {
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli admin delete', username: argv.name }, async () => {
                if (!(await deps.store.admins.delete(argv.name))) throw new CliError(`no administrator ${argv.name}`);
              }),
            );
            ctx.out(`deleted administrator ${argv.name}`);
          }),
      )
      .demandCommand(1, 'Specify an admin command: add, list or delete'),
  );
}
