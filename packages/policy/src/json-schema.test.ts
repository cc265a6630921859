import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { policyConfigJsonSchema } from './json-schema.js';

describe('policyConfigJsonSchema', () => {
  it('equals the shipped schemas/policy-config.schema.json (run scripts/write-schemas.ts after a schema change)', () => {
    const shipped = JSON.parse(
      readFileSync(new URL('../schemas/policy-config.schema.json', import.meta.url), 'utf8'),
    ) as unknown;
    expect(shipped).toEqual(policyConfigJsonSchema());
  });

  it('describes the input side: durations as written, strict tables', () => {
    const schema = policyConfigJsonSchema() as {
      additionalProperties: boolean;
      properties: {
        defaults: { properties: { dead_after: { type: string[]; description: string } } };
      };
    };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.defaults.properties.dead_after.type).toEqual(['number', 'string']);
    expect(schema.properties.defaults.properties.dead_after.description).toMatch(/duration/);
  });
});
