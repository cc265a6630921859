import { z } from 'zod';
import { AgentNameSchema } from './agent-name.js';
import { ApprovalSchema, ApprovalsFileSchema } from './approval.js';
import { AnyCellEventSchema, CELL_EVENT_KINDS, CellEventSchema } from './event-kinds.js';
import { HeartbeatSchema } from './heartbeat.js';
import { IsolationProfileSchema } from './isolation.js';
import { CellManifestSchema } from './manifest.js';
import { CellStateSchema } from './state.js';

/**
 * The schemas published as JSON Schema files (`schemas/<name>.schema.json`) for harnesses in
 * other languages. `cell-event` is a known event (checked against its kind's schema) or an
 * event of a kind this version does not know (only `ts` and a snake_case `event`).
 */
export const JSON_SCHEMAS = {
  'cell-manifest': CellManifestSchema,
  heartbeat: HeartbeatSchema,
  'cell-event': z.union([CellEventSchema, AnyCellEventSchema]),
  'cell-state': CellStateSchema,
  'isolation-profile': IsolationProfileSchema,
  'agent-name': AgentNameSchema,
  approval: ApprovalSchema,
  'approvals-file': ApprovalsFileSchema,
} as const;

type JsonObject = Record<string, unknown>;

function render(schema: z.ZodType): JsonObject {
  return z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    override: (context) => {
      // zod renders `.startsWith('/')` as a non-standard `format: "starts_with"` next to an
      // equivalent pattern; strict validators (ajv) reject unknown formats.
      if (context.jsonSchema.format === 'starts_with') delete context.jsonSchema.format;
    },
  }) as JsonObject;
}

/**
 * Renders every published schema as JSON Schema (draft 2020-12), keyed by file stem.
 * `scripts/write-schemas.ts` writes them to `schemas/` at build; a test checks that the
 * committed files equal this output.
 */
export function toJsonSchemas(): Record<keyof typeof JSON_SCHEMAS, object> {
  const out = {} as Record<keyof typeof JSON_SCHEMAS, object>;
  for (const [name, schema] of Object.entries(JSON_SCHEMAS) as Array<
    [keyof typeof JSON_SCHEMAS, z.ZodType]
  >) {
    let rendered: JsonObject;
    if (name === 'cell-event') {
      // The "unknown kind" branch must not match a known kind: a broken `agent_dead` line is
      // invalid, not an unknown event (zod checks this by dispatching on the kind).
      const known = render(CellEventSchema);
      const unknown = render(AnyCellEventSchema);
      const properties = unknown.properties as { event: JsonObject };
      properties.event = { ...properties.event, not: { enum: [...CELL_EVENT_KINDS] } };
      delete known.$schema;
      delete unknown.$schema;
      rendered = {
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        anyOf: [known, unknown],
      };
    } else {
      rendered = render(schema);
    }
    out[name] = { $id: `https://pit.dev/schemas/${name}.schema.json`, ...rendered };
  }
  return out;
}
