/**
 * Where each key of a TOML document is written: a small scanner over a document that already
 * parsed, so that config errors found by the schema can name a line and column. It never parses
 * values and never judges the document (smol-toml and the config schema do).
 */
/** A 1-based position in a source file. */
export interface SourcePosition {
  line: number;
  column: number;
}

/**
 * Maps every key path of a TOML document (`agents.forge.probes.health_url`, array items as
 * indexes: `agents.forge.argv.0`) to the position where it is written, so that a schema
 * error found after parsing can point at a line and column. The document must already have
 * parsed; on anything unexpected the scan stops and returns what it found.
 * @example
 * locateTomlKeys('[agents.forge]\nargv = ["x"]\n').get('agents.forge.argv') // { line: 2, column: 1 }
 */
export function locateTomlKeys(text: string): Map<string, SourcePosition> {
  const scan: Scan = { text, pos: 0, line: 1, lineStart: 0, found: new Map() };
  /** Tables of each `[[name]]` seen so far, which gives the next one its index. */
  const arrayTableCounts = new Map<string, number>();
  let table: string[] = [];
  while (scan.pos < text.length) {
    skipAll(scan);
    if (scan.pos >= text.length) break;
    const start = scan.pos;
    if (text.startsWith('[[', scan.pos)) table = readArrayTableHeader(scan, arrayTableCounts);
    else if (text[scan.pos] === '[') table = readTableHeader(scan);
    else if (!readKeyValue(scan, table)) break;
    skipInline(scan);
    skipComment(scan);
    if (scan.pos === start) break;
  }
  return scan.found;
}

/** The scanner's state: the text, where it is, and the key positions found so far. */
interface Scan {
  readonly text: string;
  /** Offset of the next character to read. */
  pos: number;
  line: number;
  /** Offset of the current line's first character. */
  lineStart: number;
  readonly found: Map<string, SourcePosition>;
}

/** One part of a dotted key and where it is written. */
interface KeyPart {
  part: string;
  at: SourcePosition;
}

function here(scan: Scan): SourcePosition {
  return { line: scan.line, column: scan.pos - scan.lineStart + 1 };
}

/** Records where `path` is written; a path seen before keeps its first position. */
function record(scan: Scan, path: string[], at: SourcePosition): void {
  const key = path.join('.');
  if (!scan.found.has(key)) scan.found.set(key, at);
}

/** Records every prefix of `base` followed by the parts of `key`, each where its last part is written; returns the full path. */
function recordKey(scan: Scan, base: string[], key: KeyPart[]): string[] {
  const full = [...base];
  for (const { part, at } of key) {
    full.push(part);
    record(scan, full, at);
  }
  return full;
}

/** Moves `count` characters on (not past the end), counting lines. */
function advance(scan: Scan, count = 1): void {
  for (let index = 0; index < count && scan.pos < scan.text.length; index++) {
    if (scan.text[scan.pos] === '\n') {
      scan.line++;
      scan.lineStart = scan.pos + 1;
    }
    scan.pos++;
  }
}

/** Skips spaces and tabs. */
function skipInline(scan: Scan): void {
  while (
    scan.pos < scan.text.length &&
    (scan.text[scan.pos] === ' ' || scan.text[scan.pos] === '\t')
  )
    advance(scan);
}

/** Skips a comment up to (not including) the end of its line. */
function skipComment(scan: Scan): void {
  if (scan.text[scan.pos] === '#')
    while (scan.pos < scan.text.length && scan.text[scan.pos] !== '\n') advance(scan);
}

/** Skips whitespace, newlines and comments. */
function skipAll(scan: Scan): void {
  for (;;) {
    const before = scan.pos;
    while (scan.pos < scan.text.length && /[ \t\r\n]/.test(scan.text[scan.pos]!)) advance(scan);
    skipComment(scan);
    if (scan.pos === before) return;
  }
}

/** Reads a basic, literal or multi-line string starting at its opening quote; escapes are kept as written. */
function readString(scan: Scan): string {
  const { text } = scan;
  const quote = text[scan.pos]!;
  const triple = text.startsWith(quote.repeat(3), scan.pos);
  const literal = quote === "'";
  advance(scan, triple ? 3 : 1);
  let value = '';
  while (scan.pos < text.length) {
    if (triple && text.startsWith(quote.repeat(3), scan.pos)) {
      advance(scan, 3);
      // Up to two more quotes may close a multi-line string (`""""` ends with a quote in the value).
      while (text[scan.pos] === quote) advance(scan);
      return value;
    }
    if (!triple && text[scan.pos] === quote) {
      advance(scan);
      return value;
    }
    if (!literal && text[scan.pos] === '\\') {
      value += text.slice(scan.pos, scan.pos + 2);
      advance(scan, 2);
      continue;
    }
    value += text[scan.pos];
    advance(scan);
  }
  return value;
}

