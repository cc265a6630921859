import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JSON_SCHEMAS, toJsonSchemas } from './json-schemas.js';

const SCHEMAS_DIR = join(fileURLToPath(new URL('..', import.meta.url)), 'schemas');

describe('published JSON Schemas', () => {
  it('are exactly what the zod schemas generate (run `pnpm --filter @pit/mission-bus build` after a schema change)', async () => {
    const rendered = toJsonSchemas();
    expect(Object.keys(rendered).sort()).toEqual(Object.keys(JSON_SCHEMAS).sort());
    for (const [name, schema] of Object.entries(rendered)) {
      const committed = await readFile(join(SCHEMAS_DIR, `${name}.schema.json`), 'utf8');
      expect(committed, `schemas/${name}.schema.json is stale`).toBe(
        `${JSON.stringify(schema, null, 2)}\n`,
      );
      expect(schema).toMatchObject({
        $id: `https://pit.dev/schemas/${name}.schema.json`,
        $schema: 'https://json-schema.org/draft/2020-12/schema',
      });
    }
  });
});
