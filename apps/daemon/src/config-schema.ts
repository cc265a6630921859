import { isAbsolute, normalize, relative } from 'node:path';
import { z } from 'zod';
import {
  AgentNameSchema,
  CellUuidSchema,
  DEFAULT_CELLS_ROOT,
  IsolationProfileSchema,
  type IsolationProfile,
} from '@pit/cell-spec';
import { IssuesConfigSchema, NostrConfigSchema, TelegramConfigSchema } from '@pit/notify';
import { RoleOverridesSchema, RoleSchema } from '@pit/mission-bus';
import { PolicyConfigSchema } from '@pit/policy';
import {
  isLoopbackHost,
  listenHost,
  OPERATOR_IDENTITY,
  remoteListenDanger,
} from './http-access.js';
import { LOG_LEVELS } from './logger.js';
import {
  AgentProviderFields,
  crossCheckProviders,
  ProviderConfigSchema,
  ProviderNameSchema,
} from './provider-config.js';

/** The name of an environment variable: where a secret lives (secrets are never written in the config). */
export const EnvNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
  message: 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)',
});

/** `host:port` (IPv6 as `[::1]:port`); port 0 picks a free port. */
export const ListenAddressSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, {
    message: 'must be host:port (e.g. 127.0.0.1:7420)',
  })
  .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, {
    message: 'port must be 0–65535',
  });

const seconds = (fallback: number) =>
  z.number().positive({ message: 'must be a positive number of seconds' }).default(fallback);

/** `[daemon]`: the daemon process itself. Relative paths are relative to the config file's directory. */
export const DaemonSectionSchema = z.strictObject({
  /** Where the daemon keeps its lock, pid file, snapshots and podman config. @default '.pit/state' */
  state_dir: z.string().min(1).default('.pit/state'),
  /** @default '<state_dir>/pit.pid' */
  pid_file: z.string().min(1).optional(),
  /** @default 'info' */
  log_level: z.enum(LOG_LEVELS).default('info'),
  /** Also append JSON log lines here. */
  log_file: z.string().min(1).optional(),
  /** Stop every agent when the daemon exits (normally they keep running). @default false */
  stop_agents_on_exit: z.boolean().default(false),
  /**
   * Standing restarts: the agent launcher starts an agent again the moment it exits, when the
   * policy would restart it at once; the daemon then decides the death as always and kills that
   * process unless its decision is that restart (standing-restart.ts). @default false
   */
  standing_restarts: z.boolean().default(false),
  /**
   * How far V8 lets the daemon's heap grow past its live objects before a full collection, in
   * percent (V8's `--heap-growing-percent`): 30 keeps about 1.3× the live heap. 0 leaves V8's
   * own rule, which lets it reach 4× (measured at 11,000 agents: about 60 MB more RSS, no less
   * CPU). Set by the daemon for its own process (`pit daemon`, or a `runDaemon` that handles
   * signals). @default 30
   */
  heap_growth_percent: z.number().int().min(0).max(300).default(30),
  http: z
    .strictObject({
      /** @default true */
      enabled: z.boolean().default(true),
      /** @default '127.0.0.1:7420' */
      listen: ListenAddressSchema.default('127.0.0.1:7420'),
      /** The environment variable holding the operator's bearer token (≥ 32 characters; decisions are recorded as `operator`). @default 'PIT_HTTP_TOKEN' */
      token_env: EnvNameSchema.default('PIT_HTTP_TOKEN'),
      /** Listen on a non-loopback address (refused without it: plain HTTP, no TLS). @default false */
      allow_remote: z.boolean().default(false),
      /** Further names a request's `Host` may carry (`name` any port, `name:port`), e.g. a TLS proxy's host. @default [] */
      allowed_hosts: z
        .array(
          z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, {
            message: 'must be a host name or address, optionally with :port',
          }),
        )
        .default([]),
      /** Open connections at most; more are closed as soon as they are accepted. @default 256 */
      max_connections: z.number().int().positive().max(100_000).default(256),
      /** Open connections from one remote address (an IPv6 /64) at most, so that a flood from one address leaves room for others; more are closed at accept. @default 64 */
      max_connections_per_address: z.number().int().positive().max(100_000).default(64),
      /** Open `/api/events` streams at most; more get 503. @default 32 */
      max_event_streams: z.number().int().positive().max(10_000).default(32),
      /** Open `/api/events` streams from one remote address (an IPv6 /64) at most; more get 503. @default 8 */
      max_event_streams_per_address: z.number().int().positive().max(10_000).default(8),
      /** A connection must send a request's headers within this time, else it is closed. @default 10 (s) */
      header_timeout_s: seconds(10),
      /** A connection with no traffic either way for this long is closed (event streams send a keep-alive every 15 s). @default 60 (s) */
      idle_timeout_s: seconds(60),
      /** Named approvers, each with their own token: `[daemon.http.approvers.<name>] token_env = "…"`; a decision records the name. @default {} */
      approvers: z
        .record(
          AgentNameSchema,
          z.strictObject({
            token_env: EnvNameSchema,
            /** The agent this approver is (`name` or `cell/name`): over MCP it can never approve, restart or stop that agent. */
            agent: z
              .string()
              .regex(/^([0-9a-f-]{1,36}\/)?[a-z0-9][a-z0-9._-]{0,63}$/, {
                message: 'must be an agent name, or cell/name with a cell uuid or a prefix of one',
              })
              .optional(),
          }),
        )
        .default({}),
    })
    .prefault({}),
});

