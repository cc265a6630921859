/**
 * `<state_dir>/approvals.json` as the daemon finds it before the broker opens it. Owns the one
 * migration from the previous layout (@pit/notify's version-1 file beside the daemon's own
 * `approval-meta.json`) to the single version-2 file of @pit/cell-spec's `Approval` records, and
 * keeps a corrupt file aside (`approvals.json.corrupt-<ts>`) so the daemon still starts. Also
 * reads the file without writing anything (`pit status`, `pit approvals`). Never decides an
 * approval: the broker does.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  ApprovalsFileSchema,
  IsoTimestampSchema,
  OnTimeoutSchema,
  PitError,
  RemedyActionSchema,
  ApprovalKindSchema,
  readJsonFile,
  writeJsonAtomic,
  type Approval,
  type ApprovalsFile,
} from '@pit/cell-spec';
import { DaemonError } from './errors.js';
import type { Logger } from './logger.js';

/** The approvals file: `<state_dir>/approvals.json`. */
export const approvalsPath = (stateDir: string): string => join(stateDir, 'approvals.json');

/** Where the previous daemon kept its own fields of each request. Migrated, then removed. */
const legacyMetaPath = (stateDir: string): string => join(stateDir, 'approval-meta.json');

const MAX_BYTES = 64 * 1024 * 1024;

/** A request in @pit/notify's version-1 file (ISO times, display-only `proposed_action`). */
const LegacyRequestSchema = z.strictObject({
  id: z.string(),
  agent: z.string(),
  mission: z.string(),
  cell_uuid: z.string().optional(),
  reasons: z.array(z.string()),
  substitute: z.string().nullable(),
  proposed_action: z.string().optional(),
  created_at: IsoTimestampSchema,
  expires_at: IsoTimestampSchema,
  on_expiry: z.enum(['approve', 'deny']),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']),
  decision: z.enum(['approve', 'deny']).nullable(),
  decided_at: IsoTimestampSchema.nullable(),
  decided_by: z.string().nullable(),
  decided_via: z.string().nullable(),
  cancel_reason: z.string().optional(),
  deliveries: z.record(z.string(), z.string()).default({}),
});
type LegacyRequest = z.infer<typeof LegacyRequestSchema>;

const LegacyFileSchema = z.strictObject({
  version: z.literal(1),
  requests: z.array(LegacyRequestSchema),
});

/** The previous daemon's fields of one request (`approval-meta.json`). */
const LegacyMetaSchema = z.strictObject({
  key: z.string(),
  kind: ApprovalKindSchema,
  proposed: RemedyActionSchema,
  channels: z.array(z.string()),
  requested_at: z.number(),
  expires_at: z.number(),
  on_timeout: OnTimeoutSchema,
  by: z.string().optional(),
  reason: z.string().optional(),
});
type LegacyMeta = z.infer<typeof LegacyMetaSchema>;

const LegacyMetaFileSchema = z.strictObject({
  version: z.literal(1),
  meta: z.record(z.string(), LegacyMetaSchema),
});

const AnyApprovalsFileSchema = z.discriminatedUnion('version', [
  ApprovalsFileSchema,
  LegacyFileSchema,
]);

/** What was found at `approvals.json`. */
type Found =
  | { kind: 'none' }
  | { kind: 'current'; file: ApprovalsFile }
  | { kind: 'legacy'; file: z.infer<typeof LegacyFileSchema> }
  | { kind: 'corrupt'; problem: string };

async function find(stateDir: string): Promise<Found> {
  try {
    const file = await readJsonFile(approvalsPath(stateDir), AnyApprovalsFileSchema, {
      maxBytes: MAX_BYTES,
    });
    return file.version === 2 ? { kind: 'current', file } : { kind: 'legacy', file };
  } catch (error) {
    if (!PitError.is(error)) throw error;
    if (error.code === 'CELL_NOT_FOUND') return { kind: 'none' };
    if (error.code === 'CELL_IO') throw error;
    return { kind: 'corrupt', problem: error.message };
  }
}

