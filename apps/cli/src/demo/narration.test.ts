import { parseCellEvent, serializeEvent, type AnyCellEvent } from '@pit/cell-spec';
import { describe, expect, it } from 'vitest';
import { narration } from './narration.js';

const context = { cellDir: '/cells/c1', pitInvocation: 'pit --config /demo/pit.toml' };
/** An event as the log holds it: serialized by cell-spec's writer, parsed by its reader. */
const logged = (input: Record<string, unknown>) => {
  const parsed = parseCellEvent(JSON.parse(serializeEvent(input as never)));
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.event as AnyCellEvent & Record<string, unknown>;
};

describe('narration', () => {
  it('tells nothing of a checkpoint (whose files is a count), instead of throwing on it', () => {
    const event = logged({
      event: 'checkpoint_created',
      checkpoint: 'ckpt-1',
      bytes: 10,
      files: 3,
      sha256: 'a'.repeat(64),
      created_by: 'pit checkpoint create',
      reason: 'operator',
    });
    expect(() => narration(event, context)).not.toThrow();
    expect(narration(event, context)).toBeUndefined();
  });

  it('tells a rollback with each file and both hashes', () => {
    const event = logged({
      event: 'config_rolled_back',
      agent: 'smith',
      reason: 'bad_config',
      source: 'snapshot',
      files: [
        {
          path: '/cells/c1/config/smith.json',
          old_sha256: 'b'.repeat(64),
          new_sha256: 'c'.repeat(64),
        },
      ],
    });
    expect(narration(event, context)).toBe(
      'config rolled back: config/smith.json bbbbbbbb → cccccccc',
    );
  });
});