/** `[cells]`: where mission cells live and how they are watched. */
export const CellsSectionSchema = z.strictObject({
  /** @default '.pit/missions' */
  root: z.string().min(1).default(DEFAULT_CELLS_ROOT),
  /** A heartbeat older than this counts as a failed check. @default 90 (s) */
  heartbeat_stale_s: seconds(90),
  /**
   * Deprecated, still accepted: how long an agent must have been dead before it is revived (s).
   * Write `[policy.defaults] dead_after` instead (see ./config-deprecations.ts).
   */
  resurrect_after_s: z.number().nonnegative().optional(),
  /**
   * Deprecated, still accepted: revive attempts before escalating. Write `[policy.defaults]
   * max_revive_attempts` instead (see ./config-deprecations.ts).
   */
  max_revive_attempts: z.number().int().positive().optional(),
  /** Default probe interval of every agent. @default 10 (s) */
  poll_interval_s: seconds(10),
  /** Watch the root for new cells (else they are found on the next poll). @default true */
  watch: z.boolean().default(true),
});

/** A file snapshotted as last known good, with an optional canonical version in git. */
export const ConfigFileSchema = z.strictObject({
  /** Relative to the cell directory (or to `cwd` outside cells), or absolute. */
  path: z.string().min(1),
  /** Where the canonical version lives, used when no snapshot exists. */
  canonical: z
    .strictObject({
      repo: z.string().min(1),
      ref: z.string().min(1).default('main'),
      path: z.string().min(1),
    })
    .optional(),
});

/** `probes`: how an agent's health is observed. */
export const AgentProbesSchema = z.strictObject({
  /** HTTP GET that must answer 2xx. */
  health_url: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional(),
  /** `host:port` that must accept a TCP connection. */
  tcp: ListenAddressSchema.optional(),
  /** A WebSocket URL whose handshake must succeed. */
  ws: z.url({ protocol: /^wss?$/, message: 'must be a ws(s) URL' }).optional(),
  /** Check the agent's heartbeat file (agents in cells). @default true */
  heartbeat: z.boolean().default(true),
  /** A command whose exit code 0 means healthy. */
  exec: z.array(z.string().min(1)).min(1).optional(),
  /** A file holding the agent's pid (agents the daemon did not start). */
  pid_file: z.string().min(1).optional(),
  /** A regular expression matched against running processes' command lines. */
  process: z
    .string()
    .min(1)
    .refine(
      (pattern) => {
        try {
          new RegExp(pattern);
          return true;
        } catch {
          return false;
        }
      },
      { message: 'must be a valid regular expression' },
    )
    .optional(),
  /** Per-probe timeout. @default 5 (s) */
  timeout_s: seconds(5),
  /** Consecutive failed samples of a network or exec probe before it counts as failing (process and heartbeat probes count at once). @default 3 */
  failure_threshold: z.number().int().positive().default(3),
  /** Consecutive ok samples before a failing probe counts as passing. @default 1 */
  success_threshold: z.number().int().positive().default(1),
  /** @default cells.poll_interval_s */
  interval_s: z.number().positive().optional(),
});

