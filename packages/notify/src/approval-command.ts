import { AGENT_NAME_PATTERN } from '@pit/cell-spec';
import type { ApprovalDecision } from '@pit/cell-spec';

/** A parsed text command from an approver. */
export type ApprovalCommand =
  | { decision: ApprovalDecision; target: 'request'; id: string }
  | { decision: ApprovalDecision; target: 'agent'; agent: string; cell?: string };

const COMMAND = /^\s*\/?(approve|deny|revive|skip)(?:@[A-Za-z0-9_]+)?\s+(\S+)\s*$/i;

/** A cell named by the start of its uuid: at least 8 characters of it. */
const CELL_PREFIX = /^[0-9a-f][0-9a-f-]{7,35}$/;

/**
 * Parses `approve <id>`, `deny <id>`, `revive <agent>` or `skip <agent>` (case-insensitive verb,
 * an optional leading `/` and Telegram `@botname` suffix). The agent may be led by the start of
 * its cell's uuid (`revive 3f2a1c4e/scout`), which tells two cells' `scout`s apart. Anything
 * else is null.
 * @example parseApprovalCommand('revive scout') // { decision: 'approve', target: 'agent', agent: 'scout' }
 * @example parseApprovalCommand('skip 3f2a1c4e/scout') // { decision: 'deny', target: 'agent', agent: 'scout', cell: '3f2a1c4e' }
 */
export function parseApprovalCommand(text: string): ApprovalCommand | null {
  if (text.length > 300) return null;
  const match = COMMAND.exec(text);
  if (!match) return null;
  const verb = (match[1] ?? '').toLowerCase();
  const argument = match[2] ?? '';
  const decision: ApprovalDecision = verb === 'approve' || verb === 'revive' ? 'approve' : 'deny';
  if (verb === 'approve' || verb === 'deny') {
    const id = argument.toLowerCase();
    return /^[0-9a-f]{32}$/.test(id) ? { decision, target: 'request', id } : null;
  }
  const slash = argument.indexOf('/');
  const cell = slash === -1 ? undefined : argument.slice(0, slash).toLowerCase();
  const agent = slash === -1 ? argument : argument.slice(slash + 1);
  if (cell !== undefined && !CELL_PREFIX.test(cell)) return null;
  if (!AGENT_NAME_PATTERN.test(agent)) return null;
  return { decision, target: 'agent', agent, ...(cell !== undefined ? { cell } : {}) };
}
