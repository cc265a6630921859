import { AGENT_NAME_PATTERN } from '@pit/cell-spec';
import type { ApprovalDecision } from '@pit/cell-spec';

/** A parsed text command from an approver. */
export type ApprovalCommand =
  | { decision: ApprovalDecision; target: 'request'; id: string }
  | { decision: ApprovalDecision; target: 'agent'; agent: string };

const COMMAND = /^\s*\/?(approve|deny|revive|skip)(?:@[A-Za-z0-9_]+)?\s+(\S+)\s*$/i;

/**
 * Parses `approve <id>`, `deny <id>`, `revive <agent>` or `skip <agent>` (case-insensitive verb,
 * an optional leading `/` and Telegram `@botname` suffix). Anything else is null.
 * @example parseApprovalCommand('revive scout') // { decision: 'approve', target: 'agent', agent: 'scout' }
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
  return AGENT_NAME_PATTERN.test(argument) ? { decision, target: 'agent', agent: argument } : null;
}