/** Reads a dotted key; returns its parts and the position of each part. */
function readKey(scan: Scan): KeyPart[] {
  const { text } = scan;
  const parts: KeyPart[] = [];
  for (;;) {
    skipInline(scan);
    const at = here(scan);
    let part = '';
    if (text[scan.pos] === '"' || text[scan.pos] === "'") part = readString(scan);
    else
      while (scan.pos < text.length && /[A-Za-z0-9_-]/.test(text[scan.pos]!))
        part += text[scan.pos++];
    parts.push({ part, at });
    skipInline(scan);
    if (text[scan.pos] === '.') {
      advance(scan);
      continue;
    }
    return parts;
  }
}

/** Reads `[[name]]`: records the name's prefixes and the new table's index; returns the table's path. */
function readArrayTableHeader(scan: Scan, arrayTableCounts: Map<string, number>): string[] {
  advance(scan, 2);
  const key = readKey(scan);
  const names = key.map((item) => item.part);
  const base = names.join('.');
  const index = arrayTableCounts.get(base) ?? 0;
  arrayTableCounts.set(base, index + 1);
  recordKey(scan, [], key);
  const table = [...names, String(index)];
  record(scan, table, key.at(-1)?.at ?? here(scan));
  skipInline(scan);
  if (scan.text.startsWith(']]', scan.pos)) advance(scan, 2);
  return table;
}

/** Reads `[name]`: records the name's prefixes; returns the table's path. */
function readTableHeader(scan: Scan): string[] {
  advance(scan);
  const key = readKey(scan);
  recordKey(scan, [], key);
  const table = key.map((item) => item.part);
  skipInline(scan);
  if (scan.text[scan.pos] === ']') advance(scan);
  return table;
}

/** Reads `key = value` in `table`; false when no `=` follows the key (the scan stops). */
function readKeyValue(scan: Scan, table: string[]): boolean {
  const full = recordKey(scan, table, readKey(scan));
  skipInline(scan);
  if (scan.text[scan.pos] !== '=') return false;
  advance(scan);
  readValue(scan, full);
  return true;
}

/** Reads the value at `path`, recording the keys and array items inside it. */
function readValue(scan: Scan, path: string[]): void {
  skipInline(scan);
  const char = scan.text[scan.pos];
  if (char === '"' || char === "'") {
    readString(scan);
    return;
  }
  if (char === '[') return readArray(scan, path);
  if (char === '{') return readInlineTable(scan, path);
  while (scan.pos < scan.text.length && !/[,\]}\n#]/.test(scan.text[scan.pos]!)) advance(scan);
}

/** Reads `[a, b, …]` at `path`, recording each item as `path.<index>`. */
function readArray(scan: Scan, path: string[]): void {
  advance(scan);
  let index = 0;
  for (;;) {
    skipAll(scan);
    if (scan.pos >= scan.text.length) return;
    if (scan.text[scan.pos] === ']') {
      advance(scan);
      return;
    }
    record(scan, [...path, String(index)], here(scan));
    readValue(scan, [...path, String(index)]);
    skipAll(scan);
    if (scan.text[scan.pos] === ',') {
      advance(scan);
      index++;
    }
  }
}

/** Reads `{ key = value, … }` at `path`, recording its keys under `path`. */
function readInlineTable(scan: Scan, path: string[]): void {
  advance(scan);
  for (;;) {
    skipAll(scan);
    if (scan.pos >= scan.text.length) return;
    if (scan.text[scan.pos] === '}') {
      advance(scan);
      return;
    }
    const full = recordKey(scan, path, readKey(scan));
    skipInline(scan);
    if (scan.text[scan.pos] !== '=') return;
    advance(scan);
    readValue(scan, full);
    skipAll(scan);
    if (scan.text[scan.pos] === ',') advance(scan);
  }
}

/**
 * The position of the longest prefix of `path` found in `locations` (an error about a value
 * deep inside an inline value points at its nearest written key).
 */
export function positionOf(
  locations: Map<string, SourcePosition>,
  path: ReadonlyArray<PropertyKey>,
): SourcePosition | undefined {
  for (let length = path.length; length > 0; length--) {
    const found = locations.get(path.slice(0, length).map(String).join('.'));
    if (found) return found;
  }
  return undefined;
}
