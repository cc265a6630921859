import { AgentNameSchema, OnTimeoutSchema, type OnTimeout } from '@pit/cell-spec';
import { z } from 'zod';
import { DurationSchema } from './duration.js';

/** The modes of a policy, after aliases are normalised. */
export const MODES = ['auto', 'ask', 'never', 'substitute'] as const;
/** How the Pit may act on a dead agent: on its own, after asking, never, or by handing over to a substitute. */
export type Mode = (typeof MODES)[number];

const MODE_ALIASES: Record<string, Mode> = {
  auto: 'auto',
  yes: 'auto',
  ask: 'ask',
  never: 'never',
  no: 'never',
  substitute: 'substitute',
};

/**
 * A mode: `auto` (alias `yes`, `true`), `ask`, `never` (alias `no`, `false`) or `substitute`;
 * case-insensitive, normalised to the canonical name.
 */
export const ModeSchema = z
  .union([z.boolean(), z.string()], {
    error: 'must be one of auto (or yes), ask, never (or no), substitute',
  })
  .transform((value, context): Mode => {
    if (typeof value === 'boolean') return value ? 'auto' : 'never';
    const mode = MODE_ALIASES[value.trim().toLowerCase()];
    if (mode === undefined) {
      context.addIssue({
        code: 'custom',
        message: `must be one of auto (or yes), ask, never (or no), substitute (got ${JSON.stringify(value)})`,
      });
      return z.NEVER;
    }
    return mode;
  })
  .meta({
    description: 'auto (or yes, true), ask, never (or no, false) or substitute; case-insensitive.',
  });

/** Why an agent died, as far as the Pit can tell. */
export const FAILURE_CLASSES = [
  'rate_limited',
  'auth_failed',
  'bad_config',
  'crashed',
  'stuck',
  'unknown',
] as const;
/** A failure class: `rate_limited`, `auth_failed`, `bad_config`, `crashed`, `stuck` or `unknown`. */
export const FailureClassSchema = z.enum(FAILURE_CLASSES);
/** A failure class (see {@link FAILURE_CLASSES}). */
export type FailureClass = z.infer<typeof FailureClassSchema>;

/**
 * What to do about a failure class (still bounded by the mode: `never` records only, `ask` asks first):
 * - `restart` — restart the agent (after rolling back its config if `rollback_before_restart`);
 * - `rollback_and_restart` — roll its config back to last known good, then restart;
 * - `wait` — wait until the failure's reset time (or `rate_limit_wait`), then restart;
 * - `ask` — ask a human whether to restart;
 * - `substitute` — hand the work to a healthy substitute;
 * - `record_only` — record the death and do nothing else.
 */
export const FailureActionSchema = z.enum([
  'restart',
  'rollback_and_restart',
  'wait',
  'ask',
  'substitute',
  'record_only',
]);
/** An action for a failure class (see {@link FailureActionSchema}). */
export type FailureAction = z.infer<typeof FailureActionSchema>;

/** What happens when an approval request expires unanswered (@pit/cell-spec's, shared with the approval record). */
export { OnTimeoutSchema, type OnTimeout };

/** A mission name, as in `cell.json`'s `mission`. */
export const MissionNameSchema = z.string().min(1, { message: 'must not be empty' }).max(200);

/** An approval channel name, as configured in the daemon (`telegram`, `nostr`, `cli`, `http`, …). */
export const ChannelNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, { message: 'must be a channel name like "telegram"' });

/**
 * One layer of policy: `[policy.defaults]`, `[policy.missions.<name>]` or (with `mission`)
 * `[policy.agents.<name>]`. Every key is optional; a layer overrides the layers below it key
 * by key (tables merge, lists replace). Durations are strings with a unit or seconds, and are
 * milliseconds once parsed.
 */
