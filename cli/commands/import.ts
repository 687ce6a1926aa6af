/**
 * `pushgate import edumfa|privacyidea|pskc`: tokens from an eduMFA or privacyIDEA database (with its encryption key
 * file) or from a PSKC seed file, through server/import/. Prints one line per token (or --json) and a summary.
 */
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { importDatabase, importPskc, parseUserMap } from '../../server/import/run.ts';
import type { ImportReport } from '../../server/import/plan.ts';
import type { SourceProduct } from '../../server/import/edumfa_source.ts';
import { CliError, readSecret, type CliContext, type GlobalArgs } from '../context.ts';
import { formatTable } from '../format.ts';

function printReport(ctx: CliContext, report: ImportReport, json: boolean): void {
  if (json) {
    ctx.out(JSON.stringify(report, null, 2));
    return;
  }
  if (report.entries.length > 0)
    ctx.out(
      formatTable(
        ['serial', 'type', 'status', 'owner', 'notes'],
        report.entries.map((e) => [e.serial, e.type, e.status, e.owner ?? '', e.notes.join('; ')]),
      ),
    );
  const c = report.counts;
  const done = report.dryRun ? `${c['would import']} would be imported (dry run: no token written)` : `${c.imported} imported`;
  ctx.out(`${done}, ${c.exists} already in pushgate, ${c['not imported']} not imported`);
}

