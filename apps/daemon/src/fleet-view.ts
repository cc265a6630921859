/**
 * The fleet as @pit/policy sees it, built from the slots: agents keyed by slot key
 * (`<cell uuid>/<name>`, `host/<name>`), so that two cells' agents of the same name are two
 * agents, standbys that run nowhere yet as `standby/<name>`; and the same fleet seen from one
 * agent's cell, where a name means the agent of that name in that cell. Pure: no I/O, no clock.
 */
import type { FleetIndex, FleetView } from '@pit/policy';
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

/** Every slot (and each standby not running anywhere) as policy's fleet view. */
export function fleetView(
  slots: Iterable<Slot>,
  config: PitConfig,
  restarts: readonly number[],
): FleetView {
  const byKey = new Map<string, FleetView['agents'][number]>();
  const names = new Set<string>();
  const agents: FleetView['agents'][number][] = [];
  const all = [...slots];
  for (const slot of all) {
    // Revived but not healthy yet: still a death of this storm for the fleet brake (it counts
    // deaths within its window; exits decided one by one would otherwise never add up).
    const recovering = slot.state.health === 'unknown' && slot.state.first_dead_at !== undefined;
    const state = recovering ? 'dead' : slot.state.health;
    const since =
      state === 'dead' ? (slot.state.first_dead_at ?? slot.state.since) : slot.state.since;
    const agent = { name: slot.key, state, ...(since ? { since: Date.parse(since) } : {}) };
    agents.push(agent);
    byKey.set(slot.key, agent);
    names.add(slot.name);
  }
  for (const slot of all) {
    const standIn = slot.state.substituted_by
      ? byKey.get(scopedKey(slot, slot.state.substituted_by))
      : undefined;
    if (standIn) Object.assign(standIn, { substituting_for: slot.key });
  }
  for (const name of Object.keys(config.agents)) {
    if (!names.has(name) && isStandby(config, name))
      agents.push({ name: `standby/${name}`, state: 'healthy' });
  }
  return { agents, restarts: [...restarts] };
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
