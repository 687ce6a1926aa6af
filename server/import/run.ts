/**
 * The two imports end to end, for the CLI (`pushgate import edumfa|privacyidea|pskc`): read the source, plan every
 * token, apply the plans (or only check them, dry run) and return the report.
 */
import type { Deps } from '../deps.ts';
import { POLL_ONLY } from '../../core/push_channel.ts';
import { parseEncKey } from './edumfa_crypto.ts';
import { openSource, planSourceToken, readSourceTokens, type OwnerMapping, type SourceProduct } from './edumfa_source.ts';
import { applyPlans, emptyReport, type ImportReport } from './plan.ts';
import { planPskc, type PskcKeySource } from './pskc.ts';

export interface DatabaseImportOptions {
  readonly product: SourceProduct;
  readonly url: string;
  /** The key file's bytes (EDUMFA_ENCFILE / PI_ENCFILE) and, for an encrypted one, its password. */
  readonly encKey: Buffer;
  readonly encKeyPassword?: string;
  readonly owners: OwnerMapping;
  readonly registrationUrl?: string;
  readonly pushChannel?: string;
  readonly unsupportedPin?: 'disable' | 'skip' | 'clear';
  readonly dryRun: boolean;
}

/** Parses `--user-map` CSV: `resolver,user_id,login` per line (`#` comments and blank lines ignored). */
export function parseUserMap(csv: string): Map<string, string> {
  const out = new Map<string, string>();
  csv.split(/\r?\n/).forEach((line, i) => {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) return;
    const parts = l.split(',').map((p) => p.trim());
    if (parts.length !== 3 || parts.some((p) => p === '')) throw new Error(`user map line ${i + 1}: expected resolver,user_id,login`);
    out.set(`${parts[0]}\u0000${parts[1]}`, parts[2]!);
  });
  return out;
}

export async function importDatabase(deps: Deps, o: DatabaseImportOptions): Promise<ImportReport> {
  const keys = parseEncKey(o.encKey, o.encKeyPassword);
  const channels = new Set(deps.config.push.channels.map((c) => c.name));
  const publicUrl = deps.config.server.publicUrl.replace(/\/+$/, '');
  if (o.pushChannel !== undefined && o.pushChannel !== POLL_ONLY && !channels.has(o.pushChannel))
    throw new Error(`push channel '${o.pushChannel}' is not configured (push.channels), nor '${POLL_ONLY}'`);
  const report = emptyReport(o.dryRun);
  const knex = openSource(o.url);
  try {
    for await (const batch of readSourceTokens(knex)) {
      const now = deps.clock.now();
      const plans = batch.map((src) =>
        planSourceToken(src, {
          product: o.product,
          keys,
          owners: o.owners,
          registrationUrl: (type) => o.registrationUrl ?? `${publicUrl}/ttype/${type}`,
          pushChannel: o.pushChannel,
          unsupportedPin: o.unsupportedPin,
          hasChannel: (name) => name === POLL_ONLY || channels.has(name),
          now,
        }),
      );
      await applyPlans(deps, plans, report);
    }
  } finally {
    await knex.destroy();
  }
  return report;
}

export interface PskcImportOptions extends PskcKeySource {
  readonly xml: string;
  readonly username: string | null;
  readonly realm: string | null;
  readonly dryRun: boolean;
}

export async function importPskc(deps: Deps, o: PskcImportOptions): Promise<ImportReport> {
  const report = emptyReport(o.dryRun);
  await applyPlans(deps, planPskc(o.xml, o), report);
  return report;
}
