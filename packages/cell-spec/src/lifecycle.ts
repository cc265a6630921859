import { z } from 'zod';
import { CellError } from './errors.js';

/** The statuses of a cell's lifecycle. */
export const CellStatusSchema = z.enum([
  'provisioning',
  'active',
  'frozen',
  'archived',
  'destroyed',
]);
export type CellStatus = z.infer<typeof CellStatusSchema>;

/** Allowed transitions: provisioning → active → frozen ⇄ active → archived → destroyed. */
export const CELL_TRANSITIONS: Readonly<Record<CellStatus, readonly CellStatus[]>> = {
  provisioning: ['active'],
  active: ['frozen', 'archived'],
  frozen: ['active', 'archived'],
  archived: ['destroyed'],
  destroyed: [],
};

/** Statuses whose cells the daemon supervises. */
export const SUPERVISED_STATUSES: readonly CellStatus[] = ['active', 'frozen'];

/** The event appended to `events.jsonl` when a cell enters each status. */
export const TRANSITION_EVENTS = {
  active: 'cell_activated',
  frozen: 'cell_frozen',
  archived: 'cell_archived',
  destroyed: 'cell_destroyed',
} as const satisfies Partial<Record<CellStatus, string>>;

/** Whether the lifecycle allows `from → to`. */
export function canTransition(from: CellStatus, to: CellStatus): boolean {
  return CELL_TRANSITIONS[from].includes(to);
}

/**
 * @throws {CellError} CELL_ILLEGAL_TRANSITION naming both states when `from → to` is not allowed.
 */
export function assertTransition(from: CellStatus, to: CellStatus, where = 'cell'): void {
  if (!canTransition(from, to)) {
    const allowed = CELL_TRANSITIONS[from];
    throw new CellError(
      'CELL_ILLEGAL_TRANSITION',
      `${where}: cannot go from ${from} to ${to}${allowed.length ? ` (from ${from} only ${allowed.join(', ')})` : ` (${from} is final)`}`,
    );
  }
}
