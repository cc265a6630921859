import { z } from 'zod';
import { BusEventSchema } from './bus-event.js';
import { BusConfigSchema } from './config.js';
import { ClientFrameSchema, ServerFrameSchema } from './protocol.js';
import { ResumePacketSchema } from './resume-packet.js';

/**
 * The schemas published as JSON Schema files (`schemas/<name>.schema.json`) for harnesses in
 * other languages: a stream event (a log line, an inbox file, the `event` of an event frame),
 * the bus config, the frames of the wire protocol and the resume packet.
 */
export const JSON_SCHEMAS = {
  'bus-event': BusEventSchema,
  'bus-config': BusConfigSchema,
  'client-frame': ClientFrameSchema,
  'server-frame': ServerFrameSchema,
  'resume-packet': ResumePacketSchema,
} as const;

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
    const rendered = z.toJSONSchema(schema, {
      io: 'input',
      unrepresentable: 'any',
      override: (context) => {
        // zod renders `.startsWith('/')` as a non-standard `format: "starts_with"` beside an equivalent pattern.
        if (context.jsonSchema.format === 'starts_with') delete context.jsonSchema.format;
      },
    });
    out[name] = { $id: `https://pit.dev/schemas/${name}.schema.json`, ...rendered };
  }
  return out;
}
