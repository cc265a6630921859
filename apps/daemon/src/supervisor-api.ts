/**
 * The supervisor's public shape: its options, what it reports (fleet status, sweep report) and
 * the operations the daemon, the HTTP API and the CLI call. Types only; the loop is composed in
 * supervisor.ts.
 */
import type { ProviderEntry } from './provider-health.js';
import type { AgentState, OperatorAction } from '@pit/cell-spec';
import type { ApprovalChannel } from '@pit/notify';
import type { ApprovalView } from './approval-view.js';
import type { BusHub } from './bus-hub.js';
import type { ClusterMember, ClusterView } from './cluster/cluster-member.js';
import type { PitConfig } from './config-schema.js';
import type { ControlRequest, ControlResult } from './controls.js';
import type { Executor } from './executor.js';
import type { ApprovalDecisionBody, ApprovalDecisionResult } from './http.js';
import type { Logger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';
import type { Notifier } from './notifier.js';

/** Options of {@link createSupervisor}. */
export interface SupervisorOptions {
  /** The validated config (paths absolute). */
  config: PitConfig;
  /** The daemon's environment (PATH for agents, `env_from` secrets). */
  env: Record<string, string | undefined>;
  logger?: Logger;
  metrics?: MetricsRegistry;
  /** Decide and record, but start, stop and roll back nothing. @default false */
  dryRun?: boolean;
  /** Clock, ms since epoch. @default Date.now */
  now?: () => number;
  /** Use this executor (tests). */
  executor?: Executor;
  /** The `[policy]` table as written, for @pit/policy's reference checks (agents, missions, channels it names must exist). */
  policyInput?: unknown;
  /** Where deaths and recoveries are reported (death issues). @default nobody */
  notifier?: Notifier;
  /** The mission buses served over WebSocket: agents get credentials, handoffs go through the open bus. */
  busHub?: BusHub;
  /** Channels that show approval requests and bring answers back (Telegram, Nostr). */
  approvalChannels?: ApprovalChannel[];
  /** This daemon's membership of a cluster (`[cluster]`): every start is claimed first. */
  cluster?: ClusterMember;
}

/** One supervised agent in {@link FleetStatus}. */
export interface AgentStatus {
  key: string;
  agent: string;
  cell?: string;
  mission?: string;
  host: string;
  /**
   * The recorded health; `starting` while its process runs but has not proved itself yet (no
   * verdict since it started: within its startup grace, or no heartbeat of this incarnation yet).
   */
  health: AgentState['health'] | 'starting' | 'stopped';
  since?: string;
  first_dead_at?: string;
  heartbeat_age_s?: number;
  pid?: number;
  revive_attempts: number;
  restarts: number;
  backoff_until?: string;
  pending_approval?: string;
  substituted_by?: string;
  last_decision?: AgentState['last_decision'];
  failing: string[];
  /** In a cluster: the host running this incarnation and its fencing epoch. */
  owner?: { host: string; epoch: number };
  /** Its primary provider, the one its config selects now, and the primary's status (agents that declare one). */
  provider?: { primary: string; current: string; status: string };
  /** `primary_dead` / `primary_degraded` while its primary provider is. */
  reasons?: string[];
}

/** What `GET /api/status` and `pit status` show. */
export interface FleetStatus {
  generated_at: string;
  cells: Array<{ uuid: string; name?: string; mission: string; status: string; agents: string[] }>;
  agents: AgentStatus[];
  /** The pending approval requests (times as ISO-8601 strings, like every time here). */
  approvals: ApprovalView[];
  problems: string[];
  /** In a cluster (`[cluster]`): the live hosts, their lease age, and who owns which agent. */
  cluster?: ClusterView;
  /**
   * The provider health matrix (`[providers.<name>]`): a running daemon's own, or (read from disk,
   * `pit status`) the one the daemon last persisted in `<state_dir>/providers.json`.
   */
  providers?: ProviderEntry[];
  /**
   * Read from disk only: when that matrix was written, and whether the daemon that wrote it still
   * runs (`live: false`: it is what a daemon saw before it stopped, not the present).
   */
  providers_as_of?: { written_at: string; live: boolean };
}

/** The outcome of one {@link Supervisor.sweep}. */
export interface SweepReport {
  /** Every agent healthy (`pit sweep --once` exits 1 when not). */
  healthy: boolean;
  /** What discovery could not use: corrupt or hostile cells, a policy that does not check (`pit sweep --once` exits 3 when there is one and every agent is healthy). */
  problems: string[];
  agents: Array<{
    key: string;
    health: AgentState['health'];
    action?: string;
    rule?: string;
    reason?: string;
  }>;
  durationMs: number;
}

/** An agent process named in a {@link StopOutcome}. */
export interface AgentLeft {
  /** The agent's key (`<cell uuid>/<name>`, or `host/<name>` outside cells). */
  agent: string;
  pid: number;
}

/** What {@link Supervisor.stop} did with the agents it was supervising. */
export interface StopOutcome {
  /** Agents still running after the stop (the default: agents outlive the daemon). */
  leftRunning: AgentLeft[];
  /** Agents it stopped (with `stopAgents`). */
  stopped: AgentLeft[];
}

/** The supervision loop. */
export interface Supervisor {
  /** Discovers cells, adopts or starts agents and schedules their probes. */
  start(): Promise<void>;
  /**
   * One full check of every agent and the actions it calls for (the cron one-shot): each
   * probe runs once, each verdict goes to the policy, decisions are carried out and persisted.
   */
  sweep(): Promise<SweepReport>;
  status(): Promise<FleetStatus>;
  /** Answers an approval request (HTTP, CLI): the approved action is carried out at once. */
  decideApproval(
    id: string,
    decision: 'approve' | 'deny',
    body: ApprovalDecisionBody & { channel?: 'http' | 'cli' },
  ): Promise<ApprovalDecisionResult>;
  /**
   * An operator's control of one agent (`restart`, `stop`, `start`, `reset`), named by `ref`
   * (`name` or `cell/name`): carried out after the evaluation in progress; an `agent_control` event.
   */
  control(ref: string, action: OperatorAction, request: ControlRequest): Promise<ControlResult>;
  /** Applies a new config: agents added are supervised, removed ones no longer, changed ones re-scheduled. */
  reload(config: PitConfig, policyInput?: unknown): Promise<void>;
  /**
   * Stops probing and flushes state; stops the agents too when `stopAgents`. Resolves with the
   * agents it stopped and those it left running (detached: they keep nothing of this process
   * alive, and the next daemon or sweep adopts them).
   */
  stop(options?: { stopAgents?: boolean }): Promise<StopOutcome>;
  /** The loop's own health: discovery ran recently and the last one succeeded. */
  health(): { ok: boolean; last_discovery?: string; reason?: string };
  metrics: MetricsRegistry;
}
