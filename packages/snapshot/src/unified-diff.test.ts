import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../test/helpers.js';
import { unifiedDiff } from './unified-diff.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('unifiedDiff', () => {
  it('renders a change in diff -u format', () => {
    expect(unifiedDiff('a\nb\nc\n', 'a\nB\nc\n', { fromLabel: 'old', toLabel: 'new' })).toBe(
      '--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n',
    );
    expect(unifiedDiff('same\n', 'same\n', { fromLabel: 'old', toLabel: 'new' })).toBe('');
    expect(unifiedDiff('x', 'x\n', { fromLabel: 'old', toLabel: 'new' })).toBe(
      '--- old\n+++ new\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n',
    );
  });

  it('produces patches that GNU patch applies exactly', () => {
    const line = fc.constantFrom('alpha', 'beta', 'gamma', 'delta', '', '  "model": "x",', '}');
    const text = fc
      .tuple(fc.array(line, { maxLength: 30 }), fc.boolean())
      .map(([lines, newline]) =>
        lines.length === 0 ? '' : lines.join('\n') + (newline ? '\n' : ''),
      );
    let case_ = 0;
    fc.assert(
      fc.property(text, text, (before, after) => {
        case_ += 1;
        const file = join(dir, `f${case_}`);
        execFileSync('sh', ['-c', 'cat > "$1"', 'sh', file], { input: before });
        const patch = unifiedDiff(before, after, { fromLabel: file, toLabel: file, context: 2 });
        if (before === after) return patch === '';
        execFileSync('patch', ['--quiet', '--force', file], { input: patch });
        return execFileSync('cat', [file]).toString() === after;
      }),
      { numRuns: 60 },
    );
  });

  it('falls back to one replacing hunk beyond the edit distance limit', () => {
    const before = Array.from({ length: 50 }, (_, i) => `old ${i}`).join('\n') + '\n';
    const after = Array.from({ length: 50 }, (_, i) => `new ${i}`).join('\n') + '\n';
    const patch = unifiedDiff(before, after, { fromLabel: 'a', toLabel: 'b', maxEditDistance: 10 });
    expect(patch.split('\n').filter((item) => item.startsWith('-old')).length).toBe(50);
    expect(patch).toContain('@@ -1,50 +1,50 @@');
  });
});
