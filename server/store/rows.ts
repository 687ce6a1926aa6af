/** Row ↔ record helpers shared by the repositories (portable across SQLite, PostgreSQL and MariaDB). */
import { DatabaseError, MfaError } from '../../core/errors.ts';

export const bool = (v: unknown): boolean => v === true || v === 1 || v === '1';
export const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
export function json<T>(v: unknown, fallback: T): T {
  if (v === null || v === undefined || v === '') return fallback;
  if (typeof v === 'string') return JSON.parse(v) as T;
  return v as T;
}
/** Affected-row count from knex update/delete (a number on every driver). */
export const rowCount = (r: unknown): number => (typeof r === 'number' ? r : Array.isArray(r) ? r.length : 0);

/** Wraps every method of a repository so that driver failures surface as DatabaseError (-600). */
export function guarded<T extends object>(repo: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, fn] of Object.entries(repo)) {
    out[key] =
      typeof fn !== 'function'
        ? fn
        : async (...args: unknown[]) => {
            try {
              return await (fn as (...a: unknown[]) => Promise<unknown>).apply(repo, args);
            } catch (err) {
              if (err instanceof MfaError) throw err;
              throw new DatabaseError(err);
            }
          };
  }
  return out as T;
}