/** `isolation = 2` or `isolation = { level = 2, network = "none", … }`. */
export const AgentIsolationSchema = z.preprocess(
  (value) => (typeof value === 'number' ? { level: value } : value),
  IsolationProfileSchema.extend({
    level: z.union([z.literal(1), z.literal(2), z.literal(3)], {
      error: 'must be 1 (workspace), 2 (namespaces) or 3 (podman)',
    }),
  }),
) as z.ZodType<IsolationProfile, unknown>;

/** `[agents.<name>]`: how to run and watch one agent. */
export const AgentConfigSchema = z.strictObject({
  /**
   * The command. argv[0] is absolute, a bare name looked up in PATH, or a relative path; with
   * `argv_base = "config"` a relative argv[0] and a relative script (the first argument that is
   * not an option, when it has a `/` or an extension) are resolved against the config file's
   * directory, never the workspace. Required to (re)start the agent.
   */
  argv: z.array(z.string().min(1)).min(1).optional(),
  /**
   * What relative paths in `argv` are relative to: `config` (the config file's directory) or
   * `workspace` (left as written: the program resolves them in its working directory, the cell's
   * shared `workspace/`, where agents can write: only for a program you trust every agent of the
   * cell with). @default 'config'
   */
  argv_base: z.enum(['config', 'workspace']).default('config'),
  /** Literal environment variables (never secrets). */
  env: z.record(EnvNameSchema, z.string()).default({}),
  /** Names of the daemon's environment variables passed through (how secrets reach an agent). */
  env_from: z.array(EnvNameSchema).default([]),
  /** Working directory; required outside cells (inside a cell it is the cell's `workspace/`). */
  cwd: z.string().min(1).optional(),
  /** @default 1 */
  isolation: AgentIsolationSchema.default({ level: 1 }),
  /**
   * Pin the agent to one cell, or `"none"` for an agent outside cells. Omitted: it runs in the
   * cells granted to it by `cells` or by the operator (`pit cell create`, `pit cell join`), never
   * in a cell only because its `cell.json` lists it.
   */
  cell: z.union([CellUuidSchema, z.literal('none')]).optional(),
  /** More cells (uuids) the agent may run in, when their manifest lists it. @default [] */
  cells: z.array(CellUuidSchema).default([]),
  /**
   * The agent's home directory: visible read-only to it at isolation level 2 (and hidden from
   * the others). Absolute, under one of `[sandbox] home_roots`. A `home` in `cell.json` is ignored.
   */
  home: z.string().min(1).optional(),
  /** Config files snapshotted on every healthy check and rolled back on death. */
  config_files: z.array(ConfigFileSchema).default([]),
  probes: AgentProbesSchema.prefault({}),
  /** `local`, or the name of a remote host the agent runs on (it cannot be restarted from here). @default 'local' */
  host: z.string().min(1).default('local'),
  /** Agents that may take over this one's role. */
  substitutes: z.array(AgentNameSchema).default([]),
  /** Time a (re)started agent gets to become healthy. @default 30 (s) */
  startup_grace_s: seconds(30),
  /** Time between SIGTERM and SIGKILL. @default 10 (s) */
  stop_grace_s: seconds(10),
  /** Restore the cell's latest workspace checkpoint before a revive. @default false */
  restore_checkpoint: z.boolean().default(false),
  /**
   * One log for stdout and stderr (`logs/<agent>.log`, in the order written) instead of stderr
   * apart in `logs/<agent>.err.log`. @default `[logs] merge_stderr`
   */
  merge_stderr: z.boolean('must be true or false').optional(),
  /** The model provider, its fallbacks and the files that select it (provider-config.ts). */
  ...AgentProviderFields,
});

/** `[checkpoints]`: periodic workspace checkpoints of active cells. */
export const CheckpointsSectionSchema = z.strictObject({
  /** 0 disables periodic checkpoints. @default 3600 (s) */
  interval_s: z.number().nonnegative().default(3600),
  /** How many checkpoints are kept per cell. @default 24 */
  retention: z.number().int().positive().default(24),
  /**
   * Cap of a restore's unpacked bytes; the limit applied is 4× the checkpoint's recorded size,
   * never more than this. @default 17179869184 (16 GiB, bytes)
   */
  restore_max_bytes: z
    .number()
    .int('must be a whole number of bytes')
    .positive()
    .default(16 * 1024 ** 3),
  /** Cap of a restore's entries; the limit applied is 4× the recorded entries. @default 1000000 */
  restore_max_entries: z.number().int('must be a whole number').positive().default(1_000_000),
});

