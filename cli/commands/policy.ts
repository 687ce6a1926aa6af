/** `pushgate policy check|explain`: validate policies without starting the server; show what applies to whom. */
import type { Argv } from 'yargs';
import { allActions, collectPolicies } from '../../server/deps.ts';
import { ConfigError, UserError } from '../../server/errors.ts';
import { findAction } from '../../policies/actions.ts';
import { loadPolicyFiles } from '../../policies/load.ts';
import { parseIp } from '../../policies/match.ts';
import { SCOPES, type ActionDef, type ActionValue, type PolicyDef, type Scope, type Who } from '../../policies/types.ts';
import { waitPolicyWarnings } from '../../server/auth/wait.ts';
import { ALL_TOKEN_TYPES, createTokenRegistry } from '../../tokens/index.ts';
import type { CliContext, GlobalArgs } from '../context.ts';
import { formatTable, formatValue } from '../format.ts';

const UNITS: ReadonlyArray<[string, number]> = [['y', 365 * 86_400_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]];

function displayValue(def: ActionDef | undefined, v: ActionValue | undefined): string {
  if (def?.type === 'duration' && typeof v === 'number') {
    const unit = UNITS.find(([, ms]) => v % ms === 0 && v >= ms);
    return unit ? `${v / unit[1]}${unit[0]}` : `${v}ms`;
  }
  return formatValue(v);
}

export function policyCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('policy', 'Check and explain policies', (policy) => policy
    .command('check [file]', 'Validate the policies of the config (or one policy file); lists every problem with its path',
      (b) => b.positional('file', { type: 'string', describe: 'A policy file (default: the policies of the config)' }),
      (argv) => ctx.run(async () => {
        let policies: PolicyDef[];
        const config = ctx.config(argv);
        if (argv.file !== undefined) {
          const parsed = loadPolicyFiles([argv.file], allActions());
          if (parsed.problems.length) throw new ConfigError(parsed.problems);
          policies = parsed.policies;
        } else {
          policies = collectPolicies(config, allActions());
        }
        // Valid but pointless settings: reported, not refused (the server logs the same as config.warning).
        const warnings = waitPolicyWarnings(config, policies, createTokenRegistry(ALL_TOKEN_TYPES));
        for (const w of warnings) ctx.warn(`warning: ${w}`);
        ctx.out(`ok: ${policies.length} policies${warnings.length ? `, ${warnings.length} warning${warnings.length > 1 ? 's' : ''}` : ''}`);
      }))
    .command('explain', 'Show each action\'s value for a user and the policy it came from', (b) => b
      .option('scope', { type: 'string', choices: SCOPES, demandOption: true, describe: 'Policy scope' })
      .option('user', { type: 'string', demandOption: true, describe: 'User (or user@realm)' })
      .option('realm', { type: 'string', describe: 'Realm (default: the default realm)' })
      .option('client', { type: 'string', describe: 'Client IP address' })
      .option('json', { type: 'boolean', describe: 'JSON output' })
      .check((a) => {
        if (a.client !== undefined && parseIp(a.client) === null) throw new Error(`--client must be an IP address, got '${a.client}'`);
        return true;
      }),
    (argv) => ctx.run(() => ctx.withDeps(argv, async (deps) => {
      const scope = argv.scope as Scope;
      let user: NonNullable<Who['user']>;
      try {
        const u = deps.realms.resolveUser(argv.user, argv.realm);
        user = { name: u.name, realm: u.realm, resolver: u.resolver };
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        ctx.warn(`note: ${err.message} Matching the name as given.`);
        user = { name: argv.user, realm: argv.realm ?? deps.realms.defaultRealm, resolver: '' };
      }
      const who: Who = { user, client: argv.client };
      const matched = deps.policies.resolve(scope, who).matched;
      const rows = deps.policies.explain(scope, who).map((e) => ({
        action: e.action, value: e.value ?? null, from: e.from, default: !e.conflict && e.from.length === 0 && e.value !== undefined,
        ...(e.conflict ? { conflict: e.conflict } : {}),
      }));
      if (argv.json) {
        ctx.out(JSON.stringify({ scope, user: user.name, realm: user.realm, resolver: user.resolver, client: argv.client ?? null, matched, actions: rows }));
        return;
      }
      ctx.out(`scope: ${scope}  user: ${user.name}@${user.realm}  client: ${argv.client ?? '-'}`);
      ctx.out(`matched policies: ${matched.length ? matched.join(', ') : '(none)'}\n`);
      ctx.out(formatTable(['ACTION', 'VALUE', 'FROM'], rows.map((r) => [
        r.action,
        r.conflict ? 'CONFLICT' : displayValue(findAction(deps.policies.actions, scope, r.action), r.value ?? undefined),
        r.conflict ?? (r.default ? '(default)' : r.from.length ? r.from.join(', ') : '(not set)'),
      ])));
    })))
    .demandCommand(1, 'Specify a policy command: check or explain'));
}
