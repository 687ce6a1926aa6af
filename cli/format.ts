/** Plain-text output helpers: aligned tables and human-readable values. */

/**
 * Left-aligned columns separated by two spaces; the last column is not padded. `max` caps a column's width (a longer
 * cell is cut and ends with `…`, so one long user name cannot push every other column off the screen); with
 * `fixed` every capped column is exactly its cap wide, so tables printed one after another (audit tail --follow)
 * line up.
 */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  opts: { max?: ReadonlyArray<number | undefined>; fixed?: boolean } = {},
): string {
  const cap = (c: string, i: number) => {
    const m = opts.max?.[i];
    return m !== undefined && [...c].length > m ? `${[...c].slice(0, m - 1).join('')}…` : c;
  };
  const cut = rows.map((r) => r.map(cap));
  const widths = headers.map((h, i) => {
    const m = opts.max?.[i];
    if (opts.fixed && m !== undefined) return Math.max(h.length, m);
    return Math.max(h.length, ...cut.map((r) => [...(r[i] ?? '')].length));
  });
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(Math.max(0, widths[i]! - [...c].length))))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cut.map(line)].join('\n');
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
