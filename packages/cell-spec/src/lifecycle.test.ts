import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PitError } from './errors.js';
import {
  assertTransition,
  canTransition,
  CELL_TRANSITIONS,
  CellStatusSchema,
  SUPERVISED_STATUSES,
  type CellStatus,
} from './lifecycle.js';

const statuses = CellStatusSchema.options;

describe('the cell lifecycle', () => {
  it('allows exactly provisioning → active → frozen ⇄ active → archived → destroyed', () => {
    const allowed = statuses.flatMap((from) =>
      statuses.filter((to) => canTransition(from, to)).map((to) => `${from}→${to}`),
    );
    expect(allowed.sort()).toEqual(
      [
        'active→archived',
        'active→frozen',
        'archived→destroyed',
        'frozen→active',
        'frozen→archived',
        'provisioning→active',
      ].sort(),
    );
  });

  it('supervises only active and frozen cells', () => {
    expect([...SUPERVISED_STATUSES].sort()).toEqual(['active', 'frozen']);
  });

  it('refuses every other pair with CELL_ILLEGAL_TRANSITION naming both states (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...statuses),
        fc.constantFrom(...statuses),
        (from: CellStatus, to: CellStatus) => {
          if (CELL_TRANSITIONS[from].includes(to)) {
            expect(() => assertTransition(from, to)).not.toThrow();
            return;
          }
          try {
            assertTransition(from, to, 'cells/x/cell.json');
            expect.unreachable();
          } catch (error) {
            expect(PitError.is(error) && error.code).toBe('CELL_ILLEGAL_TRANSITION');
            expect((error as Error).message).toContain(
              `cells/x/cell.json: cannot go from ${from} to ${to}`,
            );
          }
        },
      ),
    );
  });

  it('says when a status is final', () => {
    expect(() => assertTransition('destroyed', 'active')).toThrow(
      /cannot go from destroyed to active \(destroyed is final\)/,
    );
  });
});
