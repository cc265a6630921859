import { z } from 'zod';

/** The roles a participant can hold. */
export const ROLES = ['lead', 'write', 'read', 'audit'] as const;
/** What a role may do. */
export const CAPABILITIES = [
  'publish',
  'checkpoint',
  'handoff',
  'read',
  'audit',
  'configure_isolation',
  'grant',
] as const;

/** A participant's role: `lead`, `write`, `read` or `audit`. */
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

/**
 * A capability: `publish` (messages), `checkpoint`, `handoff`, `read` (subscribe, read the
 * stream, fetch resume packets), `audit` (read the audit trail of refusals and repairs),
 * `configure_isolation` (set a participant's isolation profile), `grant` (give a participant a
 * role or remove it: what a mission's lead may do over the wire).
 */
export const CapabilitySchema = z.enum(CAPABILITIES);
export type Capability = z.infer<typeof CapabilitySchema>;

/**
 * The capabilities of each role unless the config overrides them: lead = all; write =
 * publish, checkpoint, handoff, read; read = read; audit = read, audit.
 */
export const DEFAULT_ROLE_CAPABILITIES: Readonly<Record<Role, readonly Capability[]>> =
  Object.freeze({
    lead: [...CAPABILITIES],
    write: ['publish', 'checkpoint', 'handoff', 'read'],
    read: ['read'],
    audit: ['read', 'audit'],
  });

/** A role → capabilities table; any role left out keeps its default. */
export const RoleOverridesSchema = z.partialRecord(RoleSchema, z.array(CapabilitySchema));
export type RoleOverrides = z.infer<typeof RoleOverridesSchema>;

/** Resolves the capability table: defaults, then `overrides` role by role (an override replaces the role's list). */
export function resolveRoleCapabilities(
  overrides: RoleOverrides = {},
): Record<Role, ReadonlySet<Capability>> {
  const table = {} as Record<Role, ReadonlySet<Capability>>;
  for (const role of ROLES)
    table[role] = new Set(overrides[role] ?? DEFAULT_ROLE_CAPABILITIES[role]);
  return table;
}
