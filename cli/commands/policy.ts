/**
 * `pushgate policy check|explain`: validate policies without starting the server; show what applies to whom.
 * Neither opens the database nor reads the secrets key.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import YAML from 'yaml';
import { ConfigError, UserError, UserStoreError } from '../../core/errors.ts';
import { findAction } from '../../policies/actions.ts';
import { loadPolicyFiles, parsePolicies } from '../../policies/load.ts';
import { parseIp } from '../../policies/match.ts';
import { SCOPES, type ActionDef, type ActionValue, type PolicyDef, type Scope, type Who } from '../../policies/types.ts';
import { systemClock } from '../../core/clock.ts';
import { CONFIG_SECTIONS } from '../../server/config.ts';
import type { Config } from '../../server/config.ts';
import { CliError, type CliContext, type GlobalArgs } from '../context.ts';
import { formatTable, formatValue } from '../format.ts';

const UNITS: ReadonlyArray<[string, number]> = [
  ['y', 365 * 86_400_000],
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
];

/** Top-level keys only a pushgate config has (a policy file is a list, or a mapping with `policies` alone). */
const CONFIG_KEYS = CONFIG_SECTIONS.filter((k) => k !== 'policies');

function displayValue(def: ActionDef | undefined, v: ActionValue | undefined): string {
  if (def?.type === 'duration' && typeof v === 'number') {
    const unit = UNITS.find(([, ms]) => v % ms === 0 && v >= ms);
    return unit ? `${v / unit[1]}${unit[0]}` : `${v}ms`;
  }
  return formatValue(v);
}

