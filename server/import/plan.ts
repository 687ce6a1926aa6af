/**
 * Applying import plans (eduMFA/privacyIDEA databases, PSKC files) to pushgate's store: one INSERT per token,
 * serials that already exist are left alone and reported (a re-run imports only what is new), a dry run checks and
 * reports everything without writing. Secrets are encrypted under pushgate's key by the tokens repository.
 */
import type { Deps } from '../deps.ts';
import type { NewToken } from '../store/tokens_repo.ts';

/** One source token: what to insert, or why it cannot be. */
export interface ImportPlan {
  readonly serial: string;
  readonly type: string;
  /** Null: not importable (see `problems`). */
  readonly token: NewToken | null;
  /** A PIN the source kept encrypted: hashed with pushgate's PIN hasher when the token is inserted. */
  readonly plainPin?: string;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

export type ImportStatus = 'imported' | 'would import' | 'exists' | 'not imported';

export interface ImportReportEntry {
  readonly serial: string;
  readonly type: string;
  readonly status: ImportStatus;
  readonly owner: string | null;
  /** Why it was not imported, or what was not carried over. */
  readonly notes: readonly string[];
}

export interface ImportReport {
  readonly dryRun: boolean;
  readonly entries: ImportReportEntry[];
  readonly counts: Record<ImportStatus, number>;
}

export function emptyReport(dryRun: boolean): ImportReport {
  return { dryRun, entries: [], counts: { imported: 0, 'would import': 0, exists: 0, 'not imported': 0 } };
}

/** Applies plans in order; `report` collects the outcome of each. */
export async function applyPlans(deps: Deps, plans: readonly ImportPlan[], report: ImportReport): Promise<void> {
  const add = (p: ImportPlan, status: ImportStatus, notes: readonly string[]) => {
    const t = p.token;
    report.entries.push({ serial: p.serial, type: p.type, status, owner: t?.username ? `${t.username}@${t.realm}` : null, notes });
    report.counts[status]++;
  };
  for (const p of plans) {
    if (p.token === null) {
      add(p, 'not imported', p.problems);
      continue;
    }
    const t = p.token;
    if (await deps.store.tokens.bySerial(t.serial)) {
      add(p, 'exists', ['a token with this serial exists in pushgate; left unchanged']);
      continue;
    }
    if (t.username !== null && t.realm !== null) {
      const realm = deps.realms.get(t.realm);
      if (!realm) {
        add(p, 'not imported', [`realm ${t.realm} is not configured in pushgate (realms, or --realm-map)`]);
        continue;
      }
      if (!(await realm.lookup(t.username))) {
        add(p, 'not imported', [`user ${t.username} is not in pushgate's realm ${t.realm}`]);
        continue;
      }
    }
    if (report.dryRun) {
      add(p, 'would import', p.warnings);
      continue;
    }
    const pinHash = p.plainPin !== undefined ? (p.plainPin === '' ? null : await deps.pins.hash(p.plainPin)) : t.pinHash;
    try {
      await deps.store.tokens.insert({ ...t, pinHash }, deps.clock.now());
    } catch (err) {
      // Another import (or an enrollment) took the serial between the check and the insert.
      if (await deps.store.tokens.bySerial(t.serial)) {
        add(p, 'exists', ['a token with this serial was created in pushgate meanwhile; left unchanged']);
        continue;
      }
      throw err;
    }
    add(p, 'imported', p.warnings);
  }
}
