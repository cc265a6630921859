import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_DIR } from './__fixtures__/helpers.js';
import { CELL_EVENT_KINDS } from './event-kinds.js';
import { JSON_SCHEMAS, toJsonSchemas } from './json-schemas.js';

const SCHEMAS_DIR = join(PACKAGE_DIR, 'schemas');

describe('the published JSON Schemas', () => {
  it('are exactly what the zod schemas generate (run `pnpm --filter @pit/cell-spec build` after a schema change)', async () => {
    const generated = toJsonSchemas();
    const files = (await readdir(SCHEMAS_DIR))
      .filter((name) => name.endsWith('.schema.json'))
      .sort();
    expect(files).toEqual(
      Object.keys(JSON_SCHEMAS)
        .map((name) => `${name}.schema.json`)
        .sort(),
    );
    for (const [name, schema] of Object.entries(generated)) {
      const committed = await readFile(join(SCHEMAS_DIR, `${name}.schema.json`), 'utf8');
      expect(committed, `schemas/${name}.schema.json is stale`).toBe(
        `${JSON.stringify(schema, null, 2)}\n`,
      );
    }
  });

  it('are draft 2020-12 documents with an $id, and use only standard formats', () => {
    for (const [name, schema] of Object.entries(toJsonSchemas())) {
      expect(schema).toMatchObject({
        $id: `https://pit.dev/schemas/${name}.schema.json`,
        $schema: 'https://json-schema.org/draft/2020-12/schema',
      });
      const formats = [...JSON.stringify(schema).matchAll(/"format":"([^"]+)"/g)].map(
        (match) => match[1],
      );
      for (const format of formats) expect(['date-time']).toContain(format);
    }
  });

  it('let an unknown event kind through but not a broken known one', () => {
    const schema = toJsonSchemas()['cell-event'] as {
      anyOf: Array<{ oneOf?: unknown[]; properties?: { event: { not: { enum: string[] } } } }>;
    };
    expect(schema.anyOf[0]!.oneOf).toHaveLength(CELL_EVENT_KINDS.length);
    expect(schema.anyOf[1]!.properties!.event.not.enum).toEqual([...CELL_EVENT_KINDS]);
  });

  it('publish the agent-name pattern the code enforces', () => {
    expect(toJsonSchemas()['agent-name']).toMatchObject({
      type: 'string',
      pattern: '^[a-z0-9][a-z0-9._-]{0,63}$',
    });
  });
});
