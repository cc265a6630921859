/**
 * The fleet: every supervised slot by key, the substitutes being set up (held back from
 * discovery until their handoff exists), and the fleet index policy reads, built once by
 * {@link indexSlots} and shared by every decision until something in the fleet changes. It owns
 * membership only; health, actions and persistence live elsewhere.
 */
import type { FleetIndex } from '@pit/policy';
import type { PitConfig } from './config-schema.js';
import { indexSlots } from './fleet-view.js';
import type { Slot } from './slot.js';

/** See the module header. */
export interface Fleet {
  readonly slots: ReadonlyMap<string, Slot>;
  /** Substitutes being set up: discovery must not start them before their handoff exists. */
  readonly heldBack: Set<string>;
  add(slot: Slot): void;
  remove(slot: Slot): void;
  /**
   * How many slots were removed so far. A removed agent's process is left running (it is no
   * longer supervised, not stopped): a scan of /proc from before a removal may miss it.
   */
  readonly removals: number;
  /** Something policy sees changed (a health or `since`, a substitution, a start, the config). */
  changed(): void;
  /** The shared index, rebuilt after a change. */
  index(config: PitConfig, restarts: () => readonly number[]): FleetIndex;
}

/** Creates an empty fleet. */
export function createFleet(): Fleet {
  const slots = new Map<string, Slot>();
  let index: FleetIndex | undefined;
  let removals = 0;
  return {
    slots,
    get removals() {
      return removals;
    },
    heldBack: new Set(),
    add(slot) {
      slots.set(slot.key, slot);
      index = undefined;
    },
    remove(slot) {
      slots.delete(slot.key);
      removals += 1;
      index = undefined;
    },
    changed() {
      index = undefined;
    },
    index(config, restarts) {
      index ??= indexSlots(slots, config, restarts());
      return index;
    },
  };
}
