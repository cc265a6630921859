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
  const found = new Map<string, SourcePosition>();
  const arrayTableCounts = new Map<string, number>();
  let pos = 0;
  let line = 1;
  let lineStart = 0;

  const here = (): SourcePosition => ({ line, column: pos - lineStart + 1 });
  const record = (path: string[], at: SourcePosition) => {
    const key = path.join('.');
    if (!found.has(key)) found.set(key, at);
  };
  const advance = (count = 1) => {
    for (let index = 0; index < count && pos < text.length; index++) {
      if (text[pos] === '\n') {
        line++;
        lineStart = pos + 1;
      }
      pos++;
    }
  };
  const skipInline = () => {
    while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t')) advance();
  };
  const skipComment = () => {
    if (text[pos] === '#') while (pos < text.length && text[pos] !== '\n') advance();
  };
  const skipAll = () => {
    for (;;) {
      const before = pos;
      while (pos < text.length && /[ \t\r\n]/.test(text[pos]!)) advance();
      skipComment();
      if (pos === before) return;
    }
  };
  const readString = (): string => {
    const quote = text[pos]!;
    const triple = text.startsWith(quote.repeat(3), pos);
    const literal = quote === "'";
    advance(triple ? 3 : 1);
    let value = '';
    while (pos < text.length) {
      if (triple && text.startsWith(quote.repeat(3), pos)) {
        advance(3);
        // Up to two more quotes may close a multi-line string (`""""` ends with a quote in the value).
        while (text[pos] === quote) advance();
        return value;
      }
      if (!triple && text[pos] === quote) {
        advance();
        return value;
      }
      if (!literal && text[pos] === '\\') {
        value += text.slice(pos, pos + 2);
        advance(2);
        continue;
      }
      value += text[pos];
      advance();
    }
    return value;
  };
  /** Reads a dotted key; returns its parts and the position of each part. */
  const readKey = (): Array<{ part: string; at: SourcePosition }> => {
    const parts: Array<{ part: string; at: SourcePosition }> = [];
    for (;;) {
      skipInline();
      const at = here();
      let part = '';
      if (text[pos] === '"' || text[pos] === "'") part = readString();
      else while (pos < text.length && /[A-Za-z0-9_-]/.test(text[pos]!)) part += text[pos++];
      parts.push({ part, at });
      skipInline();
      if (text[pos] === '.') {
        advance();
        continue;
      }
      return parts;
    }
  };
  const readValue = (path: string[]) => {
    skipInline();
    const char = text[pos];
    if (char === '"' || char === "'") {
      readString();
      return;
    }
    if (char === '[') {
      advance();
      let index = 0;
      for (;;) {
        skipAll();
        if (pos >= text.length) return;
        if (text[pos] === ']') {
          advance();
          return;
        }
        record([...path, String(index)], here());
        readValue([...path, String(index)]);
        skipAll();
        if (text[pos] === ',') {
          advance();
          index++;
        }
      }
    }
    if (char === '{') {
      advance();
      for (;;) {
        skipAll();
        if (pos >= text.length) return;
        if (text[pos] === '}') {
          advance();
          return;
        }
        const key = readKey();
        const full = [...path];
        for (const { part, at } of key) {
          full.push(part);
          record(full, at);
        }
        skipInline();
        if (text[pos] !== '=') return;
        advance();
        readValue(full);
        skipAll();
        if (text[pos] === ',') advance();
      }
    }
    while (pos < text.length && !/[,\]}\n#]/.test(text[pos]!)) advance();
  };

  let table: string[] = [];
  while (pos < text.length) {
    skipAll();
    if (pos >= text.length) break;
    const start = pos;
    if (text.startsWith('[[', pos)) {
      advance(2);
      const key = readKey();
      const names = key.map((item) => item.part);
      const base = names.join('.');
      const index = arrayTableCounts.get(base) ?? 0;
      arrayTableCounts.set(base, index + 1);
      const partial: string[] = [];
      for (const { part, at } of key) {
        partial.push(part);
        record(partial, at);
      }
      table = [...names, String(index)];
      record(table, key.at(-1)?.at ?? here());
      skipInline();
      if (text.startsWith(']]', pos)) advance(2);
    } else if (text[pos] === '[') {
      advance();
      const key = readKey();
      const partial: string[] = [];
      for (const { part, at } of key) {
        partial.push(part);
        record(partial, at);
      }
      table = key.map((item) => item.part);
      skipInline();
      if (text[pos] === ']') advance();
    } else {
      const key = readKey();
      const full = [...table];
      for (const { part, at } of key) {
        full.push(part);
        record(full, at);
      }
      skipInline();
      if (text[pos] !== '=') break;
      advance();
      readValue(full);
    }
    skipInline();
    skipComment();
    if (pos === start) break;
  }
  return found;
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
