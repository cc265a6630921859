/** Where commands write: injectable so tests can capture output without spawning. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Whether stdout is a terminal (pretty output) or not (plain). */
  isTty: boolean;
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  isTty: Boolean(process.stdout.isTTY),
};

/** Renders rows as an aligned text table with a header. */
export function renderTable(
  headers: string[],
  rows: Array<Array<string | number | undefined>>,
): string {
  const cells = [
    headers,
    ...rows.map((row) =>
      row.map((cell) => (cell === undefined || cell === '' ? '-' : String(cell))),
    ),
  ];
  const widths = headers.map((_, column) =>
    Math.max(...cells.map((row) => (row[column] ?? '').length)),
  );
  return cells
    .map((row) =>
      row
        .map((cell, column) =>
          column === row.length - 1 ? cell : (cell ?? '').padEnd(widths[column] ?? 0),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Seconds as a short human duration: `42s`, `3m05s`, `2h10m`. */
export function formatAge(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400)
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}