export const PolicyLayerSchema = z.strictObject({
  /** How the Pit may act. */
  mode: ModeSchema.optional(),
  /** How long an agent must have been dead before the Pit acts (lets it come back by itself). */
  dead_after: DurationSchema.optional(),
  /** Agents that may take over, in order of preference (the first healthy one is chosen). */
  substitutes: z.array(AgentNameSchema).optional(),
  /** Roll the agent's config back to last known good before every restart. */
  rollback_before_restart: z.boolean().optional(),
  /** Restarts without a stable period in between before the Pit escalates. */
  max_revive_attempts: z.number().int().positive().optional(),
  /** How long `wait` waits when a rate-limited failure carries no reset time. */
  rate_limit_wait: DurationSchema.optional(),
  /** Who is asked, how long the question stays open and what happens when nobody answers. */
  approval: z
    .strictObject({
      /** Approval channels to ask on (must be configured in the daemon). */
      channels: z.array(ChannelNameSchema).optional(),
      /** How long an approval request stays open. */
      timeout: DurationSchema.optional(),
      /** What happens when it expires unanswered. */
      on_timeout: OnTimeoutSchema.optional(),
    })
    .optional(),
  /** Restart intensity, as OTP and systemd have it: at most `max_restarts` within `window`, else escalate. */
  restart_intensity: z
    .strictObject({
      max_restarts: z.number().int().positive().optional(),
      window: DurationSchema.optional(),
    })
    .optional(),
  /** Exponential backoff between restarts, reset once the agent has been healthy for `reset_after_stable`. */
  backoff: z
    .strictObject({
      /** Delay before the second restart (the first one is immediate). */
      initial: DurationSchema.optional(),
      /** Multiplier per further restart (≥ 1). */
      factor: z.number().min(1, { message: 'must be at least 1' }).max(100).optional(),
      /** The largest delay. */
      cap: DurationSchema.optional(),
      /** Fraction (0–1) of each delay that is randomised (from a seed) to spread restarts. */
      jitter: z.number().min(0).max(1).optional(),
      /** How long an agent must stay healthy for its backoff and revive attempts to reset. */
      reset_after_stable: DurationSchema.optional(),
    })
    .optional(),
  /** What to do per failure class; see {@link FailureActionSchema}. */
  on_failure: z
    .strictObject(
      Object.fromEntries(
        FAILURE_CLASSES.map((name) => [name, FailureActionSchema.optional()]),
      ) as Record<FailureClass, z.ZodOptional<typeof FailureActionSchema>>,
    )
    .optional(),
});
/** A parsed policy layer (durations in ms, mode normalised). */
export type PolicyLayer = z.infer<typeof PolicyLayerSchema>;
/** A policy layer as written in TOML. */
export type PolicyLayerInput = z.input<typeof PolicyLayerSchema>;

/** `[policy.agents.<name>]`: a policy layer that may also move the agent into a mission. */
export const AgentPolicySchema = PolicyLayerSchema.extend({
  /** The mission whose policy applies to this agent (under this override), whatever its cell says. */
  mission: MissionNameSchema.optional(),
});
/** A parsed agent override. */
export type AgentPolicy = z.infer<typeof AgentPolicySchema>;

/**
 * `[policy.fleet_brake]`: when more than `max_deaths` agents (or more than `max_percent` of a
 * fleet of at least `min_agents`) die within `window` of one another, starts are spaced
 * `restart_interval` apart fleet-wide, until the storm is over (at most `max_deaths` still dead) or
 * `hold` has passed since its last death.
 */
export const FleetBrakeSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** More deaths than this within `window` engage the brake. */
  max_deaths: z.number().int().nonnegative().default(5),
  /** More than this percentage of the fleet dead within `window` engages the brake. */
  max_percent: z.number().min(0).max(100).default(50),
  /** The percentage rule applies only to fleets of at least this many agents. */
  min_agents: z.number().int().positive().default(4),
  /** Deaths this close together count as one storm. */
  window: DurationSchema.default(120_000),
  /** The brake lets go this long after the storm's last death. */
  hold: DurationSchema.default(1_800_000),
  /** While engaged, fleet-wide starts (restarts and substitutions) are at least this far apart. */
  restart_interval: DurationSchema.default(10_000),
});
/** Parsed fleet-brake settings (durations in ms). */
export type FleetBrake = z.infer<typeof FleetBrakeSchema>;

/**
 * `[policy.classify]`: how a death without an explicit failure class is classified. Exit codes map
 * to classes (TOML keys are strings: `"78" = "bad_config"`).
 */