function readFile(path: string, what: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (err) {
    throw new CliError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const firstLine = (b: Buffer): string => b.toString('utf8').split(/\r?\n/)[0] ?? '';

function databaseCommand(y: Argv<GlobalArgs>, ctx: CliContext, product: SourceProduct): Argv<GlobalArgs> {
  const name = product === 'edumfa' ? 'eduMFA' : 'privacyIDEA';
  const cfg = product === 'edumfa' ? 'EDUMFA_ENCFILE' : 'PI_ENCFILE';
  return y.command(
    product,
    `Import the tokens of ${product === 'edumfa' ? 'an' : 'a'} ${name} database`,
    (b) =>
      b
        .option('db', { type: 'string', demandOption: true, describe: `The ${name} database URL (SQLAlchemy URLs accepted)` })
        .option('enckey', { type: 'string', demandOption: true, describe: `${name}'s encryption key file (${cfg})` })
        .option('enckey-password-file', { type: 'string', describe: 'Password of an encrypted key file' })
        .option('user-map', { type: 'string', describe: 'CSV of resolver,user_id,login: the login names of the token owners' })
        .option('uid-is-login', { type: 'boolean', default: false, describe: "The resolvers' user ids are the login names" })
        .option('realm-map', { type: 'array', string: true, default: [] as string[], describe: 'SOURCE=TARGET realm name (repeatable)' })
        .option('registration-url', {
          type: 'string',
          describe: 'Push tokens: the URL the phones answer to (default <public_url>/ttype/<type>)',
        })
        .option('push-channel', { type: 'string', describe: "Push tokens: pushgate channel to use (default: the source's, if configured)" })
        .option('unsupported-pin', {
          choices: ['disable', 'skip', 'clear'] as const,
          default: 'disable' as const,
          describe: 'A token whose PIN hash pushgate cannot check: import it disabled, skip it, or import it without PIN',
        })
        .option('dry-run', { type: 'boolean', default: false, describe: 'Check and report, write no token' })
        .option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' }),
    (argv) =>
      ctx.run(async () => {
        const realms = new Map<string, string>();
        for (const e of argv['realm-map']) {
          const i = e.indexOf('=');
          if (i < 1 || i === e.length - 1) throw new CliError(`--realm-map must be SOURCE=TARGET, got '${e}'`);
          realms.set(e.slice(0, i), e.slice(i + 1));
        }
        let users: Map<string, string> | null = null;
        if (argv['user-map']) {
          try {
            users = parseUserMap(readFile(argv['user-map'], 'the user map').toString('utf8'));
          } catch (err) {
            throw new CliError(`--user-map: ${(err as Error).message}`);
          }
        }
        const encKey = readFile(argv.enckey, 'the key file');
        const pwFile = argv['enckey-password-file'];
        const encKeyPassword = pwFile ? firstLine(readFile(pwFile, 'the key file password')) : undefined;
        const report = await ctx.withDeps(argv, (deps) =>
          ctx.audited(
            deps,
            { action: `cli import ${product}`, info: { dry_run: argv['dry-run'] } },
            () =>
              importDatabase(deps, {
                product,
                url: argv.db,
                encKey,
                encKeyPassword,
                owners: { users, uidIsLogin: argv['uid-is-login'], realms },
                registrationUrl: argv['registration-url'],
                pushChannel: argv['push-channel'],
                unsupportedPin: argv['unsupported-pin'],
                dryRun: argv['dry-run'],
              }),
            (r) => ({
              serials: r.entries.filter((e) => e.status === 'imported').map((e) => e.serial),
              info: { dry_run: r.dryRun, ...r.counts },
            }),
          ),
        );
        printReport(ctx, report, argv.json);
      }),
  );
}

export function importCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('import', 'Import tokens from eduMFA, privacyIDEA or PSKC files', (i) => {
    let c = databaseCommand(i, ctx, 'edumfa');
    c = databaseCommand(c, ctx, 'privacyidea');
    return c
      .command(
        'pskc <file>',
        'Import HOTP/TOTP keys from a PSKC (RFC 6030) file',
        (b) =>
          b
            .positional('file', { type: 'string', demandOption: true })
            .option('key', { type: 'string', describe: 'Pre-shared key (hex) of an encrypted file' })
            .option('key-file', { type: 'string', describe: 'File holding the pre-shared key (hex)' })
            .option('password', { type: 'string', describe: 'Password of a PBKDF2-encrypted file (shows in ps: prefer the next two)' })
            .option('password-file', { type: 'string', describe: 'File holding the password of a PBKDF2-encrypted file' })
            .option('password-stdin', { type: 'boolean', default: false, describe: 'Read that password from stdin' })
            .option('user', { type: 'string', describe: 'Assign the tokens to this user' })
            .option('realm', { type: 'string', describe: "The user's realm (default realm otherwise)" })
            .option('dry-run', { type: 'boolean', default: false, describe: 'Check and report, write no token' })
            .option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' })
            .conflicts('key', 'key-file')
            .conflicts('password-file', 'password-stdin')
            .conflicts('password', ['password-file', 'password-stdin']),
        (argv) =>
          ctx.run(async () => {
            const hex = argv.key ?? (argv['key-file'] ? firstLine(readFile(argv['key-file'], 'the key file')) : undefined);
            if (hex !== undefined && !/^([0-9a-fA-F]{2}){16,32}$/.test(hex.trim()))
              throw new CliError('the pre-shared key must be 16, 24 or 32 bytes in hex');
            const password =
              argv.password !== undefined
                ? argv.password
                : argv['password-stdin']
                  ? await readSecret(ctx.io, 'password')
                  : argv['password-file']
                    ? firstLine(readFile(argv['password-file'], 'the password file'))
                    : undefined;
            const xml = readFile(argv.file!, 'the PSKC file').toString('utf8');
            const report = await ctx.withDeps(argv, async (deps) => {
              let username: string | null = null;
              let realm: string | null = null;
              if (argv.user !== undefined) {
                const u = await deps.realms.resolveUser(argv.user, argv.realm);
                username = u.name;
                realm = u.realm;
              }
              return ctx.audited(
                deps,
                { action: 'cli import pskc', username, realm, info: { dry_run: argv['dry-run'] } },
                () =>
                  importPskc(deps, {
                    xml,
                    key: hex === undefined ? undefined : Buffer.from(hex.trim(), 'hex'),
                    password,
                    username,
                    realm,
                    dryRun: argv['dry-run'],
                  }),
                (r) => ({
                  serials: r.entries.filter((e) => e.status === 'imported').map((e) => e.serial),
                  info: { dry_run: r.dryRun, ...r.counts },
                }),
              );
            });
            printReport(ctx, report, argv.json);
          }),
      )
      .demandCommand(1, 'Specify an import command: edumfa, privacyidea, pskc');
  });
}
