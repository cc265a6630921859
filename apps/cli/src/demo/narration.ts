/**
 * What `pit demo` says of each event it narrates from the cell's event log.
 */
import { isCellEventKind, type AnyCellEvent, type CellEventKind } from '@pit/cell-spec';

/** What the narration needs to know of the demo. */
export interface NarrationContext {
  /** The demo cell's directory (stripped from the paths it tells). */
  cellDir: string;
  /**
   * The `pit` command line up to the subcommand, as the operator can paste it into a shell: the
   * command, `--config FILE` and, when the demo made up the HTTP token, that token as an
   * environment assignment in front (the approve goes through the daemon and needs it).
   */
  pitInvocation: string;
}

/**
 * The demo's line for an event of the kinds it tells, or `undefined`. Only the matching kind's
 * fields are read: another kind may carry a field of the same name with another shape (the
 * `files` of `checkpoint_created` is a count, of `config_rolled_back` a list).
 */
export function narration(
  e: AnyCellEvent & Record<string, unknown>,
  context: NarrationContext,
): string | undefined {
  if (!isCellEventKind(e.event)) return undefined;
  const kind: CellEventKind = e.event;
  switch (kind) {
    case 'agent_dead':
      return `is dead: ${String(e.reason ?? '')}`;
    case 'decision':
      return `decision ${String(e.action)}: ${String(e.reason ?? '')}`;
    case 'config_rolled_back': {
      const files = Array.isArray(e.files)
        ? (e.files as Array<{ path: string; old_sha256: string | null; new_sha256: string }>)
        : [];
      return `config rolled back: ${files.map((f) => `${f.path.replace(`${context.cellDir}/`, '')} ${f.old_sha256?.slice(0, 8) ?? '∅'} → ${f.new_sha256.slice(0, 8)}`).join(', ')}`;
    }
    case 'agent_revived':
      return `revived as pid ${String(e.pid ?? '?')}`;
    case 'agent_healthy':
      return 'is healthy';
    case 'revive_requested':
      return `waits for a human: approve with \`${context.pitInvocation} approve ${String(e.approval_id ?? '')}\` or on the dashboard`;
    case 'revive_approved':
      return `revive approved by ${String(e.by ?? '?')} via ${String(e.channel ?? '?')}`;
    default:
      return undefined;
  }
}