export const ClassifySchema = z.strictObject({
  /** Exit code → failure class. @default { "75": "rate_limited", "77": "auth_failed", "78": "bad_config" } (sysexits.h) */
  exit_codes: z
    .record(
      z.string().regex(/^-?\d{1,3}$/, { message: 'must be an exit code such as "78"' }),
      FailureClassSchema,
    )
    .default({ '75': 'rate_limited', '77': 'auth_failed', '78': 'bad_config' }),
});
/** Parsed classification settings. */
export type Classify = z.infer<typeof ClassifySchema>;

/**
 * The `[policy]` section of the daemon's `pit.toml`. Resolution order for an agent: built-in
 * defaults → `defaults` → its mission (`missions.<name>`; the agent override's `mission` wins
 * over the cell's) → `agents.<name>`.
 * @example
 * const config = PolicyConfigSchema.parse({
 *   defaults: { mode: 'auto', approval: { channels: ['telegram'] } },
 *   missions: { archive: { mode: 'ask' }, 'sovereign-core': { mode: 'no' } },
 *   agents: { bezalel: { mission: 'forge', substitutes: ['allegro', 'timmy'] } },
 * });
 */
export const PolicyConfigSchema = z.strictObject({
  defaults: PolicyLayerSchema.prefault({}),
  missions: z.record(MissionNameSchema, PolicyLayerSchema).prefault({}),
  agents: z.record(AgentNameSchema, AgentPolicySchema).prefault({}),
  fleet_brake: FleetBrakeSchema.prefault({}),
  classify: ClassifySchema.prefault({}),
});
/** A parsed policy config (durations in ms, modes normalised). */
export type PolicyConfig = z.infer<typeof PolicyConfigSchema>;
/** A policy config as written (in TOML, or as a plain object). */
export type PolicyConfigInput = z.input<typeof PolicyConfigSchema>;

/** A fully specified policy layer: what every key is when no layer sets it. */
export interface ResolvedLayer {
  mode: Mode;
  dead_after: number;
  substitutes: string[];
  rollback_before_restart: boolean;
  max_revive_attempts: number;
  rate_limit_wait: number;
  approval: { channels: string[]; timeout: number; on_timeout: OnTimeout };
  restart_intensity: { max_restarts: number; window: number };
  backoff: {
    initial: number;
    factor: number;
    cap: number;
    jitter: number;
    reset_after_stable: number;
  };
  on_failure: Record<FailureClass, FailureAction>;
}

/**
 * The built-in defaults under every policy (durations in ms): auto mode, act at once, roll back
 * before restarting, 10 revive attempts, 5 restarts per 15 min, backoff 10 s × 2 up to 5 min
 * with 10 % jitter reset after 10 min healthy, approvals open 30 min then record only, and per
 * failure class: bad_config → rollback_and_restart, rate_limited → wait (15 min without a reset
 * time), auth_failed → ask, crashed/stuck/unknown → restart.
 */
export const BUILTIN_POLICY: Readonly<ResolvedLayer> = freezeLayer({
  mode: 'auto',
  dead_after: 0,
  substitutes: [],
  rollback_before_restart: true,
  max_revive_attempts: 10,
  rate_limit_wait: 15 * 60_000,
  approval: { channels: [], timeout: 30 * 60_000, on_timeout: 'record_only' },
  restart_intensity: { max_restarts: 5, window: 15 * 60_000 },
  backoff: {
    initial: 10_000,
    factor: 2,
    cap: 5 * 60_000,
    jitter: 0.1,
    reset_after_stable: 10 * 60_000,
  },
  on_failure: {
    rate_limited: 'wait',
    auth_failed: 'ask',
    bad_config: 'rollback_and_restart',
    crashed: 'restart',
    stuck: 'restart',
    unknown: 'restart',
  },
} satisfies ResolvedLayer);

function freezeLayer(layer: ResolvedLayer): Readonly<ResolvedLayer> {
  for (const value of Object.values(layer))
    if (typeof value === 'object' && value !== null) Object.freeze(value);
  return Object.freeze(layer);
}
