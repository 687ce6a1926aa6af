/**
 * `pushgate apikey create`: API keys for the /validate endpoints, needed where the authorization policy
 * `api_key_required` applies. A key is a JWT with role `validate`, signed with the secrets key (as eduMFA's
 * `api createtoken -r validate`): every node accepts it, and only a new secrets key revokes it before it expires.
 */
import type { Argv } from 'yargs';
import { apiKeyClaims, signJwt } from '../../server/auth/jwt.ts';
import type { CliContext, GlobalArgs } from '../context.ts';

export function apikeyCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('apikey', 'API keys for the /validate endpoints (policy api_key_required)', (k) =>
    k
      .command(
        'create',
        'Print a new API key: a JWT with role validate, signed with the secrets key',
        (b) =>
          b
            .option('days', { type: 'number', default: 365, describe: 'Days the key is valid' })
            .option('name', {
              type: 'string',
              default: 'validate',
              describe: 'A name for the key, carried in it (e.g. the client it is for)',
            })
            .check((a) => {
              if (!Number.isInteger(a.days) || a.days < 1 || a.days > 3650) throw new Error('--days must be a whole number from 1 to 3650');
              if (a.name.trim() === '') throw new Error('--name must not be empty');
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            const key = await ctx.withDeps(
              argv,
              (deps) =>
                ctx.audited(deps, { action: 'cli apikey create', info: { name: argv.name, days: argv.days } }, async () =>
                  signJwt(apiKeyClaims(argv.name, deps.clock.now(), argv.days), deps.jwtKey),
                ),
              { access: 'create' },
            );
            ctx.out(key);
          }),
      )
      .demandCommand(1, 'Specify an apikey command: create'),
  );
}
