// Writes schemas/<name>.schema.json from the zod schemas. Run by `pnpm build` (and by hand after a schema change).
import { mkdirSync, writeFileSync } from 'node:fs';
import { toJsonSchemas } from '../src/json-schemas.js';

const dir = new URL('../schemas/', import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(toJsonSchemas())) {
  writeFileSync(new URL(`${name}.schema.json`, dir), `${JSON.stringify(schema, null, 2)}\n`);
}
