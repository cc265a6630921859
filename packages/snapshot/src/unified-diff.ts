/** Options of {@link unifiedDiff}. */
export interface UnifiedDiffOptions {
  /** Label of the old side (`--- <label>`). */
  fromLabel: string;
  /** Label of the new side (`+++ <label>`). */
  toLabel: string;
  /** Unchanged lines shown around each change. @default 3 */
  context?: number;
  /** Beyond this many differing lines the diff is one hunk replacing everything. @default 2000 */
  maxEditDistance?: number;
}

type Op = { type: ' ' | '-' | '+'; line: string };

/** Splits text into lines that keep their `\n`, so a missing final newline is a difference. */
function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(/(?<=\n)/);
  return lines;
}

/**
 * A unified diff (`diff -u` format) of two texts, or `''` when they are equal. Myers' O(ND)
 * algorithm on the lines between the common prefix and suffix.
 * @example
 * unifiedDiff('a\nb\n', 'a\nc\n', { fromLabel: 'a/config.json', toLabel: 'b/config.json' });
 */
export function unifiedDiff(oldText: string, newText: string, options: UnifiedDiffOptions): string {
  if (oldText === newText) return '';
  const a = splitLines(oldText);
  const b = splitLines(newText);
  const ops = diffLines(a, b, options.maxEditDistance ?? 2000);
  return formatHunks(ops, options);
}

function diffLines(a: string[], b: string[], maxD: number): Op[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start += 1;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA -= 1;
    endB -= 1;
  }
  const prefix: Op[] = a.slice(0, start).map((line) => ({ type: ' ', line }));
  const suffix: Op[] = a.slice(endA).map((line) => ({ type: ' ', line }));
  const middle = myers(a.slice(start, endA), b.slice(start, endB), maxD);
  return [...prefix, ...middle, ...suffix];
}

function myers(a: string[], b: string[], maxD: number): Op[] {
  const n = a.length;
  const m = b.length;
  const replaceAll = (): Op[] => [
    ...a.map((line): Op => ({ type: '-', line })),
    ...b.map((line): Op => ({ type: '+', line })),
  ];
  if (n === 0 || m === 0) return replaceAll();
  const max = n + m;
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d += 1) {
    if (d > maxD) return replaceAll();
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && (v[offset + k - 1] as number) < (v[offset + k + 1] as number)))
        x = v[offset + k + 1] as number;
      else x = (v[offset + k - 1] as number) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x += 1;
        y += 1;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d -= 1) {
    const saved = trace[d] as Int32Array;
    const at = (k: number): number => saved[k + d + 1] as number;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ type: ' ', line: a[x - 1] as string });
      x -= 1;
      y -= 1;
    }
    if (d > 0) {
      if (x === prevX) ops.push({ type: '+', line: b[y - 1] as string });
      else ops.push({ type: '-', line: a[x - 1] as string });
    }
    x = prevX;
    y = prevY;
  }
  return ops.reverse();
}

function formatHunks(ops: Op[], options: UnifiedDiffOptions): string {
  const context = options.context ?? 3;
  const changes: number[] = [];
  ops.forEach((op, index) => {
    if (op.type !== ' ') changes.push(index);
  });
  if (changes.length === 0) return '';
  const out: string[] = [`--- ${options.fromLabel}\n`, `+++ ${options.toLabel}\n`];
  // Line numbers before each op index.
  const aBefore = new Int32Array(ops.length + 1);
  const bBefore = new Int32Array(ops.length + 1);
  ops.forEach((op, index) => {
    aBefore[index + 1] = (aBefore[index] as number) + (op.type === '+' ? 0 : 1);
    bBefore[index + 1] = (bBefore[index] as number) + (op.type === '-' ? 0 : 1);
  });
  let i = 0;
  while (i < changes.length) {
    let j = i;
    while (
      j + 1 < changes.length &&
      (changes[j + 1] as number) - (changes[j] as number) <= 2 * context
    )
      j += 1;
    const from = Math.max(0, (changes[i] as number) - context);
    const to = Math.min(ops.length, (changes[j] as number) + context + 1);
    const aCount = (aBefore[to] as number) - (aBefore[from] as number);
    const bCount = (bBefore[to] as number) - (bBefore[from] as number);
    const aStart = aCount === 0 ? (aBefore[from] as number) : (aBefore[from] as number) + 1;
    const bStart = bCount === 0 ? (bBefore[from] as number) : (bBefore[from] as number) + 1;
    out.push(
      `@@ -${aStart}${aCount === 1 ? '' : `,${aCount}`} +${bStart}${bCount === 1 ? '' : `,${bCount}`} @@\n`,
    );
    for (let index = from; index < to; index += 1) {
      const op = ops[index] as Op;
      if (op.line.endsWith('\n')) out.push(`${op.type}${op.line}`);
      else out.push(`${op.type}${op.line}\n\\ No newline at end of file\n`);
    }
    i = j + 1;
  }
  return out.join('');
}
