/**
 * The fleet as @pit/policy sees it, built from the slots: agents keyed by slot key
 * (`<cell uuid>/<name>`, `host/<name>`), so that two cells' agents of the same name are two
 * agents, standbys that run nowhere yet as `standby/<name>`; and the same fleet seen from one
 * agent's cell, where a name means the agent of that name in that cell. Pure: no I/O, no clock.
 */
import { indexFleet, type FleetAgent, type FleetIndex } from '@pit/policy';
import type { PitConfig } from './config-schema.js';
import { scopedKey, type Slot } from './slot.js';

/** A configured local agent, not pinned to a cell: it can be started in any cell (a standby substitute). */
export function isStandby(config: PitConfig, name: string): boolean {
  const agent = config.agents[name];
  return (
    agent !== undefined &&
    agent.argv !== undefined &&
    agent.host === 'local' &&
    agent.cell === undefined
  );
}

/** How policy sees one slot: a revived agent not healthy yet is still dead (see below). */
function agentOf(slot: Slot, substitutingFor: string | undefined): FleetAgent {
  // Revived but not healthy yet: still a death of this storm for the fleet brake (it counts
  // deaths within its window; exits decided one by one would otherwise never add up).
  const recovering = slot.state.health === 'unknown' && slot.state.first_dead_at !== undefined;
  const state = recovering ? 'dead' : slot.state.health;
  const since =
    state === 'dead' ? (slot.state.first_dead_at ?? slot.state.since) : slot.state.since;
  return {
    name: slot.key,
    state,
    ...(since ? { since: Date.parse(since) } : {}),
    ...(substitutingFor !== undefined ? { substituting_for: substitutingFor } : {}),
  };
}

/**
 * Every slot (and each standby not running anywhere) as policy's fleet, indexed. One pass over
 * the slots collects only the dead and the substitutions; an agent's entry is made when policy
 * looks it up, so rebuilding after each death of a large fleet costs little.
 */
export function indexSlots(
  slots: ReadonlyMap<string, Slot>,
  config: PitConfig,
  restarts: readonly number[],
): FleetIndex {
  const standbys = new Set(Object.keys(config.agents).filter((name) => isStandby(config, name)));
  const dead: { name: string; since: number }[] = [];
  /** Substitute's key → the key of the agent it stands in for. */
  const substituting = new Map<string, string>();
  for (const slot of slots.values()) {
    standbys.delete(slot.name);
    const { health, first_dead_at, since, substituted_by } = slot.state;
    const deadSince =
      health === 'dead'
        ? (first_dead_at ?? since)
        : health === 'unknown'
          ? first_dead_at
          : undefined;
    if (deadSince) dead.push({ name: slot.key, since: Date.parse(deadSince) });
    if (substituted_by) {
      const standIn = scopedKey(slot, substituted_by);
      if (slots.has(standIn)) substituting.set(standIn, slot.key);
    }
  }
  return indexFleet({
    size: slots.size + standbys.size,
    get(name) {
      const slot = slots.get(name);
      if (slot) return agentOf(slot, substituting.get(name));
      if (name.startsWith('standby/') && standbys.has(name.slice('standby/'.length)))
        return { name, state: 'healthy' };
      return undefined;
    },
    dead,
    substitutions: [...substituting].map(([standIn, forKey]) => [forKey, standIn] as const),
    restarts,
  });
}

/**
 * The shared fleet index seen from one agent's cell: policy looks agents up by name (itself,
 * its substitutes), and a name means the agent of that name in the same cell (where a
 * substitute is started), or a standby that can be started there.
 */
export function fleetFrom(base: FleetIndex, slot: Slot, config: PitConfig): FleetIndex {
  const nameOf = (key: string) => key.slice(key.indexOf('/') + 1);
  return {
    ...base,
    get(name) {
      const entry = base.get(scopedKey(slot, name));
      if (entry) {
        return {
          ...entry,
          name,
          ...(entry.substituting_for !== undefined
            ? { substituting_for: nameOf(entry.substituting_for) }
            : {}),
        };
      }
      return isStandby(config, name) ? { name, state: 'healthy' } : undefined;
    },
    substituteOf(name) {
      const key = base.substituteOf(scopedKey(slot, name));
      return key === undefined ? undefined : nameOf(key);
    },
    deadPosition: (name) => base.deadPosition(scopedKey(slot, name)),
  };
}
