import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OpenAPIObject, OperationObject, ResponseObject } from '@nestjs/swagger';

/*
 * A small JSON-schema check for the subset of OpenAPI 3.0 schemas this service's document uses.
 * It is stricter than JSON Schema in one way, on purpose: an object schema that lists properties
 * and says nothing about additionalProperties refuses undocumented members, so a field the
 * service starts sending without documenting it fails the conformance suite.
 */

export const OPENAPI_FILE = join(__dirname, '..', '..', 'openapi.json');

export function readCommittedDocument(): { text: string; document: OpenAPIObject } {
  const text = readFileSync(OPENAPI_FILE, 'utf8');
  return { text, document: JSON.parse(text) as OpenAPIObject };
}

type Schema = Record<string, unknown>;

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Resolves a local JSON pointer such as `#/components/schemas/User`; undefined when it does not exist. */
export function resolvePointer(document: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = document;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Every `$ref` value in the document, with where it was found. */
export function collectRefs(value: unknown, at = '#'): Array<{ ref: string; at: string }> {
  if (Array.isArray(value)) return value.flatMap((item, i) => collectRefs(item, `${at}/${i}`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, child]) =>
    key === '$ref' && typeof child === 'string' ? [{ ref: child, at }] : collectRefs(child, `${at}/${key}`),
  );
}

const FORMATS: Record<string, (value: string) => boolean> = {
  'date-time': (v) =>
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v) && !Number.isNaN(Date.parse(v)),
  email: (v) => /^[^\s@]+@[^\s@]+$/.test(v),
};

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Errors of `value` against `schema` (empty when it conforms). */
export function validateSchema(document: unknown, schema: Schema, value: unknown, path = '$'): string[] {
  if (typeof schema.$ref === 'string') {
    const target = resolvePointer(document, schema.$ref);
    if (target === undefined) return [`${path}: unresolvable $ref ${schema.$ref}`];
    return validateSchema(document, target as Schema, value, path);
  }
  const errors: string[] = [];
  if (value === null) {
    return schema.nullable === true || (schema.type === undefined && !hasComposition(schema))
      ? []
      : [`${path}: is null but the schema is not nullable`];
  }
  if (Array.isArray(schema.allOf)) {
    for (const part of schema.allOf as Schema[]) errors.push(...validateSchema(document, part, value, path));
  }
  if (Array.isArray(schema.anyOf)) {
    const branches = (schema.anyOf as Schema[]).map((part) => validateSchema(document, part, value, path));
    if (!branches.some((e) => e.length === 0))
      errors.push(`${path}: matches no anyOf branch (${branches.flat().join('; ')})`);
  }
  if (Array.isArray(schema.oneOf)) {
    const matching = (schema.oneOf as Schema[]).filter(
      (part) => validateSchema(document, part, value, path).length === 0,
    );
    if (matching.length !== 1) errors.push(`${path}: matches ${matching.length} oneOf branches, not exactly one`);
  }
  if (schema.not && validateSchema(document, schema.not as Schema, value, path).length === 0) {
    errors.push(`${path}: matches a schema it must not match`);
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  const actual = typeOf(value);
  if (typeof schema.type === 'string') {
    const ok = schema.type === actual || (schema.type === 'number' && actual === 'integer');
    if (!ok) return [...errors, `${path}: expected ${schema.type}, got ${actual}`];
  }
  if (typeof value === 'string') {
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) {
      errors.push(`${path}: "${value}" does not match ${schema.pattern}`);
    }
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) errors.push(`${path}: too short`);
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) errors.push(`${path}: too long`);
    const format = typeof schema.format === 'string' ? FORMATS[schema.format] : undefined;
    if (format && !format(value)) errors.push(`${path}: "${value}" is not a valid ${String(schema.format)}`);
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
    if (schema.format === 'int32' && (value < -(2 ** 31) || value > 2 ** 31 - 1)) errors.push(`${path}: not an int32`);
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => errors.push(...validateSchema(document, schema.items as Schema, item, `${path}[${i}]`)));
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const name of (schema.required as string[] | undefined) ?? []) {
      if (!Object.hasOwn(object, name)) errors.push(`${path}: missing required member "${name}"`);
    }
    for (const [name, member] of Object.entries(object)) {
      if (properties[name]) {
        errors.push(...validateSchema(document, properties[name], member, `${path}.${name}`));
      } else if (typeof schema.additionalProperties === 'object') {
        errors.push(...validateSchema(document, schema.additionalProperties as Schema, member, `${path}.${name}`));
      } else if (
        schema.additionalProperties === false ||
        (schema.additionalProperties === undefined && schema.properties !== undefined)
      ) {
        errors.push(`${path}: undocumented member "${name}"`);
      }
    }
  }
  return errors;
}

function hasComposition(schema: Schema): boolean {
  return ['allOf', 'anyOf', 'oneOf', '$ref'].some((key) => schema[key] !== undefined);
}

interface CompiledPath {
  readonly template: string;
  readonly pattern: RegExp;
  /** Literal segments: `/members/batch` wins over `/members/{id}`, as in the router. */
  readonly literals: number;
}

const compiledPaths = new WeakMap<OpenAPIObject, CompiledPath[]>();

function compilePaths(document: OpenAPIObject): CompiledPath[] {
  let compiled = compiledPaths.get(document);
  if (!compiled) {
    compiled = Object.keys(document.paths)
      .map((template) => ({
        template,
        pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
        literals: template.split('/').filter((segment) => segment !== '' && !segment.startsWith('{')).length,
      }))
      .sort((a, b) => b.literals - a.literals);
    compiledPaths.set(document, compiled);
  }
  return compiled;
}

/** The operation documented for a concrete request path such as /api/v1/admin/members/12. */
export function findOperation(
  document: OpenAPIObject,
  method: string,
  requestPath: string,
): { template: string; operation: OperationObject } | undefined {
  // The router ignores one trailing slash.
  const path = requestPath.split('?')[0].replace(/(.)\/$/, '$1');
  for (const { template, pattern } of compilePaths(document)) {
    if (!pattern.test(path)) continue;
    const operation = (document.paths[template] as Record<string, OperationObject | undefined>)[method.toLowerCase()];
    if (operation) return { template, operation };
  }
  return undefined;
}

export interface CheckedResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/**
 * Errors of a real response against the document: the status must be documented for the
 * operation, the media type must be the documented one, the body must match its schema, and
 * X-Request-Id must be present.
 */
export function checkResponse(
  document: OpenAPIObject,
  method: string,
  requestPath: string,
  res: CheckedResponse,
): string[] {
  const found = findOperation(document, method, requestPath);
  if (!found) return [`${method} ${requestPath}: no documented operation`];
  const where = `${method.toUpperCase()} ${found.template} → ${res.status}`;
  const responses = found.operation.responses as Record<string, ResponseObject>;
  const response = responses[String(res.status)] ?? responses.default;
  if (!response) return [`${where}: status not documented (documented: ${Object.keys(responses).join(', ')})`];
  const errors: string[] = [];
  if (!res.headers['x-request-id']) errors.push(`${where}: no X-Request-Id header`);
  const contentType = String(res.headers['content-type'] ?? '')
    .split(';')[0]
    .trim();
  if (!response.content) {
    if (contentType !== '' && res.status !== 204) errors.push(`${where}: undocumented body of type ${contentType}`);
    return errors;
  }
  const media = response.content[contentType];
  if (!media) return [...errors, `${where}: content type ${contentType} not documented`];
  if (media.schema)
    errors.push(...validateSchema(document, media.schema as Schema, res.body).map((e) => `${where}: ${e}`));
  return errors;
}
