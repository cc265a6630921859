/**
 * Converts the second `resurrection_pool.json` (seed 002: `dead_timeout_seconds`,
 * `default_policy`, `missions`, `agents`, `substitutions`, `approval_channels`) into pit.toml
 * settings: it is the Pit's `[policy]` almost key for key. Owns that mapping only.
 */
import {
  AGENT_NAME,
  asRecord,
  ImportBuilder,
  isSeconds,
  secondsDuration,
  type ImportedConfig,
} from './imported-config.js';

/** Converts one policy layer (`mode`, `dead_timeout_seconds`; `mission` for an agent). */
function convertLayer(
  builder: ImportBuilder,
  layer: Record<string, unknown>,
  where: { table: string[]; from: string; agent: boolean },
): void {
  for (const [key, value] of Object.entries(layer)) {
    const from = `${where.from}.${key}`;
    if (key === 'mode' && typeof value === 'string')
      builder.set({ table: where.table, key: 'mode', value, from });
    else if (key === 'dead_timeout_seconds' && isSeconds(value))
      builder.set({
        table: where.table,
        key: 'dead_after',
        value: secondsDuration(value),
        from,
        note: 'seconds',
      });
    else if (key === 'mission' && where.agent && typeof value === 'string' && value !== '')
      builder.set({ table: where.table, key: 'mission', value, from });
    else builder.skip(from, value, 'no equivalent in a [policy] layer');
  }
}

/** Converts a parsed `resurrection_pool.json` of the second shape. */
export function convertResurrectionPoolV2(document: Record<string, unknown>): ImportedConfig {
  const builder = new ImportBuilder();
  const agents = new Set<string>();
  for (const [key, value] of Object.entries(document)) {
    if (key === 'dead_timeout_seconds' && isSeconds(value))
      builder.set({
        table: ['policy', 'defaults'],
        key: 'dead_after',
        value: secondsDuration(value),
        from: key,
        note: 'seconds',
      });
    else if (key === 'default_policy')
      convertLayer(builder, asRecord(value), {
        table: ['policy', 'defaults'],
        from: key,
        agent: false,
      });
    else if (key === 'missions')
      for (const [id, layer] of Object.entries(asRecord(value)))
        convertLayer(builder, asRecord(layer), {
          table: ['policy', 'missions', id],
          from: `missions.${id}`,
          agent: false,
        });
    else if (key === 'agents')
      for (const [name, layer] of Object.entries(asRecord(value))) {
        if (!AGENT_NAME.test(name)) {
          builder.skip(`agents.${name}`, layer, 'not an agent name');
          continue;
        }
        agents.add(name);
        convertLayer(builder, asRecord(layer), {
          table: ['policy', 'agents', name],
          from: `agents.${name}`,
          agent: true,
        });
      }
    else if (key === 'substitutions') convertSubstitutions(builder, asRecord(value), agents);
    else if (key === 'approval_channels') convertChannels(builder, asRecord(value));
    else builder.skip(key, value, 'no equivalent in pit.toml');
  }
  // Every agent named is declared, so that substitutes refer to configured agents.
  for (const name of agents)
    builder.set({
      table: ['agents', name],
      key: 'host',
      value: 'local',
      from: `agents.${name} / substitutions`,
      note: 'declared; give it argv to let the Pit start it',
    });
  return builder.build("resurrection_pool.json, the fleet pool's policy (seed 002)");
}

function convertSubstitutions(
  builder: ImportBuilder,
  substitutions: Record<string, unknown>,
  agents: Set<string>,
): void {
  for (const [name, list] of Object.entries(substitutions)) {
    const names = Array.isArray(list)
      ? list.filter((item): item is string => typeof item === 'string' && AGENT_NAME.test(item))
      : [];
    if (
      !AGENT_NAME.test(name) ||
      names.length === 0 ||
      names.length !== (list as unknown[]).length
    ) {
      builder.skip(
        `substitutions.${name}`,
        list,
        'expected an agent name and a list of agent names',
      );
      continue;
    }
    agents.add(name);
    for (const substitute of names) agents.add(substitute);
    builder.set({
      table: ['policy', 'agents', name],
      key: 'substitutes',
      value: names,
      from: `substitutions.${name}`,
    });
  }
}

function convertChannels(builder: ImportBuilder, channels: Record<string, unknown>): void {
  for (const [name, entry] of Object.entries(channels)) {
    const channel = asRecord(entry);
    builder.skip(
      `approval_channels.${name}`,
      entry,
      channel.enabled === false
        ? 'disabled: nothing to write'
        : `configure [${name}] (its chat or relays and approvers; "target" has no equivalent), then add "${name}" to [policy.defaults.approval] channels`,
    );
  }
}
