import { AgentNameSchema } from '@pit/cell-spec';
import { z } from 'zod';

/** What an alert is about. */
export const AlertKindSchema = z.enum(['death', 'recovery', 'escalation', 'approval', 'notice']);
export type AlertKind = z.infer<typeof AlertKindSchema>;

/** One alert, as the daemon hands it to the dispatcher. */
export const AlertSchema = z.strictObject({
  kind: AlertKindSchema,
  /** The agent it is about (omit for fleet-wide notices). */
  agent: AgentNameSchema.optional(),
  mission: z.string().min(1).max(500).optional(),
  /** One line: what happened. */
  summary: z.string().min(1).max(1000),
  /** When it happened. */
  at: z.date(),
});
export type Alert = z.infer<typeof AlertSchema>;

/** What one channel message carries: a single alert, or a group listing many. */
export interface AlertBatch {
  alerts: Alert[];
  /** True when several alerts were merged into one message. */
  grouped: boolean;
  /** Alerts dropped from the batch because the channel's queue was over its limit. */
  omitted: number;
}

const KIND_VERB: Record<AlertKind, string> = {
  death: 'died',
  recovery: 'recovered',
  escalation: 'escalated',
  approval: 'awaits approval',
  notice: 'notice',
};

const ICON: Record<AlertKind, string> = {
  death: '💀',
  recovery: '✅',
  escalation: '🚨',
  approval: '❓',
  notice: 'ℹ️',
};

function line(alert: Alert): string {
  const who = alert.agent ? `${alert.agent}${alert.mission ? ` (${alert.mission})` : ''}: ` : '';
  return `${ICON[alert.kind]} ${who}${alert.summary}`;
}

/**
 * Renders a batch as plain text (no markup, safe for any channel), at most `maxChars` long:
 * a single alert as one line, a group as a headline ("12 agents died within 3 s") and one
 * line per alert, cut with "… and N more" when too long.
 */
export function formatAlertText(batch: AlertBatch, maxChars = 3500): string {
  const { alerts } = batch;
  if (alerts.length === 1 && batch.omitted === 0 && alerts[0])
    return truncate(`[pit] ${line(alerts[0])}`, maxChars);
  const total = alerts.length + batch.omitted;
  const kinds = new Set(alerts.map((alert) => alert.kind));
  const only = kinds.size === 1 ? [...kinds][0] : undefined;
  const times = alerts.map((alert) => alert.at.getTime());
  const spanSeconds =
    times.length > 0
      ? Math.max(0, Math.round((Math.max(...times) - Math.min(...times)) / 1000))
      : 0;
  const missions = [
    ...new Set(
      alerts.map((alert) => alert.mission).filter((mission): mission is string => !!mission),
    ),
  ];
  const headline =
    only === 'death' || only === 'recovery' || only === 'escalation'
      ? `[pit] ${total} agents ${KIND_VERB[only]} within ${spanSeconds} s`
      : `[pit] ${total} alerts within ${spanSeconds} s`;
  const header =
    missions.length > 0
      ? `${headline} (missions: ${missions.slice(0, 5).join(', ')}${missions.length > 5 ? ', …' : ''})`
      : headline;
  const lines = [header];
  let used = header.length;
  let shown = 0;
  for (const alert of alerts) {
    const text = line(alert);
    if (used + text.length + 40 > maxChars) break;
    lines.push(text);
    used += text.length + 1;
    shown += 1;
  }
  const hidden = total - shown;
  if (hidden > 0) lines.push(`… and ${hidden} more`);
  return lines.join('\n');
}

function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars - 1)}…`;
}