/** `[bus]`: the mission bus the daemon serves (one durable stream per mission cell). */
export const BusSectionSchema = z.strictObject({
  /** Serve the bus over WebSocket and publish handoffs on it. @default true */
  enabled: z.boolean().default(true),
  /** Where the WebSocket server listens. @default '127.0.0.1:7421' */
  listen: ListenAddressSchema.default('127.0.0.1:7421'),
  /** Capabilities per role, replacing the defaults role by role (@pit/mission-bus). */
  roles: RoleOverridesSchema.optional(),
  /**
   * Each agent's bus role (`lead`, `write`, `read`, `audit`), by agent name. An agent left out
   * keeps what its mission's lead granted it, else `write`; the role in `cell.json` is never used.
   * @default {}
   */
  participants: z.record(AgentNameSchema, RoleSchema).default({}),
});

/** A host uid or gid for level-2 agents of a root daemon: never 0 (root). */
const SandboxIdSchema = z
  .number()
  .int('must be a whole number (a host id)')
  .min(1, 'must not be 0: a level-2 agent of a root daemon would be root to the file system')
  .max(4294967294, 'must be at most 4294967294');

/** `[sandbox]`: what the level-2 and level-3 sandboxes may expose of the host. */
export const SandboxSectionSchema = z.strictObject({
  /**
   * Directories that hold agents' homes (e.g. `/srv/wizards`): an agent's `home` must lie under
   * one of them; at level 2 they are hidden from every agent but for its own home. @default []
   */
  home_roots: z
    .array(
      z
        .string()
        .min(1)
        .refine((root) => isAbsolute(root) && normalize(root) !== '/', {
          message: 'must be an absolute directory path other than /',
        }),
    )
    .default([]),
  /**
   * A cgroup per agent start (levels 1 and 2), killed whole at the agent's exit and before its
   * next start: `auto` (a `pit-agents` group under the daemon's own cgroup2 group, when it can be
   * made), `off`, or an absolute cgroup2 directory to make the groups under. Without one, an
   * agent's descendants are found by the marks in their environment only. @default 'auto'
   */
  agent_cgroups: z
    .string()
    .refine((value) => value === 'auto' || value === 'off' || isAbsolute(value), {
      message: 'must be "auto", "off" or an absolute path to a cgroup2 directory',
    })
    .default('auto'),
  /**
   * With agent cgroups on, remount the cgroup2 file system that holds them with `favordynmods`
   * at the daemon's start (root, Linux ≥ 6.0): an agent's start joins its group through a task
   * migration, which otherwise waits for an RCU grace period (about 10 ms measured; 0.25 ms with
   * it) between an agent's exit and its restart. Host-wide: every fork and exit on the host
   * takes a slightly slower path; the daemon leaves it set when it exits. A failure is a
   * warning. @default false
   */
  cgroup_favordynmods: z.boolean().default(false),
  /**
   * The host user id level-2 agents run as when the daemon runs as root (a user namespace made
   * by root would make them root to the file system: every root-only file the sandbox does not
   * hide readable). Their cell's `workspace/` and `.lazarus/heartbeats/` are handed to it; the
   * daemon's own files stay root's. Best a dedicated id that nothing else runs as. Not 0. A daemon
   * that is not root ignores it: its agents are its own user. @default 65534 (nobody)
   */
  uid: SandboxIdSchema.default(65534),
  /** The host group id of those agents (no supplementary groups). Not 0. @default 65534 (nogroup) */
  gid: SandboxIdSchema.default(65534),
});

/**
 * `[logs]`: size rotation of the logs the daemon writes (each cell's `logs/events.jsonl`, the
 * host event log, and agents' `logs/<agent>.log` and `logs/<agent>.err.log`).
 */
