import { z } from 'zod';
import { ApprovalsConfigSchema } from './approval-broker.js';
import { IssuesConfigSchema } from './issue-tracker.js';
import { NostrConfigSchema } from './nostr-channel.js';
import { TelegramConfigSchema } from './telegram-channel.js';

/** The schemas published as JSON Schema files (`schemas/<name>.schema.json`). */
export const NOTIFY_JSON_SCHEMAS = {
  'approvals-config': ApprovalsConfigSchema,
  'telegram-config': TelegramConfigSchema,
  'nostr-config': NostrConfigSchema,
  'issues-config': IssuesConfigSchema,
} as const;

/** Renders every published schema as JSON Schema (draft 2020-12), keyed by file stem. */
export function toNotifyJsonSchemas(): Record<keyof typeof NOTIFY_JSON_SCHEMAS, object> {
  const out = {} as Record<keyof typeof NOTIFY_JSON_SCHEMAS, object>;
  for (const [name, schema] of Object.entries(NOTIFY_JSON_SCHEMAS) as Array<
    [keyof typeof NOTIFY_JSON_SCHEMAS, z.ZodType]
  >) {
    out[name] = {
      $id: `https://pit.dev/schemas/notify/${name}.schema.json`,
      ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }),
    };
  }
  return out;
}
