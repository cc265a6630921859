import { AgentNameSchema } from '@pit/cell-spec';
import { z } from 'zod';

/** A point in time: a Date or an ISO-8601 string. */
const TimeSchema = z
  .union([z.date(), z.iso.datetime({ offset: true })])
  .transform((value) => new Date(value));

/** One probe result as the daemon saw it (the shape of @pit/probes' results, kept local). */
export const ProbeSummarySchema = z.strictObject({
  /** Probe name or kind (`http /health`, `heartbeat`, …). */
  name: z.string().min(1).max(200),
  ok: z.boolean(),
  latency_ms: z.number().nonnegative().nullable().optional(),
  detail: z.string().max(2000).default(''),
  observed_at: TimeSchema,
});

/** One restart attempt in the agent's history. */
export const RestartRecordSchema = z.strictObject({
  at: TimeSchema,
  /** `restarted`, `failed`, `rolled back`, `substituted`, … */
  outcome: z.string().min(1).max(200),
  detail: z.string().max(2000).optional(),
});

/** Everything the post-mortem issue says about a death. */
export const DeathReportSchema = z.strictObject({
  agent: AgentNameSchema,
  mission: z.string().min(1).max(500),
  cell_uuid: z.string().min(1).optional(),
  /** One line: why the agent is considered dead. */
  reason: z.string().min(1).max(500),
  /** When it was first seen dead. */
  dead_since: TimeSchema,
  probes: z.array(ProbeSummarySchema).default([]),
  restarts: z.array(RestartRecordSchema).default([]),
  /** A unified diff of the agent's config against the last known good version (text the caller computed), or null. */
  config_diff: z.string().nullable().default(null),
  /** The last lines of the agent's log, oldest first. */
  log_lines: z.array(z.string()).default([]),
});
export type DeathReport = z.infer<typeof DeathReportSchema>;
export type DeathReportInput = z.input<typeof DeathReportSchema>;

/** GitHub refuses bodies over 65 536 characters; stay well below. */
const MAX_BODY = 60_000;

/** A fence longer than any backtick run inside `text`, so the content cannot close it. */
function fence(text: string, language = ''): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((match) => match[0].length));
  const ticks = '`'.repeat(longest + 1);
  return `${ticks}${language}\n${text}\n${ticks}`;
}

/** Escapes text for a Markdown table cell. */
function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ').slice(0, 300);
}

/** "3 h 12 min", "45 s". */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** The hidden marker that identifies one death episode in an issue body or comment. */
export function deathMarker(report: Pick<DeathReport, 'agent' | 'dead_since'>): string {
  return `<!-- pit:death agent=${report.agent} since=${report.dead_since.toISOString()} -->`;
}

/**
 * Renders the post-mortem body of a death issue: mission, how long it has been dead, probe
 * results, restart history, config diff against last known good, and the last log lines.
 */
export function renderPostMortem(
  report: DeathReport,
  options: { now: Date; maxLogLines?: number },
): string {
  const maxLogLines = options.maxLogLines ?? 50;
  const parts: string[] = [
    deathMarker(report),
    `## \`${report.agent}\` is dead`,
    '',
    `- **Mission:** ${report.mission}`,
    ...(report.cell_uuid ? [`- **Cell:** \`${report.cell_uuid}\``] : []),
    `- **Reason:** ${report.reason.replace(/\r?\n/g, ' ')}`,
    `- **Dead since:** ${report.dead_since.toISOString()}`,
    `- **Dead for:** ${formatDuration(options.now.getTime() - report.dead_since.getTime())} (at ${options.now.toISOString()})`,
    '',
    '### Probe results',
  ];
  if (report.probes.length === 0) parts.push('', '_No probe results._');
  else {
    parts.push(
      '',
      '| probe | result | latency | observed | detail |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const probe of report.probes) {
      const latency =
        probe.latency_ms === null || probe.latency_ms === undefined
          ? '–'
          : `${Math.round(probe.latency_ms)} ms`;
      parts.push(
        `| ${cell(probe.name)} | ${probe.ok ? 'ok' : '**failed**'} | ${latency} | ${probe.observed_at.toISOString()} | ${cell(probe.detail)} |`,
      );
    }
  }
  parts.push('', '### Restart history', '');
  if (report.restarts.length === 0) parts.push('_No restarts yet._');
  else
    for (const restart of report.restarts.slice(-30))
      parts.push(
        `- ${restart.at.toISOString()} — ${cell(restart.outcome)}${restart.detail ? `: ${cell(restart.detail)}` : ''}`,
      );
  parts.push('', '### Config diff against last known good', '');
  parts.push(
    report.config_diff === null
      ? '_No last known good snapshot to compare with._'
      : report.config_diff.trim() === ''
        ? '_No difference._'
        : fence(report.config_diff.slice(0, 20_000), 'diff'),
  );
  const lines = report.log_lines.slice(-maxLogLines);
  parts.push('', `### Last ${lines.length} log line${lines.length === 1 ? '' : 's'}`, '');
  const head = parts.join('\n');
  if (lines.length === 0) return `${head}\n_No log output._\n`;
  // Keep the newest lines when the body would be too long.
  let kept = lines;
  let log = kept.join('\n');
  while (head.length + log.length + 20 > MAX_BODY && kept.length > 1) {
    kept = kept.slice(Math.ceil(kept.length / 4));
    log = kept.join('\n');
  }
  if (head.length + log.length + 20 > MAX_BODY) log = log.slice(-(MAX_BODY - head.length - 40));
  return `${head}\n${fence(log)}\n`;
}