export const LogsSectionSchema = z.strictObject({
  /**
   * A log file is rotated before a line would take it over this size; at least 4096, so that
   * a whole event line (up to 64 KiB) may take a file over it once. @default 10485760 (10 MiB, bytes)
   */
  max_bytes: z
    .number()
    .int('must be a whole number of bytes')
    .min(4096, 'must be at least 4096 bytes')
    .default(10 * 1024 * 1024),
  /** Files kept per log, the live one included (5: the live file and 4 older ones). @default 5 */
  keep: z
    .number()
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(100, 'must be at most 100')
    .default(5),
  /**
   * Every agent's stdout and stderr in one file (`logs/<agent>.log`, in the order written)
   * instead of stderr apart in `logs/<agent>.err.log`; `[agents.<name>] merge_stderr` overrides
   * it per agent. @default false
   */
  merge_stderr: z.boolean('must be true or false').default(false),
});

/**
 * `[cluster]`: several hosts' daemons coordinated through NATS JetStream (cluster/). Without it
 * the daemon runs alone with its file state, exactly as before.
 */
export const ClusterSectionSchema = z.strictObject({
  /** NATS client URLs of the cluster's nodes, e.g. `["nats://10.0.0.1:4222"]`. */
  servers: z
    .array(
      z.string().regex(/^(nats|tls):\/\/[^\s/]+$/, {
        message: 'must be a NATS URL such as nats://127.0.0.1:4222',
      }),
    )
    .min(1, 'must name at least one NATS server'),
  /** This host's id: unique in the cluster. */
  host_id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, {
    message: 'must be 1 to 64 letters, digits, _ or -',
  }),
  /** The environment variable holding the NATS auth token, when the servers require one (the token never goes in this file). */
  token_env: EnvNameSchema.optional(),
  /** The host lease T, seconds: a host that has not renewed for this long is gone and its agents are taken over. @default 15 */
  lease_s: z.number().min(1, 'must be at least 1 second').max(3600).default(15),
  /** Replicas of the coordination buckets: 1, 3 or 5, at most the number of NATS nodes. @default 3 */
  replicas: z.union([z.literal(1), z.literal(3), z.literal(5)]).default(3),
  /** What a host that lost its lease (a partition) does with its agents: `stop` them (default) or `keep` them running but revive nothing. */
  on_partition: z.enum(['stop', 'keep']).default('stop'),
  /**
   * Days the shared record (`pit_records`) of an agent no host holds or configures, in no cell of
   * `pit_cells`, is kept after its last write (cluster/records-retention.ts). @default 7
   */
  records_retention_days: z
    .number()
    .min(1, 'must be at least 1 day (a host down for a night must find its records)')
    .max(3650)
    .default(7),
});

/** The whole `pit.toml`. */
/** `[mcp]`: the Model Context Protocol server (`/mcp` on the daemon's HTTP listener, and `pit mcp`). */
export const McpSectionSchema = z.strictObject({
  /** Serve MCP at `/mcp` on the daemon's HTTP listener (behind the bearer token). @default true */
  enabled: z.boolean().default(true),
  /** Offer the action tools (`pit_approve`, `pit_deny`, `pit_restart`, `pit_stop`) to configured approvers. @default false */
  actions: z.boolean().default(false),
});

export const PitConfigSchema = z.strictObject({
  daemon: DaemonSectionSchema.prefault({}),
  cells: CellsSectionSchema.prefault({}),
  /** Revive policy: @pit/policy's schema (defaults, missions, agents, fleet_brake, classify). */
  policy: PolicyConfigSchema.prefault({}),
  agents: z.record(AgentNameSchema, AgentConfigSchema).default({}),
  /** Alerts and approvals over Telegram (@pit/notify's schema). */
  telegram: TelegramConfigSchema.optional(),
  /** Alerts and approvals over Nostr DMs (@pit/notify's schema). */
  nostr: NostrConfigSchema.optional(),
  /** Death issues on GitHub or Gitea (@pit/notify's schema). */
  issues: IssuesConfigSchema.optional(),
  /** The missions' event streams (@pit/mission-bus). */
  bus: BusSectionSchema.prefault({}),
  checkpoints: CheckpointsSectionSchema.prefault({}),
  sandbox: SandboxSectionSchema.prefault({}),
  logs: LogsSectionSchema.prefault({}),
  mcp: McpSectionSchema.prefault({}),
  /** Several hosts through NATS JetStream; absent: this daemon alone. */
  cluster: ClusterSectionSchema.optional(),
  /** Model providers and where their health comes from (provider-config.ts). */
  providers: z.record(ProviderNameSchema, ProviderConfigSchema).default({}),
});

