/** `pushgate token …`: enrollment and administration through server/auth/tokens_admin.ts (the same code as /token/*). */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Argv } from 'yargs';
import {
  deleteToken,
  enrollToken,
  requireToken,
  resetFailCounter,
  setTokenActive,
  setTokenPin,
  tokenView,
} from '../../server/auth/tokens_admin.ts';
import { ALL_TOKEN_TYPES } from '../../tokens/index.ts';
import { fatigueSubject, pushFatigueView, tokenSubject, unblockPush, type PushFatigueView } from '../../server/auth/push_fatigue.ts';
import { qrDataUri, qrTerminal } from '../../tokens/qr.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import type { Deps } from '../../server/deps.ts';
import { CliError, readSecret, type CliContext, type GlobalArgs } from '../context.ts';
import { formatFields, formatTable, formatTime, formatValue, yesNo } from '../format.ts';

/** `--param KEY=VALUE` entries → a record; a later entry wins. */
function parseParams(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    if (eq < 1) throw new CliError(`--param must be KEY=VALUE, got '${e}'`);
    out[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return out;
}

/** A public key (PEM, or base64 DER as the apps send it) as `RSA 4096 bit, SHA-256 ab:cd:…`, or null. */
export function keySummary(text: string): string | null {
  const body = text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const forms: Array<() => crypto.KeyObject> = [
    () => crypto.createPublicKey(text),
    () => crypto.createPublicKey({ key: Buffer.from(body, 'base64'), format: 'der', type: 'spki' }),
    () => crypto.createPublicKey({ key: Buffer.from(body, 'base64'), format: 'der', type: 'pkcs1' }),
  ];
  for (const make of forms) {
    try {
      const key = make();
      const der = key.export({ format: 'der', type: 'spki' });
      const hex = crypto.createHash('sha256').update(der).digest('hex');
      const bits = key.asymmetricKeyDetails?.modulusLength;
      return `${(key.asymmetricKeyType ?? 'key').toUpperCase()}${bits ? ` ${bits} bit` : ''}, SHA-256 ${hex.slice(0, 32).replace(/(..)(?!$)/g, '$1:')}…`;
    } catch {
      /* next form */
    }
  }
  return null;
}

/** Long info values in short form: keys as fingerprints, other long strings as their start and length. */
function shortInfo(key: string, value: string): string {
  if (value.length <= 64) return value;
  if (/public_key/.test(key)) {
    const s = keySummary(value);
    if (s) return s;
  }
  return `${value.slice(0, 16)}… (${value.length} characters; --json shows it whole)`;
}

function showToken(t: TokenRecord): string {
  const { info, ...v } = tokenView(t) as Record<string, unknown> & { info: Record<string, unknown> };
  const fields: Array<[string, string]> = Object.entries(v).map(([k, val]) => [
    k,
    k === 'created' || k === 'last_auth' ? formatTime(val as number | null) : formatValue(val),
  ]);
  for (const [k, val] of Object.entries(info).sort(([a], [b]) => a.localeCompare(b)))
    fields.push([`info.${k}`, shortInfo(k, formatValue(val))]);
  return formatFields(fields);
}

/** The owner of a token as the push state knows it (null for an unassigned token). */
const ownerOf = (t: TokenRecord) => (t.username && t.realm ? { name: t.username, realm: t.realm } : null);

function pushFatigueJson(v: PushFatigueView) {
  return {
    open_logins: v.openLogins.map((l) => ({ transaction_id: l.transactionId, client: l.client, opened: l.openedAt, expires: l.expiresAt })),
    backoff: v.backoff.map((b) => ({
      client: b.client,
      strikes: b.strikes,
      declines: b.declines,
      last_strike: b.lastStrikeAt || null,
      blocked_for_seconds: b.blockedForSeconds,
      locked: b.lockedAt,
    })),
  };
}

/** The push section of `token show`: open push logins and back-off rows ('' = the user as a whole). */
function showPushFatigue(v: PushFatigueView): string {
  const lines = ['push logins (owner):'];
  if (!v.openLogins.length) lines.push('  open: none');
  for (const l of v.openLogins)
    lines.push(
      `  open: ${l.transactionId} from ${l.client || '(address unknown)'}, ${formatTime(l.openedAt)} → ${formatTime(l.expiresAt)}`,
    );
  if (!v.backoff.length) lines.push('  back-off: none');
  for (const b of v.backoff) {
    const who = b.client ? `address ${b.client}` : 'user';
    const state =
      b.lockedAt !== null
        ? `LOCKED since ${formatTime(b.lockedAt)}`
        : b.blockedForSeconds > 0
          ? `blocked for ${b.blockedForSeconds} s`
          : 'not blocked';
    lines.push(`  back-off ${who}: ${b.strikes} unanswered/declined in a row, ${b.declines} declines in a row, ${state}`);
  }
  return lines.join('\n');
}

/** Token types by name, for `--type` (any case). */
const TYPE_NAMES = ALL_TOKEN_TYPES.map((t) => t.type);

const serialArg = <T>(b: Argv<T>) => b.positional('serial', { type: 'string', demandOption: true, describe: 'Token serial' });

export function tokenCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  /** enable / disable / delete / reset: one serial, one tokens_admin call, one audit row. */
  const simple =
    (name: string, describe: string, done: string, fn: (deps: Deps, serial: string) => Promise<void>) => (t: Argv<GlobalArgs>) =>
      t.command(
        `${name} <serial>`,
        describe,
        (b) => serialArg(b),
        (argv) =>
          ctx.run(async () => {
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: `cli token ${name}`, serials: [argv.serial] }, () => fn(deps, argv.serial)),
            );
            ctx.out(`${done} ${argv.serial}`);
          }),
      );

  return y.command('token', 'Enroll and manage tokens', (token) => {
    token = token
      .command(
        'enroll',
        'Enroll a token; prints its serial, the enrollment URL and a QR code',
        (b) =>
          b
            .option('type', {
              type: 'string',
              demandOption: true,
              describe: `Token type: ${TYPE_NAMES.join(', ')} (push types: the QR code starts the enrollment, the phone finishes it)`,
            })
            .option('user', { type: 'string', demandOption: true, describe: 'Owner (user or user@realm)' })
            .option('realm', { type: 'string', describe: 'Realm of the user (default: the default realm)' })
            .option('pin', { type: 'string', describe: 'Token PIN (visible in the process list; prefer --pin-stdin)' })
            .option('pin-stdin', { type: 'boolean', describe: 'Read the token PIN from stdin (one trailing newline is dropped)' })
            .conflicts('pin', 'pin-stdin')
            .option('serial', { type: 'string', describe: 'Serial (default: generated)' })
            .option('description', { type: 'string', describe: 'Description' })
            .option('genkey', { type: 'boolean', default: true, describe: 'Generate the OTP key (ignored with --otpkey)' })
            .option('otpkey', { type: 'string', describe: 'OTP key (hex, or base32 with --otpkey-format base32)' })
            .option('otpkey-format', { type: 'string', describe: 'hex or base32' })
            .option('otplen', { type: 'string', describe: 'OTP length: 6 or 8' })
            .option('hashlib', { type: 'string', describe: 'sha1, sha256 or sha512' })
            .option('timestep', { type: 'string', describe: 'TOTP time step: 30 or 60' })
            .option('param', {
              type: 'string',
              array: true,
              default: [] as string[],
              describe: 'Extra type-specific parameter KEY=VALUE (repeatable)',
            })
            .option('json', { type: 'boolean', describe: 'Print {serial, type, rollout_state, url, details} as JSON only' })
            .option('png', { type: 'string', describe: 'Also write the QR code as a PNG to this file (mode 0600: it holds the secret)' })
            .check((a) => {
              if (!TYPE_NAMES.includes(a.type.toLowerCase()))
                throw new Error(`Unknown token type '${a.type}': use one of ${TYPE_NAMES.join(', ')}`);
              // An empty --user would enroll a token nobody owns (what the HTTP API does without a user): say so.
              if (!a.user.trim()) throw new Error('--user must name the owner (user or user@realm)');
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            const pin = argv.pinStdin ? await readSecret(ctx.io, 'PIN') : argv.pin;
            const params: Record<string, string> = {
              ...parseParams(argv.param),
              type: argv.type,
              user: argv.user,
              genkey: argv.otpkey ? '0' : argv.genkey ? '1' : '0',
            };
            const optional: Array<[string, string | undefined]> = [
              ['realm', argv.realm],
              ['serial', argv.serial],
              ['description', argv.description],
              ['otpkey', argv.otpkey],
              ['otpkey_format', argv.otpkeyFormat],
              ['otplen', argv.otplen],
              ['hashlib', argv.hashlib],
              ['timeStep', argv.timestep],
            ];
            for (const [k, v] of optional) if (v !== undefined) params[k] = v;
            const result = await ctx.withDeps(
              argv,
              (deps) =>
                ctx.audited(
                  deps,
                  {
                    action: 'cli token enroll',
                    username: argv.user,
                    realm: argv.realm ?? null,
                    serials: argv.serial ? [argv.serial] : [],
                    info: { type: argv.type },
                  },
                  () =>
                    enrollToken(deps, {
                      type: argv.type.toLowerCase(),
                      serial: argv.serial,
                      user: argv.user,
                      realm: argv.realm,
                      pin,
                      description: argv.description,
                      params,
                    }),
                  (r) => ({ username: r.token.username, realm: r.token.realm, serials: [r.token.serial], policies: r.policies }),
                ),
              { access: 'create' },
            );
            const { token, qrUrl } = result;
            if (argv.png !== undefined) {
              if (qrUrl === undefined) ctx.warn(`warning: a ${token.type} token has no enrollment URL; no PNG written`);
              else {
                const uri = await qrDataUri(qrUrl);
                fs.writeFileSync(argv.png, Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64'), { mode: 0o600 });
              }
            }
            if (argv.json) {
              ctx.out(
                JSON.stringify({
                  serial: token.serial,
                  type: token.type,
                  rollout_state: token.rolloutState,
                  url: qrUrl ?? null,
                  details: result.details,
                }),
              );
              return;
            }
            const fields: Array<[string, string]> = [
              ['serial', token.serial],
              ['type', token.type],
            ];
            if (token.rolloutState) fields.push(['rollout_state', token.rolloutState]);
            if (qrUrl !== undefined) fields.push(['url', qrUrl]);
            ctx.out(formatFields(fields));
            if (qrUrl !== undefined) ctx.out('\n' + (await qrTerminal(qrUrl, { color: ctx.io.stdout.isTTY === true })).trimEnd());
          }),
      )
      .command(
        'list',
        'List tokens',
        (b) =>
          b
            .option('user', { type: 'string', describe: 'Owner (user or user@realm)' })
            .option('realm', { type: 'string', describe: 'Realm' })
            .option('type', { type: 'string', describe: 'Token type' })
            .option('json', { type: 'boolean', describe: 'JSON array of tokens (the fields GET /token/ returns)' }),
        (argv) =>
          ctx.run(() =>
            ctx.withDeps(argv, async (deps) => {
              let { user: username, realm } = argv;
              if (username) {
                const u = await deps.realms.resolveUser(username, realm);
                username = u.name;
                realm = u.realm;
              }
              const tokens = await deps.store.tokens.list({ username, realm, type: argv.type?.toLowerCase() });
              if (argv.json) {
                ctx.out(JSON.stringify(tokens.map(tokenView)));
                return;
              }
              if (!tokens.length) {
                ctx.out('no tokens');
                return;
              }
              ctx.out(
                formatTable(
                  ['SERIAL', 'TYPE', 'USER', 'REALM', 'ACTIVE', 'LOCKED', 'FAILS', 'ROLLOUT', 'LAST AUTH', 'DESCRIPTION'],
                  tokens.map((t) => [
                    t.serial,
                    t.type,
                    t.username ?? '-',
                    t.realm ?? '-',
                    yesNo(t.active),
                    yesNo(t.failCount >= t.maxFail),
                    `${t.failCount}/${t.maxFail}`,
                    t.rolloutState || '-',
                    formatTime(t.lastAuthAt),
                    t.description,
                  ]),
                ),
              );
            }),
          ),
      )
      .command(
        'show <serial>',
        'Show one token',
        (b) => serialArg(b).option('json', { type: 'boolean', describe: 'JSON output' }),
        (argv) =>
          ctx.run(() =>
            ctx.withDeps(argv, async (deps) => {
              const t = await requireToken(deps, argv.serial);
              // Push tokens: the open push logins of the owner and the push back-off (server/auth/push_fatigue.ts).
              const push = deps.registry.get(t.type)?.outOfBand ? await pushFatigueView(deps, tokenSubject(t), ownerOf(t)) : null;
              if (argv.json) ctx.out(JSON.stringify({ ...tokenView(t), ...(push ? { push_fatigue: pushFatigueJson(push) } : {}) }));
              else ctx.out(showToken(t) + (push ? `\n${showPushFatigue(push)}` : ''));
            }),
          ),
      );
    for (const add of [
      simple('enable', 'Enable a token', 'enabled', (deps, serial) => setTokenActive(deps, serial, true)),
      simple('disable', 'Disable a token', 'disabled', (deps, serial) => setTokenActive(deps, serial, false)),
      simple('delete', 'Delete a token', 'deleted', deleteToken),
      simple('reset', 'Reset the fail counter of a token', 'reset fail counter of', resetFailCounter),
    ])
      token = add(token);
    return token
      .command(
        'unblock [serial]',
        "Clear the push back-off and decline lock of a push token's owner (or of --user) and free their open push logins",
        (b) =>
          b
            .positional('serial', { type: 'string', describe: 'A token serial (its owner is unblocked)' })
            .option('user', { type: 'string', describe: 'The user (user or user@realm) instead of a serial' })
            .option('realm', { type: 'string', describe: 'Realm of --user' })
            .conflicts('serial', 'user')
            .check((a) => {
              if (!a.serial && !a.user) throw new Error('Specify a serial or --user');
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            const what = await ctx.withDeps(argv, async (deps) => {
              let subject: string;
              let label: string;
              let serials: string[] = [];
              if (argv.serial) {
                const t = await requireToken(deps, argv.serial);
                subject = tokenSubject(t);
                label = t.username ? `${t.username}@${t.realm}` : t.serial;
                serials = [t.serial];
              } else {
                const u = await deps.realms.resolveUser(argv.user!, argv.realm);
                subject = fatigueSubject(u, []);
                label = `${u.name}@${u.realm}`;
              }
              const done = await ctx.audited(deps, { action: 'cli token unblock', serials, info: { subject: label } }, () =>
                unblockPush(deps, subject),
              );
              return { label, ...done };
            });
            ctx.out(`unblocked push logins of ${what.label} (${what.backoff} back-off rows cleared, ${what.logins} open logins freed)`);
          }),
      )
      .command(
        'set-pin <serial>',
        "Set (or with --pin '' remove) the PIN of a token",
        (b) =>
          serialArg(b)
            .option('pin', { type: 'string', describe: 'The PIN (visible in the process list; prefer --pin-stdin)' })
            .option('pin-stdin', { type: 'boolean', describe: 'Read the PIN from stdin (one trailing newline is dropped)' })
            .conflicts('pin', 'pin-stdin')
            .check((a) => {
              if (a.pin === undefined && !a.pinStdin) throw new Error('Specify --pin-stdin or --pin PIN');
              return true;
            }),
        (argv) =>
          ctx.run(async () => {
            const pin = argv.pinStdin ? await readSecret(ctx.io, 'PIN') : argv.pin!;
            await ctx.withDeps(argv, (deps) =>
              ctx.audited(deps, { action: 'cli token setpin', serials: [argv.serial] }, async () => {
                await requireToken(deps, argv.serial);
                await setTokenPin(deps, argv.serial, pin);
              }),
            );
            ctx.out(pin === '' ? `removed the PIN of ${argv.serial}` : `set the PIN of ${argv.serial}`);
          }),
      )
      .demandCommand(1, 'Specify a token command: enroll, list, show, enable, disable, delete, reset, unblock or set-pin');
  });
}
