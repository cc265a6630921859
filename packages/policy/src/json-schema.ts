import { z } from 'zod';
import { PolicyConfigSchema } from './policy-config.js';

/**
 * The `[policy]` section of `pit.toml` as JSON Schema (draft 2020-12, the input side: durations
 * as written, modes with their aliases), for editors and other languages. Shipped as
 * `@pit/policy/schemas/policy-config.schema.json`; a test keeps that file equal to this output.
 * Names that must exist (missions, agents, channels) are checked by `validatePolicy` only.
 */
export function policyConfigJsonSchema(): Record<string, unknown> {
  return {
    ...(z.toJSONSchema(PolicyConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >),
    title: 'The [policy] section of pit.toml',
  };
}
