/**
 * What a converter of an older config (`pit config import`) produces: the pit.toml settings it
 * could map, each with the key it came from, and the keys with no equivalent in the Pit, each
 * with why. This module owns that shape and the helpers the converters share; it never reads a
 * file and never renders TOML (./render-toml.ts does).
 */

/** A TOML value the converters write. */
export type TomlValue = string | number | boolean | string[];

/** One pit.toml setting and the older key it came from. */
export interface ImportedSetting {
  /** The table (`['policy', 'missions', 'forge']`). */
  table: string[];
  key: string;
  value: TomlValue;
  /** The older key (`[cells] resurrect_after`), for the comment above the setting. */
  from: string;
  /** Said in the comment after `from` (a unit converted, an alias kept). */
  note?: string;
}

/** An older key with no equivalent, and why. */
export interface UnsupportedKey {
  /** The older key (`[gateway] port`). */
  from: string;
  /** What it was set to (a secret is never copied: `(secret, not copied)`). */
  value: string;
  /** Why it has no equivalent, and what to do instead. */
  reason: string;
}

/** A converted config. */
export interface ImportedConfig {
  /** The older format, as named in the output (`lazarus-pit.toml (seed 001)`). */
  format: string;
  settings: ImportedSetting[];
  unsupported: UnsupportedKey[];
}

/** Collects settings and unsupported keys while a converter walks its input. */
export class ImportBuilder {
  readonly settings: ImportedSetting[] = [];
  readonly unsupported: UnsupportedKey[] = [];

  /** Adds a setting. */
  set(setting: ImportedSetting): void {
    this.settings.push(setting);
  }

  /** Lists an older key with no equivalent. */
  skip(from: string, value: unknown, reason: string): void {
    this.unsupported.push({ from, value: describeValue(value), reason });
  }

  /** Lists a secret that is never copied into pit.toml. */
  skipSecret(from: string, reason: string): void {
    this.unsupported.push({ from, value: '(secret, not copied)', reason });
  }

  /** The result. */
  build(format: string): ImportedConfig {
    return { format, settings: this.settings, unsupported: this.unsupported };
  }
}

/** A value as shown in the list of unsupported keys. */
export function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** `value` when it is a plain object, else an empty one. */
export function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** A number of seconds, as a pit.toml duration (`"120s"`). */
export const secondsDuration = (seconds: number): string => `${seconds}s`;

/** Whether `value` is a number of seconds (≥ 0). */
export const isSeconds = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0;

/** The pattern of an agent name (`[agents.<name>]`). */
export const AGENT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * `[issues]` for a Gitea instance (`https://forge.example.com`) and repository
 * (`owner/name`), or the reasons it cannot be written.
 */
export function giteaIssues(
  builder: ImportBuilder,
  from: { url: unknown; repo: unknown; section: string },
): void {
  const url = typeof from.url === 'string' ? from.url.replace(/\/+$/, '') : undefined;
  const [owner, repo, ...rest] = typeof from.repo === 'string' ? from.repo.split('/') : [];
  if (!url || !/^https?:\/\//.test(url) || !owner || !repo || rest.length > 0) {
    if (from.url !== undefined || from.repo !== undefined)
      builder.skip(
        `[${from.section}] url, repo`,
        { url: from.url, repo: from.repo },
        'needs an http(s) url and a repo "owner/name" to become [issues]',
      );
    return;
  }
  const table = ['issues'];
  const source = `[${from.section}] url, repo`;
  builder.set({ table, key: 'provider', value: 'gitea', from: source });
  builder.set({
    table,
    key: 'base_url',
    value: `${url}/api/v1`,
    from: `[${from.section}] url`,
    note: "Gitea's API root",
  });
  builder.set({ table, key: 'owner', value: owner, from: `[${from.section}] repo` });
  builder.set({ table, key: 'repo', value: repo, from: `[${from.section}] repo` });
  builder.set({
    table,
    key: 'token_env',
    value: 'GITEA_TOKEN',
    from: `[${from.section}] token`,
    note: 'the variable the first daemons read; a token is never written in pit.toml',
  });
}
