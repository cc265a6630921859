import { z } from 'zod';
import {
  AgentNameSchema,
  CellUuidSchema,
  DEFAULT_CELLS_ROOT,
  IsolationProfileSchema,
  type IsolationProfile,
} from '@pit/cell-spec';
import { IssuesConfigSchema, NostrConfigSchema, TelegramConfigSchema } from '@pit/notify';
import { RoleOverridesSchema } from '@pit/mission-bus';
import { PolicyConfigSchema } from '@pit/policy';
import { LOG_LEVELS } from './logger.js';

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
  http: z
    .strictObject({
      /** @default true */
      enabled: z.boolean().default(true),
      /** @default '127.0.0.1:7420' */
      listen: ListenAddressSchema.default('127.0.0.1:7420'),
      /** The environment variable holding the bearer token that mutating calls need. @default 'PIT_HTTP_TOKEN' */
      token_env: EnvNameSchema.default('PIT_HTTP_TOKEN'),
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
  /** The command; argv[0] is looked up in PATH. Required to (re)start the agent. */
  argv: z.array(z.string().min(1)).min(1).optional(),
  /** Literal environment variables (never secrets). */
  env: z.record(EnvNameSchema, z.string()).default({}),
  /** Names of the daemon's environment variables passed through (how secrets reach an agent). */
  env_from: z.array(EnvNameSchema).default([]),
  /** Working directory; required outside cells (inside a cell it is the cell's `workspace/`). */
  cwd: z.string().min(1).optional(),
  /** @default 1 */
  isolation: AgentIsolationSchema.default({ level: 1 }),
  /** Pin the agent to one cell, or `"none"` for an agent outside cells. Omitted: it runs in every cell whose manifest lists it. */
  cell: z.union([CellUuidSchema, z.literal('none')]).optional(),
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
});

/** The whole `pit.toml`. */
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
