/**
 * Converts the fleet registry `lazarus-registry.yaml` (seed 002: `fleet.<agent>` with `mission`,
 * `host`, `primary`, `health_endpoints`, `substitutes`; `provider_health_matrix`) into pit.toml
 * settings. Owns that mapping only; it receives the parsed document.
 */
import { AGENT_NAME, asRecord, ImportBuilder, type ImportedConfig } from './imported-config.js';

const LOCAL = /^(localhost|127\.\d+\.\d+\.\d+|::1)$/;

/** Converts a parsed `lazarus-registry.yaml`. */
export function convertLazarusRegistry(document: Record<string, unknown>): ImportedConfig {
  const builder = new ImportBuilder();
  const named = new Set<string>();
  for (const [key, value] of Object.entries(document)) {
    if (key === 'fleet')
      for (const [name, spec] of Object.entries(asRecord(value)))
        convertAgent(builder, name, asRecord(spec), named);
    else if (key === 'provider_health_matrix')
      builder.skip(
        key,
        value,
        'the Pit does not track model providers: an agent that fails on its provider exits (or stops heartbeating) and is classified by its exit code ([policy.classify])',
      );
    else builder.skip(key, value, 'no equivalent in pit.toml');
  }
  const declared = new Set(
    builder.settings.filter((s) => s.table[0] === 'agents').map((s) => s.table[1]),
  );
  for (const name of named)
    if (!declared.has(name))
      builder.set({
        table: ['agents', name],
        key: 'host',
        value: 'local',
        from: `a substitute named in fleet`,
        note: 'declared; give it argv to let the Pit start it',
      });
  return builder.build('lazarus-registry.yaml, the fleet registry (seed 002)');
}

function convertAgent(
  builder: ImportBuilder,
  name: string,
  spec: Record<string, unknown>,
  named: Set<string>,
): void {
  const from = (key: string) => `fleet.${name}.${key}`;
  if (!AGENT_NAME.test(name)) {
    builder.skip(`fleet.${name}`, spec, 'not an agent name');
    return;
  }
  const table = ['agents', name];
  const host = typeof spec.host === 'string' && spec.host !== '' ? spec.host : undefined;
  builder.set({
    table,
    key: 'host',
    value: host === undefined || LOCAL.test(host) ? 'local' : host,
    from: from('host'),
    ...(host && !LOCAL.test(host)
      ? { note: 'a remote host: watched, never restarted from here' }
      : {}),
  });
  builder.skip(
    from('(restart)'),
    `systemctl restart hermes-${name}.service`,
    'the Pit starts agents itself: set [agents.<name>] argv to the command the service ran',
  );
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'host') continue;
    if (key === 'mission' && typeof value === 'string' && value !== '')
      builder.set({ table: ['policy', 'agents', name], key: 'mission', value, from: from(key) });
    else if (
      key === 'substitutes' &&
      Array.isArray(value) &&
      value.every((item) => typeof item === 'string' && AGENT_NAME.test(item))
    ) {
      for (const item of value as string[]) named.add(item);
      builder.set({
        table: ['policy', 'agents', name],
        key: 'substitutes',
        value: value as string[],
        from: from(key),
      });
    } else if (
      key === 'health_endpoints' &&
      typeof asRecord(value).gateway === 'string' &&
      /^https?:\/\//.test(asRecord(value).gateway as string)
    ) {
      builder.set({
        table: [...table, 'probes'],
        key: 'health_url',
        value: asRecord(value).gateway as string,
        from: from('health_endpoints.gateway'),
      });
      for (const other of Object.keys(asRecord(value)))
        if (other !== 'gateway')
          builder.skip(
            from(`health_endpoints.${other}`),
            asRecord(value)[other],
            'the Pit probes one health_url per agent',
          );
    } else if (key === 'primary')
      builder.skip(from(key), value, 'the Pit does not track model providers');
    else builder.skip(from(key), value, 'no equivalent in [agents.<name>]');
  }
}
