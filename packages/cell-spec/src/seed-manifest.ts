/**
 * Seed-format manifests: the `cell.json` that fleets from the first daemon (lazarus-pit) already
 * have on disk, `{uuid, status, mission, agents: [{name}]}`, without `created_at`, `created_by`,
 * `agents[].role` or `agents[].joined_at`. This module owns the defaults those fields take and
 * the list of the ones that were defaulted. It fills in only fields that are absent (a field
 * that is present but wrong is still an error), and a default is a description, never a grant:
 * which agents may run in a cell is decided by the operator (the daemon's membership), whatever
 * the manifest says. It never reads or writes a file.
 */
/**
 * The values a seed-format manifest's missing fields take. `created_at` has no fixed value: it
 * is the time `cell.json` was last modified (the earliest the Pit can vouch for), and an
 * agent's `joined_at` is the cell's `created_at`.
 */
export const SEED_MANIFEST_DEFAULTS = {
  /** Who created the cell: not known. */
  created_by: 'unknown',
  /** An agent's role in `cell.json` (descriptive only; bus roles come from the config). */
  role: 'unspecified',
} as const;

/** A manifest's parsed JSON with its missing seed fields filled in. */
export interface SeedDefaults {
  /** The JSON with the defaults applied (still to be validated). */
  value: unknown;
  /** The fields that were absent and defaulted, as paths (`created_at`, `agents.0.role`). */
  defaulted: string[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Fills in the fields a seed-format manifest leaves out (see {@link SEED_MANIFEST_DEFAULTS});
 * anything that is not an object, or a field that is present, is left as it is for the schema
 * to judge.
 * @param createdAt called only when `created_at` is absent: the ISO-8601 UTC time to use.
 * @example
 * applySeedDefaults({ uuid, status: 'active', mission: 'm', agents: [{ name: 'claude' }] }, () => mtime)
 * // defaulted: ['created_at', 'created_by', 'agents.0.role', 'agents.0.joined_at']
 */
export function applySeedDefaults(raw: unknown, createdAt: () => string): SeedDefaults {
  if (!isRecord(raw)) return { value: raw, defaulted: [] };
  const defaulted: string[] = [];
  const value: Record<string, unknown> = { ...raw };
  if (value.created_at === undefined) {
    value.created_at = createdAt();
    defaulted.push('created_at');
  }
  if (value.created_by === undefined) {
    value.created_by = SEED_MANIFEST_DEFAULTS.created_by;
    defaulted.push('created_by');
  }
  if (Array.isArray(value.agents)) {
    value.agents = value.agents.map((agent: unknown, index) => {
      if (!isRecord(agent)) return agent;
      const filled: Record<string, unknown> = { ...agent };
      if (filled.role === undefined) {
        filled.role = SEED_MANIFEST_DEFAULTS.role;
        defaulted.push(`agents.${index}.role`);
      }
      if (filled.joined_at === undefined) {
        filled.joined_at = value.created_at;
        defaulted.push(`agents.${index}.joined_at`);
      }
      return filled;
    });
  }
  return { value, defaulted };
}
