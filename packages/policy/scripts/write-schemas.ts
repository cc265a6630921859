// Writes schemas/policy-config.schema.json from the zod schema. Run by `pnpm build` (and by hand after a schema change).
import { mkdirSync, writeFileSync } from 'node:fs';
import { policyConfigJsonSchema } from '../src/json-schema.js';

const dir = new URL('../schemas/', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(
  new URL('policy-config.schema.json', dir),
  `${JSON.stringify(policyConfigJsonSchema(), null, 2)}\n`,
);
