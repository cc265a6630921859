/**
 * The state store of a clustered daemon: the file store (state-store.ts), each save of an agent
 * this host holds also shared across hosts (agent-records.ts) when what outlives the host changed
 * (`pit stop`, restarts, a substitute), or when it is held again after the member let it go
 * (its record may have been swept since), one write in flight per agent; a save resolves once the
 * cluster has it. The host that takes the agent over reads it back (fleet-sync.ts) before it acts.
 */
import type { AgentState } from '@pit/cell-spec';
import { openFileStateStore, type StateStore } from '../state-store.js';
import { carriedState } from './carried-state.js';
import type { ClusterMember } from './cluster-member.js';

/** `inner`, with the shares described in the module header. */
export function withSharedRecords(inner: StateStore, member: ClusterMember): StateStore {
  const states = new Map<string, AgentState>();
  /** What was last shared per agent (JSON of the carried fields). */
  const shared = new Map<string, string>();
  /** The last write asked for per agent: each waits for the one before (one in flight). */
  const inFlight = new Map<string, Promise<void>>();
  // Let go (its owner record released): its record may be swept (records-retention.ts), so the
  // next share once it is held again writes it whether or not the carried fields changed.
  member.onLetGo((key) => shared.delete(key));

  /** Shares the agent's carried fields when they changed since the last share; resolves once written. */
  const share = (key: string): Promise<void> => {
    const changed = () => {
      const state = states.get(key);
      if (!state || member.epochOf(key) === undefined) return undefined;
      const carried = JSON.stringify(carriedState(state));
      return shared.get(key) === carried ? undefined : { state, carried };
    };
    if (!changed()) return Promise.resolve();
    const next = (inFlight.get(key) ?? Promise.resolve()).then(async () => {
      const now = changed();
      if (!now) return;
      await member.share(key, now.state);
      shared.set(key, now.carried);
    });
    inFlight.set(key, next);
    void next.finally(() => {
      if (inFlight.get(key) === next) inFlight.delete(key);
    });
    return next;
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
    // Awaited: an operator's `pit stop` is answered once the cluster has it, so a host that
    // dies right after cannot lose it (the share is a write only when the carried fields changed).
    async save(key) {
      await inner.save(key);
      await share(key);
    },
    async compareAndSet(key, state, revision) {
      const result = await inner.compareAndSet(key, state, revision);
      if (result.ok) {
        states.set(key, state);
        await share(key);
      }
      return result;
    },
    revision: (key) => inner.revision(key),
    persistedAt: (key) => inner.persistedAt(key),
    healthyPeriods: (key) => inner.healthyPeriods(key),
    openHealthyPeriod: (key, from, keep) => inner.openHealthyPeriod(key, from, keep),
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

/** The file store; clustered, its records of agents this host holds are shared across hosts too. */
export async function openStateStore(
  options: Parameters<typeof openFileStateStore>[0],
  cluster: ClusterMember | undefined,
): Promise<StateStore> {
  const files = await openFileStateStore(options);
  return cluster ? withSharedRecords(files, cluster) : files;
}
