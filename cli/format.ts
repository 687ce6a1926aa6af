/** Plain-text output helpers: aligned tables and human-readable values. */

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** `key: value` lines with the keys aligned. */
export function formatFields(fields: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length)) + 1;
  return fields.map(([k, v]) => `${(k + ':').padEnd(width)} ${v}`.trimEnd()).join('\n');
}

export function formatValue(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.length ? v.map(String).join(', ') : '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export const formatTime = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '-' : new Date(ms).toISOString());

export const yesNo = (b: boolean): string => (b ? 'yes' : 'no');
