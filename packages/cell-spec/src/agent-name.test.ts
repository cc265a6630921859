import { describe, expect, it } from 'vitest';
import { AgentNameSchema, assertAgentName, assertCellUuid } from './agent-name.js';
import { PitError } from './errors.js';

describe('AgentNameSchema', () => {
  it.each([
    'forge',
    'allegro',
    'a',
    'bezalel-2',
    'timmy.v2',
    'x_y',
    '0day',
    'x..y',
    'a'.repeat(64),
  ])('accepts %s', (name) => {
    expect(AgentNameSchema.safeParse(name).success).toBe(true);
  });

  it.each([
    '',
    '../../etc',
    '..',
    'Forge',
    '-lead',
    '.hidden',
    'a/b',
    'a b',
    'a'.repeat(65),
    'ünïcode',
    'a\0b',
    'a\n',
    ' forge',
    'forge/',
  ])('refuses %j before it can become a file name', (name) => {
    expect(AgentNameSchema.safeParse(name).success).toBe(false);
    expect(() => assertAgentName(name, 'agents.0.name')).toThrow(/agents\.0\.name: .* must match/);
  });

  it('throws a PitError with code CELL_BAD_NAME', () => {
    try {
      assertAgentName('../../etc');
      expect.unreachable();
    } catch (error) {
      expect(PitError.is(error)).toBe(true);
      expect((error as PitError).code).toBe('CELL_BAD_NAME');
    }
  });
});

describe('assertCellUuid', () => {
  it('accepts a v4 uuid and refuses anything else', () => {
    expect(assertCellUuid('3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b')).toBe(
      '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b',
    );
    expect(() => assertCellUuid('3F2A1C4E-9B7D-4E2F-8A1B-0C9D8E7F6A5B')).toThrow(/version-4 UUID/);
    expect(() => assertCellUuid('../x')).toThrow(/CELL|version-4/);
  });
});