/**
 * Checks between keys that hold even when other parts of the config are broken (so that
 * every problem is reported at once): substitutes name configured agents, agents outside
 * cells have a working directory and something to run or probe.
 */
export function crossCheckConfig(
  raw: unknown,
): Array<{ path: Array<string | number>; message: string }> {
  const problems: Array<{ path: Array<string | number>; message: string }> = [];
  problems.push(...crossCheckHttp(raw));
  problems.push(...crossCheckProviders(raw));
  const agents = isTable(raw) && isTable(raw.agents) ? raw.agents : {};
  for (const [name, agent] of Object.entries(agents)) {
    if (!isTable(agent)) continue;
    if (Array.isArray(agent.substitutes)) {
      agent.substitutes.forEach((substitute, index) => {
        if (typeof substitute !== 'string') return;
        if (substitute === name)
          problems.push({
            path: ['agents', name, 'substitutes', index],
            message: 'an agent cannot substitute for itself',
          });
        else if (!(substitute in agents))
          problems.push({
            path: ['agents', name, 'substitutes', index],
            message: `no agent ${substitute} is configured`,
          });
      });
    }
    problems.push(...checkHome(name, agent, raw));
    problems.push(...checkErrorLogName(name, agents, raw));
    if (agent.cell === 'none' && Array.isArray(agent.cells) && agent.cells.length > 0)
      problems.push({
        path: ['agents', name, 'cells'],
        message: 'an agent outside cells (cell = "none") cannot also list cells',
      });
    if (agent.cell === 'none') {
      if (agent.cwd === undefined)
        problems.push({
          path: ['agents', name, 'cwd'],
          message: 'required for an agent outside cells (cell = "none")',
        });
      const probes = isTable(agent.probes) ? agent.probes : {};
      const probed = ['health_url', 'tcp', 'ws', 'exec', 'pid_file', 'process'].some(
        (key) => probes[key] !== undefined,
      );
      if (agent.argv === undefined && !probed)
        problems.push({
          path: ['agents', name],
          message: 'an agent outside cells needs argv or at least one probe',
        });
    }
  }
  return problems;
}

/** `[daemon.http]`: a non-loopback `listen` needs `allow_remote = true`; no approver is called `operator`; `[mcp] actions` needs an approver. */
function crossCheckHttp(raw: unknown): Array<{ path: Array<string | number>; message: string }> {
  const daemon = isTable(raw) && isTable(raw.daemon) ? raw.daemon : {};
  const http = isTable(daemon.http) ? daemon.http : {};
  const problems: Array<{ path: Array<string | number>; message: string }> = [];
  if (
    http.enabled !== false &&
    typeof http.listen === 'string' &&
    ListenAddressSchema.safeParse(http.listen).success &&
    http.allow_remote !== true &&
    !isLoopbackHost(listenHost(http.listen))
  )
    problems.push({
      path: ['daemon', 'http', 'listen'],
      message: `${remoteListenDanger(http.listen)}; set daemon.http.allow_remote = true to accept that (preferably behind a TLS proxy), or listen on 127.0.0.1`,
    });
  if (isTable(http.approvers) && OPERATOR_IDENTITY in http.approvers)
    problems.push({
      path: ['daemon', 'http', 'approvers', OPERATOR_IDENTITY],
      message: `"${OPERATOR_IDENTITY}" is the identity of daemon.http.token_env's token: choose another name`,
    });
  const mcp = isTable(raw) && isTable(raw.mcp) ? raw.mcp : {};
  if (mcp.actions === true && !(isTable(http.approvers) && Object.keys(http.approvers).length > 0))
    problems.push({
      path: ['mcp', 'actions'],
      message:
        'no approver is configured: the action tools are offered only to a [daemon.http.approvers.<name>] identity; add one, or set actions = false',
    });
  return problems;
}

/** Whether `agent` writes stdout and stderr to one log: its `merge_stderr`, else `[logs] merge_stderr`. */
export function mergesStderr(
  config: { logs: { merge_stderr: boolean }; agents: Record<string, { merge_stderr?: boolean }> },
  agent: string,
): boolean {
  return config.agents[agent]?.merge_stderr ?? config.logs.merge_stderr;
}

/**
 * An agent named `<other>.err` would write `logs/<other>.err.log`, the file that holds the stderr
 * of agent `<other>` unless that one merges its stderr (`merge_stderr`): two writers, one file.
 */
