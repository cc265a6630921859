/**
 * Converts the first daemon's `lazarus-pit.toml` (seed 001: `[daemon]`, `[cells]`, `[gateway]`,
 * `[gitea]`, `[notifications]`) into pit.toml settings. Owns that mapping only; it receives
 * the parsed document.
 */
import {
  asRecord,
  giteaIssues,
  ImportBuilder,
  isSeconds,
  secondsDuration,
  type ImportedConfig,
} from './imported-config.js';

const LOG_LEVELS: Record<string, string> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'error',
};

/** `[cells]` keys: older name → pit.toml table and key, and how the value converts. */
const CELL_KEYS: Array<{
  key: string;
  table: string[];
  to: string;
  convert: (value: number) => number | string;
  note?: string;
}> = [
  {
    key: 'heartbeat_stale_threshold',
    table: ['cells'],
    to: 'heartbeat_stale_s',
    convert: (v) => v,
  },
  { key: 'poll_interval', table: ['cells'], to: 'poll_interval_s', convert: (v) => v },
  {
    key: 'resurrect_after',
    table: ['policy', 'defaults'],
    to: 'dead_after',
    convert: secondsDuration,
    note: 'seconds',
  },
  {
    key: 'max_revive_attempts',
    table: ['policy', 'defaults'],
    to: 'max_revive_attempts',
    convert: (v) => v,
  },
];

/** Converts a parsed `lazarus-pit.toml`. */
export function convertLazarusPitToml(document: Record<string, unknown>): ImportedConfig {
  const builder = new ImportBuilder();
  for (const [section, value] of Object.entries(document)) {
    const table = asRecord(value);
    if (section === 'daemon') convertDaemon(builder, table);
    else if (section === 'cells') convertCells(builder, table);
    else if (section === 'gateway') convertGateway(builder, table);
    else if (section === 'gitea') convertGitea(builder, table);
    else if (section === 'notifications') convertNotifications(builder, table);
    else builder.skip(`[${section}]`, value, 'not a section of lazarus-pit.toml');
  }
  return builder.build("lazarus-pit.toml, the first daemon's config (seed 001)");
}

function convertDaemon(builder: ImportBuilder, daemon: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(daemon)) {
    const from = `[daemon] ${key}`;
    if (key === 'pid_file' && typeof value === 'string' && value !== '')
      builder.set({ table: ['daemon'], key: 'pid_file', value, from });
    else if (key === 'log_file' && value === '-')
      builder.skip(from, value, 'the Pit logs to stderr unless [daemon] log_file names a file');
    else if (key === 'log_file' && typeof value === 'string' && value !== '')
      builder.set({ table: ['daemon'], key: 'log_file', value, from });
    else if (key === 'log_level' && typeof value === 'string' && LOG_LEVELS[value.toUpperCase()])
      builder.set({
        table: ['daemon'],
        key: 'log_level',
        value: LOG_LEVELS[value.toUpperCase()]!,
        from,
      });
    else builder.skip(from, value, 'no equivalent in [daemon]');
  }
}

function convertCells(builder: ImportBuilder, cells: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(cells)) {
    const from = `[cells] ${key}`;
    if (key === 'root' && typeof value === 'string' && value !== '') {
      builder.set({ table: ['cells'], key: 'root', value, from });
      continue;
    }
    const mapped = CELL_KEYS.find((entry) => entry.key === key);
    if (mapped && isSeconds(value))
      builder.set({
        table: mapped.table,
        key: mapped.to,
        value: mapped.convert(value),
        from,
        ...(mapped.note ? { note: mapped.note } : {}),
      });
    else builder.skip(from, value, mapped ? 'expected a number' : 'no equivalent in [cells]');
  }
}

function convertGateway(builder: ImportBuilder, gateway: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(gateway))
    builder.skip(
      `[gateway] ${key}`,
      value,
      'the Pit probes each agent itself: put the address on the agent that serves it, as [agents.<name>.probes] tcp = "host:port" or health_url = "http://health_host:health_port/health"',
    );
}

function convertGitea(builder: ImportBuilder, gitea: Record<string, unknown>): void {
  giteaIssues(builder, { url: gitea.url, repo: gitea.repo, section: 'gitea' });
  for (const [key, value] of Object.entries(gitea)) {
    if (key === 'token')
      builder.skipSecret(
        '[gitea] token',
        "set GITEA_TOKEN in the daemon's environment ([issues] token_env)",
      );
    else if (key !== 'url' && key !== 'repo')
      builder.skip(`[gitea] ${key}`, value, 'no equivalent in [issues]');
  }
}

function convertNotifications(
  builder: ImportBuilder,
  notifications: Record<string, unknown>,
): void {
  for (const [key, value] of Object.entries(notifications)) {
    const from = `[notifications] ${key}`;
    if ((key === 'open_issue_on_death' || key === 'close_issue_on_revive') && value === true)
      builder.skip(
        from,
        value,
        'nothing to write: with [issues] the Pit opens an issue when an agent dies and closes it when the agent is back',
      );
    else
      builder.skip(
        from,
        value,
        'the Pit always opens and closes death issues when [issues] is configured: leave out [issues] to have none',
      );
  }
}
