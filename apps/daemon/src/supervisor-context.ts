/**
 * The explicit context every supervision module takes: the config in force, the services the
 * loop was built with (executor, state store, event writer, approvals, snapshots, notifier,
 * metrics), the fleet of slots, and the two entry points modules call back into (evaluate an
 * agent soon; run discovery again). supervisor.ts builds it once; nothing else constructs one.
 */
import type { PolicyConfig } from '@pit/policy';
import type { Assessor, ProbeScheduler, ProcessTable } from '@pit/probes';
import type { SnapshotStore } from '@pit/snapshot';
import type { ApprovalStore } from './approvals.js';
import type { BusHub } from './bus-hub.js';
import type { ClusterMember } from './cluster/cluster-member.js';
import type { PitConfig } from './config-schema.js';
import type { EventWriter } from './event-writer.js';
import type { Executor } from './executor.js';
import type { AgentCgroups } from './agent-cgroups.js';
import type { Fleet } from './fleet.js';
import type { Logger } from './logger.js';
import type { Counter, Histogram, MetricsRegistry } from './metrics.js';
import type { Notifier } from './notifier.js';
import type { ProviderAlerts } from './provider-alerts.js';
import type { ProviderTracker } from './provider-health.js';
import type { ProviderMatrixWriter } from './provider-matrix-file.js';
import type { Slot } from './slot.js';
import type { StateStore } from './state-store.js';

/** The loop's counters and histograms. */
export interface SupervisorMetrics {
  registry: MetricsRegistry;
  probesTotal: Counter;
  probeLatency: Histogram;
  restartsTotal: Counter;
  rollbacksTotal: Counter;
  approvalsTotal: Counter;
  sweepDuration: Histogram;
}

/** Discovery in the daemon's loop (probes scheduled) or in a one-shot sweep. */
export type SyncMode = 'loop' | 'sweep';

/** See the module header. Mutable fields change on reload and stop only. */
export interface SupervisorContext {
  config: PitConfig;
  policy: PolicyConfig;
  /** The `[policy]` table as written (for reference checks). */
  policyInput: unknown;
  readonly env: Record<string, string | undefined>;
  readonly logger: Logger;
  readonly now: () => number;
  /** Decide and record, but start, stop and roll back nothing. */
  readonly dryRun: boolean;
  readonly stateDir: string;
  /** The id every agent this daemon starts carries (`PIT_INSTANCE`). */
  readonly instance: string;
  readonly executor: Executor;
  /** The agent cgroups, when on (a running agent's log is rotated with its group frozen). */
  readonly cgroups?: AgentCgroups;
  readonly store: StateStore;
  readonly events: EventWriter;
  readonly approvals: ApprovalStore;
  readonly snapshots: SnapshotStore;
  readonly notifier: Notifier;
  readonly busHub: BusHub | undefined;
  /** The cgroup of an agent's starts, where agent cgroups are on. */
  readonly cgroupOf: ((cell: string | undefined, agent: string) => string) | undefined;
  /** This daemon in its cluster (`[cluster]`); `undefined` alone. */
  readonly cluster: ClusterMember | undefined;
  readonly metrics: SupervisorMetrics;
  readonly fleet: Fleet;
  readonly processTable: ProcessTable;
  /** The fleet's assessor (@pit/probes): every agent's probe results folded into health. */
  readonly assessor: Assessor;
  /** The provider health matrix (provider-health.ts). */
  readonly providers: ProviderTracker;
  /** `<state_dir>/providers.json`, written in the background when the matrix changes. */
  readonly providerMatrixFile: ProviderMatrixWriter;
  /** One alert per provider outage (provider-alerts.ts). */
  readonly providerAlerts: ProviderAlerts;
  /** The probe scheduler, while the loop runs (not in a one-shot sweep). */
  scheduler: ProbeScheduler | undefined;
  stopped: boolean;
  /** Tracks a notification in flight (awaited by sweep and stop). */
  notify(work: Promise<void>): void;
  /** Evaluates the agent after any evaluation of it already queued. */
  evaluateSoon(slot: Slot): Promise<void>;
  /** Runs discovery again (one at a time). */
  sync(mode: SyncMode): Promise<void>;
}

/** An ISO-8601 timestamp of `ms`. */
export const iso = (ms: number): string => new Date(ms).toISOString();