function checkErrorLogName(
  name: string,
  agents: Record<string, unknown>,
  raw: unknown,
): Array<{ path: Array<string | number>; message: string }> {
  if (!name.endsWith('.err')) return [];
  const other = name.slice(0, -'.err'.length);
  const otherAgent = agents[other];
  if (!isTable(otherAgent)) return [];
  const logs = isTable(raw) && isTable(raw.logs) ? raw.logs : {};
  const merged = otherAgent.merge_stderr ?? logs.merge_stderr ?? false;
  if (merged === true) return [];
  return [
    {
      path: ['agents', name],
      message: `its output log logs/${name}.log is also agent ${other}'s stderr log: rename this agent, or set merge_stderr = true for ${other}`,
    },
  ];
}

/** An agent's `home`: absolute, normalised, under one of `[sandbox] home_roots`. */
function checkHome(
  name: string,
  agent: Record<string, unknown>,
  raw: unknown,
): Array<{ path: Array<string | number>; message: string }> {
  const home = agent.home;
  if (typeof home !== 'string') return [];
  const path = ['agents', name, 'home'];
  if (!isAbsolute(home) || normalize(home) !== home.replace(/\/+$/, '') || home === '/')
    return [{ path, message: 'must be an absolute, normalised directory path (not /)' }];
  const sandbox = isTable(raw) && isTable(raw.sandbox) ? raw.sandbox : {};
  const roots = Array.isArray(sandbox.home_roots)
    ? sandbox.home_roots.filter((root): root is string => typeof root === 'string')
    : [];
  if (!roots.some((root) => isUnder(home, root)))
    return [
      {
        path,
        message: `must lie under one of [sandbox] home_roots (${roots.length === 0 ? 'none configured' : roots.join(', ')})`,
      },
    ];
  return [];
}

/** `path` is `root` or lies below it (both absolute). */
export function isUnder(path: string, root: string): boolean {
  const relation = relative(root, path);
  return relation === '' || (!relation.startsWith('..') && !isAbsolute(relation));
}

function isTable(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The validated config, with every default filled in. */
export type PitConfig = z.output<typeof PitConfigSchema>;
/** One agent's validated config. */
export type AgentConfig = z.output<typeof AgentConfigSchema>;

const SECRET_KEY =
  /(^|_)(token|secret|password|passwd|passphrase|api_?key|private_?key|nsec|bot_token)$/i;

/**
 * Finds secrets written into the config instead of named by environment variable: a key
 * such as `token`, `password`, `api_key` or `private_key` with a string value (its
 * `<key>_env` form is the allowed one), and values that look like a Nostr secret key or a
 * Telegram bot token. Agents' `env` tables are checked too.
 */
export function findLiteralSecrets(
  value: unknown,
  path: Array<string | number> = [],
): Array<{ path: Array<string | number>; message: string }> {
  const found: Array<{ path: Array<string | number>; message: string }> = [];
  if (typeof value === 'string') {
    if (/^nsec1[02-9ac-hj-np-z]{20,}$/.test(value))
      found.push({
        path,
        message: 'looks like a Nostr secret key: secrets only by environment variable name',
      });
    else if (/^\d{6,}:[A-Za-z0-9_-]{30,}$/.test(value))
      found.push({
        path,
        message: 'looks like a Telegram bot token: secrets only by environment variable name',
      });
    return found;
  }
  if (Array.isArray(value)) {
    value.forEach((item, index) => found.push(...findLiteralSecrets(item, [...path, index])));
    return found;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (typeof item === 'string' && SECRET_KEY.test(key)) {
        found.push({
          path: [...path, key],
          message: `secrets only by environment variable name: write ${key}_env = "VARIABLE" instead`,
        });
        continue;
      }
      found.push(...findLiteralSecrets(item, [...path, key]));
    }
  }
  return found;
}

/**
 * The environment variable names the config refers to for secrets: `*_env` keys anywhere
 * (daemon.http.token_env, telegram.token_env, …) and every agent's `env_from`.
 */
export function secretEnvNames(config: PitConfig): string[] {
  const names = new Set<string>();
  const walk = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (/_env$/.test(key) && typeof item === 'string') names.add(item);
        else walk(item);
      }
    }
  };
  walk(config);
  for (const agent of Object.values(config.agents))
    for (const name of agent.env_from) names.add(name);
  return [...names];
}