/** The previous daemon's meta; a missing one is empty, an unreadable one is reported and empty. */
async function readLegacyMeta(
  stateDir: string,
): Promise<{ meta: Record<string, LegacyMeta>; problem?: string }> {
  try {
    return { meta: (await readJsonFile(legacyMetaPath(stateDir), LegacyMetaFileSchema)).meta };
  } catch (error) {
    if (PitError.is(error) && error.code === 'CELL_NOT_FOUND') return { meta: {} };
    return { meta: {}, problem: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * One version-1 request joined with the previous daemon's fields, as an {@link Approval}. A
 * request the daemon had no fields for (it died between the two writes) keeps the broker's.
 */
function upgradeRequest(request: LegacyRequest, meta: LegacyMeta | undefined): Approval {
  const proposed = RemedyActionSchema.safeParse(request.proposed_action?.replace(/ /g, '_'));
  const decidedBy = meta?.by ?? request.decided_by ?? undefined;
  const reason = meta?.reason ?? request.cancel_reason;
  return {
    id: request.id,
    agent: request.agent,
    mission: request.mission,
    ...(request.cell_uuid ? { cell_uuid: request.cell_uuid } : {}),
    kind: meta?.kind ?? 'revive',
    reasons: request.reasons,
    proposed: meta?.proposed ?? (proposed.success ? proposed.data : 'restart'),
    ...(request.substitute ? { substitute: request.substitute } : {}),
    channels: meta?.channels ?? [],
    requested_at: meta?.requested_at ?? Date.parse(request.created_at),
    expires_at: meta?.expires_at ?? Date.parse(request.expires_at),
    on_timeout: meta?.on_timeout ?? (request.on_expiry === 'approve' ? 'proceed' : 'record_only'),
    status: request.status,
    decision: request.decision,
    ...(request.decided_at ? { decided_at: Date.parse(request.decided_at) } : {}),
    ...(decidedBy ? { decided_by: decidedBy } : {}),
    ...(request.decided_via ? { decided_via: request.decided_via } : {}),
    ...(reason ? { reason } : {}),
    deliveries: request.deliveries,
  };
}

/** The version-2 file for a version-1 file and the previous daemon's meta; invalid when a field does not fit. */
function upgradeFile(
  legacy: z.infer<typeof LegacyFileSchema>,
  meta: Record<string, LegacyMeta>,
): ReturnType<typeof ApprovalsFileSchema.safeParse> {
  return ApprovalsFileSchema.safeParse({
    version: 2,
    requests: legacy.requests.map((request) => upgradeRequest(request, meta[request.id])),
  });
}

/** Renames a bad file to `<name>.corrupt-<ts>` beside it, so nothing is lost and the daemon starts. */
async function keepAside(path: string, at: number): Promise<string> {
  const aside = `${path}.corrupt-${new Date(at).toISOString().replace(/[:.]/g, '-')}`;
  await fs.rename(path, aside);
  return aside;
}

/** Options of {@link prepareApprovalsFile}. */
export interface PrepareApprovalsFileOptions {
  stateDir: string;
  logger: Logger;
  /** Now, ms since epoch (names the `.corrupt-<ts>` file). */
  now: number;
}

/**
 * Makes `approvals.json` ready for the broker: migrates the previous layout once (the new file
 * is written atomically before `approval-meta.json` is removed, so a crash in between only
 * leaves a stale meta file that the next start removes), and moves a corrupt file aside
 * (logged) so the daemon starts with no requests instead of not at all.
 * @returns what was kept aside and why (for the status's problems); empty when nothing was.
 * @throws {CellError} CELL_IO when the state directory cannot be read or written.
 */
export async function prepareApprovalsFile(
  options: PrepareApprovalsFileOptions,
): Promise<string[]> {
  const { stateDir, logger, now } = options;
  const problems: string[] = [];
  const path = approvalsPath(stateDir);
  const found = await find(stateDir);
  if (found.kind === 'legacy') {
    const { meta, problem } = await readLegacyMeta(stateDir);
    if (problem) {
      const aside = await keepAside(legacyMetaPath(stateDir), now);
      logger.error(`approvals: ${problem}; kept aside as ${aside}, migrating without it`);
      problems.push(`${problem}; kept aside as ${aside}`);
    }
    const upgraded = upgradeFile(found.file, meta);
    if (upgraded.success) {
      await writeJsonAtomic(path, upgraded.data, { mode: 0o600 });
      logger.info(
        `approvals: migrated ${upgraded.data.requests.length} request(s) from approvals.json version 1 and approval-meta.json to approvals.json version 2`,
      );
    } else {
      const aside = await keepAside(path, now);
      const problem = `${path}: version 1 file does not migrate (${upgraded.error.message}); kept aside as ${aside}, started with no approval requests`;
      logger.error(`approvals: ${problem}`);
      problems.push(problem);
    }
  } else if (found.kind === 'corrupt') {
    const aside = await keepAside(path, now);
    logger.error(
      `approvals: ${found.problem}; kept aside as ${aside}, starting with no approval requests`,
    );
    problems.push(`${found.problem}; kept aside as ${aside}, started with no approval requests`);
  }
  await fs.rm(legacyMetaPath(stateDir), { force: true });
  return problems;
}

/**
 * The approval requests on disk, without opening the broker and without writing anything: for
 * `pit status` and `pit approvals` while a daemon may be running (a state directory the previous
 * version wrote is read as it would be migrated). A missing or unreadable file is no requests.
 * @throws {DaemonError} DAEMON_IO when the file is damaged (naming it and what is wrong).
 */
export async function readApprovals(stateDir: string): Promise<Approval[]> {
  const found = await find(stateDir).catch((): Found => ({ kind: 'none' }));
  if (found.kind === 'corrupt')
    throw new DaemonError(
      'DAEMON_IO',
      `${approvalsPath(stateDir)}: ${found.problem.replace(`${approvalsPath(stateDir)}: `, '')} (a daemon keeps it aside at its start and begins with no requests)`,
    );
  if (found.kind === 'current') return found.file.requests;
  if (found.kind !== 'legacy') return [];
  const upgraded = upgradeFile(found.file, (await readLegacyMeta(stateDir)).meta);
  return upgraded.success ? upgraded.data.requests : [];
}
