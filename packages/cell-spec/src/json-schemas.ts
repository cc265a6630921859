import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';
import { CellEventSchema, AnyCellEventSchema } from './events.js';
import { HeartbeatSchema } from './heartbeat.js';
import { IsolationProfileSchema } from './isolation.js';
import { CellManifestSchema } from './manifest.js';
import { CellStateSchema } from './state.js';

/** The schemas published as JSON Schema files (`schemas/<name>.schema.json`) for harnesses in other languages. */
export const JSON_SCHEMAS = {
  'cell-manifest': CellManifestSchema,
  heartbeat: HeartbeatSchema,
  'cell-event': z.union([CellEventSchema, AnyCellEventSchema]),
  'cell-state': CellStateSchema,
  'isolation-profile': IsolationProfileSchema,
  'agent-name': AgentNameSchema,
} as const;

/** Renders every published schema as JSON Schema (draft 2020-12), keyed by file stem. */
export function toJsonSchemas(): Record<keyof typeof JSON_SCHEMAS, object> {
  const out = {} as Record<keyof typeof JSON_SCHEMAS, object>;
  for (const [name, schema] of Object.entries(JSON_SCHEMAS) as Array<[keyof typeof JSON_SCHEMAS, z.ZodType]>) {
    out[name] = {
      $id: `https://pit.dev/schemas/${name}.schema.json`,
      ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }),
    };
  }
  return out;
}
