/**
 * The state store of a clustered daemon: the file store (state-store.ts), each save of an agent
 * this host holds also shared across hosts (agent-records.ts) when what outlives the host changed
 * (`pit stop`, restarts, a substitute), one write in flight per agent. The host that takes the
 * agent over reads it back (fleet-sync.ts) before it acts.
 */
import type { AgentState } from '@pit/cell-spec';
import type { StateStore } from '../state-store.js';
import { carriedState } from './agent-records.js';
import type { ClusterMember } from './cluster-member.js';

/** `inner`, with the shares described in the module header. */
export function withSharedRecords(inner: StateStore, member: ClusterMember): StateStore {
  const states = new Map<string, AgentState>();
  /** What was last shared per agent (JSON of the carried fields). */
  const shared = new Map<string, string>();
  const inFlight = new Map<string, Promise<void>>();
  const again = new Set<string>();

  const share = (key: string): void => {
    if (inFlight.has(key)) {
      again.add(key);
      return;
    }
    const state = states.get(key);
    if (!state || member.epochOf(key) === undefined) return;
    const carried = JSON.stringify(carriedState(state));
    if (shared.get(key) === carried) return;
    const write = member
      .share(key, state)
      .then(() => void shared.set(key, carried))
      .finally(() => {
        inFlight.delete(key);
        if (again.delete(key)) share(key);
      });
    inFlight.set(key, write);
  };

  return {
    loadScope: (scope) => inner.loadScope(scope),
    attach(ref, state) {
      states.set(ref.key, state);
      inner.attach(ref, state);
    },
    detach(key) {
      states.delete(key);
      shared.delete(key);
      inner.detach(key);
    },
    async save(key) {
      await inner.save(key);
      share(key);
    },
    async compareAndSet(key, state, revision) {
      const result = await inner.compareAndSet(key, state, revision);
      if (result.ok) {
        states.set(key, state);
        share(key);
      }
      return result;
    },
    revision: (key) => inner.revision(key),
    persistedAt: (key) => inner.persistedAt(key),
    healthyPeriods: (key) => inner.healthyPeriods(key),
    recordRestart: (at) => inner.recordRestart(at),
    fleetRestarts: () => inner.fleetRestarts(),
    historyChanged: () => inner.historyChanged(),
    async flush() {
      await inner.flush();
      await Promise.all(inFlight.values());
    },
    settle: () => inner.settle(),
    close: () => inner.close(),
    problems: () => inner.problems(),
  };
}
