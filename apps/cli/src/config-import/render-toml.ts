/**
 * Renders an imported config as a commented pit.toml: a header naming the source, each table
 * once (in the order first used) with a comment per setting saying which older key it came
 * from, and the keys with no equivalent as comments at the end. Pure; it writes nothing.
 */
import type { ImportedConfig, TomlValue } from './imported-config.js';

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/** A key as TOML writes it: bare when it can be, else quoted. */
export const tomlKey = (key: string): string => (BARE_KEY.test(key) ? key : JSON.stringify(key));

/** A value as TOML writes it (JSON's string escapes are TOML's). */
export function tomlValue(value: TomlValue): string {
  if (Array.isArray(value)) return `[${value.map((item) => JSON.stringify(item)).join(', ')}]`;
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** Renders `imported` (converted from `source`) as pit.toml text. */
export function renderToml(imported: ImportedConfig, source: string): string {
  const lines = [
    `# pit.toml converted by \`pit config import\` from ${source}`,
    `# (${imported.format}). Check it with \`pit config check -c <this file>\`.`,
  ];
  const tables = new Map<string, string[]>();
  for (const setting of imported.settings) {
    const name = setting.table.map(tomlKey).join('.');
    const body = tables.get(name) ?? [];
    body.push(
      `# from ${setting.from}${setting.note ? ` (${setting.note})` : ''}`,
      `${tomlKey(setting.key)} = ${tomlValue(setting.value)}`,
    );
    tables.set(name, body);
  }
  for (const [name, body] of tables) lines.push('', `[${name}]`, ...body);
  if (imported.unsupported.length > 0) {
    lines.push('', '# Not converted (no equivalent in the Pit):');
    for (const key of imported.unsupported)
      lines.push(`#   ${key.from} = ${key.value}: ${key.reason}`);
  }
  return `${lines.join('\n')}\n`;
}
