/**
 * Strings kept for long (a probe's last detail, a watched file's name) without what built them:
 * V8 keeps a string made by `+` or a template literal as a tree of its pieces (a cons string,
 * ~3× the bytes of its text), and a `slice` or `path.basename` as a view that keeps its whole
 * parent alive. Owns only that.
 */

/** The same text as one flat string (a cons string is flattened in place). */
export function flatString(text: string): string {
  text.charCodeAt(0); // V8 flattens a cons string before indexing into it
  return text;
}

/** A standalone copy of `text` that keeps no parent string alive (for slices of long strings). */
export function ownString(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}
