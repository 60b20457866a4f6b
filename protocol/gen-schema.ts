/** Writes protocol/aip.schema.json from the zod schemas. Run with `npm run schema` (tsx protocol/gen-schema.ts). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderJsonSchema } from './json-schema.js';

const target = fileURLToPath(new URL('./aip.schema.json', import.meta.url));
writeFileSync(target, renderJsonSchema());
process.stdout.write(`wrote ${target}\n`);
