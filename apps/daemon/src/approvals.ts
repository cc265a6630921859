import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeJsonAtomic } from '@pit/cell-spec';
import type { ApprovalDecisionResult } from './http.js';

/** One approval request, as the daemon keeps it (`<state_dir>/approvals.json`). Times are ms since epoch. */
export const StoredApprovalSchema = z.strictObject({
  id: z.string().min(1),
  /** The supervised agent's key (`<cell uuid>/<name>` or `host/<name>`). */
  key: z.string().min(1),
  agent: z.string().min(1),
  cell: z.string().optional(),
  mission: z.string().optional(),
  kind: z.enum(['revive', 'escalation']),
  proposed: z.enum(['restart', 'rollback_and_restart', 'substitute']),
  substitute: z.string().optional(),
  reasons: z.array(z.string()),
  channels: z.array(z.string()),
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']),
  requested_at: z.number(),
  expires_at: z.number(),
  on_timeout: z.enum(['record_only', 'proceed', 'restart', 'rollback_and_restart', 'substitute']),
  decided_at: z.number().optional(),
  by: z.string().optional(),
  channel: z.string().optional(),
  reason: z.string().optional(),
});
export type StoredApproval = z.infer<typeof StoredApprovalSchema>;

const FileSchema = z.strictObject({ version: z.literal(1), approvals: z.array(StoredApprovalSchema) });

/** What {@link ApprovalStore.ask} takes. */
export type AskInput = Omit<StoredApproval, 'id' | 'status' | 'decided_at' | 'by' | 'channel' | 'reason'>;

/** The daemon's approval requests: single-use, persisted, answered from any channel. */
export interface ApprovalStore {
  ask(input: AskInput): Promise<StoredApproval>;
  get(id: string): StoredApproval | undefined;
  /** The latest request about an agent key. */
  latest(key: string): StoredApproval | undefined;
  list(status?: StoredApproval['status']): StoredApproval[];
  /** Answers a pending request once; later answers are refused (`already_decided`). */
  decide(id: string, decision: 'approve' | 'deny', answer: { by?: string; channel: string; reason?: string; now: number }): Promise<ApprovalDecisionResult>;
  /** Marks pending requests past their expiry as expired; returns them. */
  expire(now: number): Promise<StoredApproval[]>;
  /** Withdraws a pending request (the agent recovered). */
  cancel(id: string, now: number): Promise<void>;
  /** Re-reads the file (another process, e.g. `pit approve`, may have answered). */
  refresh(): Promise<void>;
}

/**
 * Opens the approvals file of a state directory. Writes are atomic and serialised; a
 * decision re-reads the file first so answers from another process are not lost.
 */
export async function openApprovalStore(stateDir: string): Promise<ApprovalStore> {
  const path = join(stateDir, 'approvals.json');
  let approvals: StoredApproval[] = [];
  let queue: Promise<unknown> = Promise.resolve();
  const load = async () => {
    try {
      approvals = (await readJsonFile(path, FileSchema, { maxBytes: 32 * 1024 * 1024 })).approvals;
    } catch (error) {
      if ((error as { code?: string }).code !== 'CELL_NOT_FOUND') throw error;
      approvals = [];
    }
  };
  const save = async () => {
    await fs.mkdir(stateDir, { recursive: true });
    await writeJsonAtomic(path, { version: 1, approvals: approvals.slice(-1000) });
  };
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };
  await load();
  return {
    ask: (input) =>
      serial(async () => {
        await load();
        const approval: StoredApproval = { ...input, id: `apr-${randomBytes(5).toString('hex')}`, status: 'pending' };
        approvals.push(approval);
        await save();
        return approval;
      }),
    get: (id) => approvals.find((approval) => approval.id === id),
    latest: (key) => approvals.filter((approval) => approval.key === key).at(-1),
    list: (status) => approvals.filter((approval) => status === undefined || approval.status === status),
    decide: (id, decision, answer) =>
      serial(async (): Promise<ApprovalDecisionResult> => {
        await load();
        const approval = approvals.find((item) => item.id === id);
        if (!approval) return { ok: false, reason: 'not_found', message: `no approval request ${id}` };
        if (approval.status !== 'pending') return { ok: false, reason: approval.status === 'expired' ? 'expired' : 'already_decided', message: `approval request ${id} is already ${approval.status}` };
        if (answer.now > approval.expires_at) return { ok: false, reason: 'expired', message: `approval request ${id} expired at ${new Date(approval.expires_at).toISOString()}` };
        approval.status = decision === 'approve' ? 'approved' : 'denied';
        approval.decided_at = answer.now;
        approval.channel = answer.channel;
        if (answer.by) approval.by = answer.by;
        if (answer.reason) approval.reason = answer.reason;
        await save();
        return { ok: true, id, decision, agent: approval.agent, cell: approval.cell };
      }),
    expire: (now) =>
      serial(async () => {
        await load();
        const expired = approvals.filter((approval) => approval.status === 'pending' && now > approval.expires_at);
        for (const approval of expired) approval.status = 'expired';
        if (expired.length > 0) await save();
        return expired;
      }),
    cancel: (id, now) =>
      serial(async () => {
        await load();
        const approval = approvals.find((item) => item.id === id);
        if (approval?.status !== 'pending') return;
        approval.status = 'cancelled';
        approval.decided_at = now;
        await save();
      }),
    refresh: () => serial(load),
  };
}