const readYaml = (file: string): unknown => {
  try {
    return YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
};

/** The raw policy list of a document: a list, or the `policies` of a mapping. */
const rawList = (doc: unknown): unknown[] => {
  const list = Array.isArray(doc) ? doc : typeof doc === 'object' && doc !== null ? (doc as { policies?: unknown }).policies : undefined;
  return Array.isArray(list) ? list : [];
};

/**
 * Names the policy in each problem: `policies[2].actions.x …` → `policy 'office' (policies[2]): actions.x …`, for
 * inline policies (`inline`) and for policy files (`FILE: policies[2]…`, names read from FILE).
 */
export function nameProblems(problems: readonly string[], inline: readonly unknown[]): string[] {
  const files = new Map<string, unknown[]>();
  const listOf = (file: string | undefined) => {
    if (file === undefined) return inline;
    if (!files.has(file)) files.set(file, rawList(readYaml(file)));
    return files.get(file)!;
  };
  return problems.map((p) => {
    const m = /^(?:(.+?): )?policies\[(\d+)\](\.?)(.*)$/su.exec(p);
    if (!m) return p;
    const [, file, index, dot, rest] = m;
    const entry = listOf(file)[Number(index)] as { name?: unknown } | undefined;
    const name = typeof entry?.name === 'string' && entry.name.trim() !== '' ? `policy '${entry.name.trim()}'` : 'a policy without a name';
    return `${file ? `${file}: ` : ''}${name} (policies[${index}])${dot ? ': ' : ''}${rest}`;
  });
}

export function policyCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('policy', 'Check and explain policies (opens no database, reads no key)', (policy) =>
    policy
      .command(
        'check [file]',
        'Validate policies and list every problem at once. FILE is a POLICY file (a YAML list of policies, or a mapping '
          + 'with only `policies:`), not the config; without FILE the config (--config / PUSHGATE_CONFIG) is checked: its '
          + 'settings, inline policies and policy_files',
        (b) => b.positional('file', { type: 'string', describe: 'A policy file (for the config use --config FILE without FILE)' }),
        (argv) =>
          ctx.run(async () => {
            const { allActions, collectPolicies } = await import('../../server/deps.ts');
            const { waitPolicyWarnings } = await import('../../server/auth/wait.ts');
            const { ALL_TOKEN_TYPES, createTokenRegistry } = await import('../../tokens/index.ts');
            const actions = allActions();
            let policies: PolicyDef[];
            let config: Config | undefined;
            if (argv.file !== undefined) {
              const doc = readYaml(argv.file);
              const configKeys =
                typeof doc === 'object' && doc !== null && !Array.isArray(doc)
                  ? Object.keys(doc).filter((k) => CONFIG_KEYS.includes(k))
                  : [];
              if (configKeys.length) {
                throw new CliError(
                  `${argv.file} is a pushgate config (it has ${configKeys.join(', ')}), not a policy file: `
                    + `check a config with \`pushgate policy check --config ${argv.file}\``,
                );
              }
              const parsed = loadPolicyFiles([argv.file], actions);
              if (parsed.problems.length) throw new ConfigError(nameProblems(parsed.problems, []));
              policies = parsed.policies;
              config = ctx.config(argv);
            } else {
              // Every problem in one run: the config's settings and all its policies, even when the settings are wrong.
              const problems: string[] = [];
              const file = ctx.configFile(argv);
              try {
                config = ctx.config(argv);
              } catch (err) {
                if (!(err instanceof ConfigError)) throw err;
                problems.push(...err.problems);
              }
              let inline: unknown[] = [];
              if (config) {
                inline = [...config.policies];
                try {
                  policies = collectPolicies(config, actions);
                } catch (err) {
                  if (!(err instanceof ConfigError)) throw err;
                  problems.push(...err.problems);
                  policies = [];
                }
              } else {
                // The settings are wrong: check the policies of the raw document as the server would.
                const doc = file ? (readYaml(file) as { policies?: unknown; policy_files?: unknown } | undefined) : undefined;
                const dir = file ? path.dirname(path.resolve(file)) : process.cwd();
                inline = Array.isArray(doc?.policies) ? doc.policies : [];
                const fromInline = parsePolicies(doc?.policies, actions, 'policies');
                const files = Array.isArray(doc?.policy_files)
                  ? doc.policy_files.filter((f): f is string => typeof f === 'string').map((f) => path.resolve(dir, f))
                  : [];
                const fromFiles = loadPolicyFiles(files, actions);
                problems.push(...fromInline.problems, ...fromFiles.problems);
                policies = [];
              }
              if (problems.length) throw new ConfigError(nameProblems(problems, inline));
            }
            // Valid but pointless settings: reported, not refused (the server logs the same as config.warning).
            const warnings = waitPolicyWarnings(config!, policies, createTokenRegistry(ALL_TOKEN_TYPES));
            for (const w of warnings) ctx.warn(`warning: ${w}`);
            ctx.out(
              `ok: ${policies.length} policies${warnings.length ? `, ${warnings.length} warning${warnings.length > 1 ? 's' : ''}` : ''}`,
            );
          }),
      )
      .command(
        'explain',
        "Show each action's value for a user and the policy it came from",
        (b) =>
          b
            .option('scope', { type: 'string', choices: SCOPES, demandOption: true, describe: 'Policy scope' })
            .option('user', { type: 'string', demandOption: true, describe: 'User (or user@realm)' })
            .option('realm', { type: 'string', describe: 'Realm (default: the default realm)' })
            .option('client', { type: 'string', describe: 'Client IP address' })
            .option('json', { type: 'boolean', describe: 'JSON output' })
            .check((a) => {
              if (a.client !== undefined && parseIp(a.client) === null)
                throw new Error(`--client must be an IP address, got '${a.client}'`);
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            const config = ctx.config(argv);
            const { allActions, collectPolicies } = await import('../../server/deps.ts');
            const { createPolicyEngine } = await import('../../policies/engine.ts');
            const { createRealms } = await import('../../server/auth/users.ts');
            const { createPinHasher } = await import('../../server/auth/pin.ts');
            const actions = allActions();
            const engine = createPolicyEngine({
              policies: collectPolicies(config, actions),
              actions,
              clock: ctx.buildOptions.clock ?? systemClock,
            });
            const realms = createRealms(config.realms, createPinHasher(config.pin));
            const scope = argv.scope as Scope;
            let user: NonNullable<Who['user']>;
            try {
              const u = await realms.resolveUser(argv.user, argv.realm);
              user = { name: u.name, realm: u.realm, resolver: u.resolver };
            } catch (err) {
              if (!(err instanceof UserError) && !(err instanceof UserStoreError)) throw err;
              ctx.warn(`note: ${err.message} Matching the name as given.`);
              user = { name: argv.user, realm: argv.realm ?? realms.defaultRealm, resolver: '' };
            } finally {
              await realms.close();
            }
            const who: Who = { user, client: argv.client };
            const matched = engine.resolve(scope, who).matched;
            const rows = engine.explain(scope, who).map((e) => ({
              action: e.action,
              value: e.value ?? null,
              from: e.from,
              default: !e.conflict && e.from.length === 0 && e.value !== undefined,
              ...(e.conflict ? { conflict: e.conflict } : {}),
            }));
            if (argv.json) {
              ctx.out(
                JSON.stringify({
                  scope,
                  user: user.name,
                  realm: user.realm,
                  resolver: user.resolver,
                  client: argv.client ?? null,
                  matched,
                  actions: rows,
                }),
              );
              return;
            }
            ctx.out(`scope: ${scope}  user: ${user.name}@${user.realm}  client: ${argv.client ?? '-'}`);
            ctx.out(`matched policies: ${matched.length ? matched.join(', ') : '(none)'}\n`);
            ctx.out(
              formatTable(
                ['ACTION', 'VALUE', 'FROM'],
                rows.map((r) => [
                  r.action,
                  r.conflict ? 'CONFLICT' : displayValue(findAction(engine.actions, scope, r.action), r.value ?? undefined),
                  r.conflict ?? (r.default ? '(default)' : r.from.length ? r.from.join(', ') : '(not set)'),
                ]),
              ),
            );
          }),
      )
      .demandCommand(1, 'Specify a policy command: check or explain'),
  );
}
