import type { INestApplication } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { ModulesContainer } from '@nestjs/core';
import {
  DocumentBuilder,
  SwaggerModule,
  type OpenAPIObject,
  type OperationObject,
  type ParameterObject,
  type ReferenceObject,
  type RequestBodyObject,
  type ResponseObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IS_PUBLIC_KEY, ROLES_KEY } from '../auth/decorators';
import type { Role } from '../auth/principal';
import { NoQuery } from '../common/validation';
import { ALLOWED_WHILE_READ_ONLY_KEY, isWriteMethod } from '../maintenance/read-only';
import { DEFAULT_THROTTLER } from '../throttle/throttle.decorators';
import { METRICS_TOKEN_SCHEME } from './decorators';
import { errorStatus, type ErrorCode } from '../common/error-codes';
import { API_PROBLEMS_KEY, PROBLEM_CONTENT_TYPE, PROBLEM_MODELS, PROBLEM_SCHEMAS } from './problems';
import { RESPONSE_MODELS } from './schemas';
import { AUTH_RESPONSE_MODELS } from '../auth/auth.schemas';
import { HOLD_RESPONSE_MODELS } from '../quota/holds.schemas';
import { QUOTA_RESPONSE_MODELS } from '../quota/quota.schemas';
import { WEBHOOK_RESPONSE_MODELS } from '../webhooks/webhooks.schemas';

export const API_TITLE = 'Quota service API';
export const BEARER_SCHEME = 'bearer';
/** @nestjs/throttler's SkipThrottle metadata key for a named throttler. */
const THROTTLER_SKIP_KEY = `THROTTLER:SKIP${DEFAULT_THROTTLER}`;
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
/**
 * Fastify reads a body on these methods whatever the route takes, so a malformed, oversized or
 * non-JSON body is refused (400, 413, 415) on every one of them, before any guard runs.
 */
const BODY_PARSING_METHODS = new Set<string>(['post', 'put', 'patch', 'delete']);

const DESCRIPTION = [
  'Per-membership-type quotas with an exact ledger, consumption with idempotency and background bulk work.',
  '',
  'Authenticate with `POST /api/v1/auth/login` and send the token as `Authorization: Bearer <token>`.',
  'Every refusal is `application/problem+json` with a stable `code`; every response carries `X-Request-Id`.',
  'Each secured operation lists the roles that may call it in `x-roles`; public operations declare `security: []`.',
  'Request fields with a `default` are optional: the service applies the default when the field is absent.',
].join('\n');

export interface OpenApiOptions {
  /** The deployment's public URL (APP_URL), listed first among the servers when set. */
  readonly serverUrl?: string;
}

interface HandlerAccess {
  readonly isPublic: boolean;
  readonly roles: readonly Role[];
  readonly rateLimited: boolean;
  /** The handler refuses any query parameter (@NoQuery), so `?x=1` is a 422. */
  readonly refusesQuery: boolean;
  readonly problems: readonly ErrorCode[];
  /** Marked @AllowedWhileReadOnly: a write that a write freeze does not refuse. */
  readonly allowedWhileReadOnly: boolean;
}

/** The version in package.json, found by walking up from this file (src/ under jest, dist/src/ when built). */
export function packageVersion(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (!existsSync(candidate)) continue;
    const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'quota-service' && pkg.version) return pkg.version;
  }
  return '0.0.0';
}

interface RouteArgument {
  readonly factory?: unknown;
}

/**
 * The function behind @NoQuery(), read from a probe class: Nest records it with every parameter
 * the decorator is put on, which is how a handler that refuses query parameters is recognised.
 */
function noQueryFactory(): unknown {
  class Probe {
    handler(): void {}
  }
  NoQuery()(Probe.prototype, 'handler', 0);
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, Probe, 'handler') ?? {}) as Record<string, RouteArgument>;
  return Object.values(args)[0]?.factory;
}

/** Access rules of every controller handler, keyed like the operation ids. */
function collectHandlerAccess(app: INestApplication): Map<string, HandlerAccess> {
  const access = new Map<string, HandlerAccess>();
  const refusesQuery = noQueryFactory();
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as (new (...args: never[]) => unknown) | null;
      if (typeof controller !== 'function') continue;
      const prototype = controller.prototype as Record<string, unknown>;
      for (const key of Object.getOwnPropertyNames(prototype)) {
        const handler = prototype[key];
        if (key === 'constructor' || typeof handler !== 'function') continue;
        const read = <T>(metadataKey: string): T | undefined =>
          (Reflect.getMetadata(metadataKey, handler) ?? Reflect.getMetadata(metadataKey, controller)) as T | undefined;
        access.set(operationId(controller.name, key), {
          isPublic: read<boolean>(IS_PUBLIC_KEY) === true,
          roles: read<Role[]>(ROLES_KEY) ?? [],
          rateLimited: read<boolean>(THROTTLER_SKIP_KEY) !== true,
          allowedWhileReadOnly: read<boolean>(ALLOWED_WHILE_READ_ONLY_KEY) === true,
          refusesQuery: Object.values(
            (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, key) ?? {}) as Record<string, RouteArgument>,
          ).some((arg) => refusesQuery !== undefined && arg.factory === refusesQuery),
          problems: [
            ...((Reflect.getMetadata(API_PROBLEMS_KEY, controller) as ErrorCode[] | undefined) ?? []),
            ...((Reflect.getMetadata(API_PROBLEMS_KEY, handler) as ErrorCode[] | undefined) ?? []),
          ],
        });
      }
    }
  }
  return access;
}

function operationId(controllerName: string, methodName: string): string {
  return `${controllerName}_${methodName}`;
}

function problemResponse(codes: readonly ErrorCode[]): ResponseObject {
  const sorted = [...new Set(codes)].sort();
  const special = sorted.filter((code) => PROBLEM_SCHEMAS[code] !== undefined).map((code) => PROBLEM_SCHEMAS[code]);
  const problem = { $ref: '#/components/schemas/Problem' };
  const schema: SchemaObject | ReferenceObject =
    special.length === 0
      ? problem
      : { anyOf: [...special.map((name) => ({ $ref: `#/components/schemas/${name}` })), problem] };
  return {
    description: `Problem: ${sorted.map((code) => `\`${code}\``).join(', ')}.`,
    content: { [PROBLEM_CONTENT_TYPE]: { schema } },
  };
}

const RETRY_AFTER = { $ref: '#/components/headers/Retry-After' };
const REQUEST_ID = { $ref: '#/components/headers/X-Request-Id' };

/**
 * Adds what every operation of a kind shares, from the same metadata the access guard reads, so
 * the document cannot disagree with the guard: the bearer requirement and 401/403 on every
 * non-public route (`security: []` on public ones), 429 where the rate limit applies, the
 * body-parsing refusals on every method Fastify reads a body for, 422 wherever a query, header or
 * body is validated, 404 for unknown ids, and the outage answers. Route-specific codes come from
 * @ApiProblems.
 */
function completeOperation(
  method: string,
  path: string,
  operation: OperationObject,
  access: HandlerAccess | undefined,
): void {
  const codes: ErrorCode[] = [...(access?.problems ?? [])];
  const isApi = path.startsWith('/api/');
  // The probes answer outages with their own 503 body (or, for liveness, never depend on the database).
  const isProbe = (operation.tags ?? []).includes('health');
  if (access?.isPublic) {
    // Anonymous calls are allowed; a scheme the handler declares itself (metrics) becomes optional.
    const declared = operation.security ?? [];
    operation.security = declared.length === 0 ? [] : [{}, ...declared];
  } else if (access) {
    operation.security = [{ [BEARER_SCHEME]: [] }];
    Object.assign(operation, { 'x-roles': [...access.roles].sort() });
    codes.push('unauthorized', 'invalid_token', 'forbidden');
  }
  if (isApi && access?.rateLimited !== false) codes.push('rate_limited');
  if (BODY_PARSING_METHODS.has(method)) {
    codes.push('malformed_json', 'bad_request', 'payload_too_large', 'unsupported_media_type');
  }
  const parameters = (operation.parameters ?? []) as ParameterObject[];
  const validatesInput =
    operation.requestBody !== undefined ||
    access?.refusesQuery === true ||
    parameters.some((parameter) => parameter.in === 'query' || parameter.in === 'header');
  if (validatesInput) codes.push('validation_failed');
  // Every path parameter is an id; one that is malformed or unknown is a 404.
  if (parameters.some((parameter) => parameter.in === 'path')) codes.push('not_found');
  if (isApi && !isProbe) codes.push('database_unavailable');
  // The access guard's rule: every write (by method) is refused during a write freeze unless allowed.
  if (access && isWriteMethod(method) && !access.allowedWhileReadOnly) codes.push('read_only');
  codes.push('internal_error');

  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = errorStatus(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses = operation.responses as Record<string, ResponseObject>;
  for (const [status, statusCodes] of byStatus) {
    // An endpoint that documents its own body for a status (health's 503) keeps it.
    if (responses[String(status)] !== undefined) continue;
    responses[String(status)] = problemResponse(statusCodes);
    if (status === 429 || status === 503 || statusCodes.includes('idempotency_key_in_use')) {
      responses[String(status)].headers = { 'Retry-After': RETRY_AFTER };
    }
  }
  for (const response of Object.values(responses)) {
    response.headers = { ...response.headers, 'X-Request-Id': REQUEST_ID };
  }
}

const TAGS: Record<string, string> = {
  auth: 'Log in and see who you are.',
  users: 'Admin: API users and their roles.',
  'quota configs': 'Admin: the quota of each membership type.',
  members: 'Admin and operator: members and their membership types.',
  ledger: 'Admin and operator: manual adjustments, the quota history and the integrity check.',
  consumption: 'Services and members: balances, consume and refund.',
  holds: 'Reserve units now, commit or release them later; unsettled holds give their units back at expires_at.',
  operations: 'Admin and operator: bulk adjustments and other background operations, their progress and cancellation.',
  analytics: 'Admin and operator: quota stats per membership type and detected usage anomalies.',
  webhooks: 'Admin and operator: webhook subscriptions, their signing secrets, delivery logs and redeliveries.',
  health: 'Probes for Kubernetes and the seed monitors; no auth, not rate limited.',
  monitoring: 'Prometheus metrics.',
  maintenance: 'Admin: the write freeze (maintenance mode) that stops every change on every instance.',
};

const SCHEMA_REF_PREFIX = '#/components/schemas/';

function collectSchemaRefs(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) collectSchemaRefs(item, into);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith(SCHEMA_REF_PREFIX)) {
        into.add(child.slice(SCHEMA_REF_PREFIX.length));
      } else {
        collectSchemaRefs(child, into);
      }
    }
  }
}

const isReference = (value: unknown): value is ReferenceObject =>
  value !== null && typeof value === 'object' && typeof (value as { $ref?: unknown }).$ref === 'string';

interface InlineContext {
  readonly schemas: Record<string, SchemaObject>;
  /** Every schema copied in so far. */
  readonly inlined: Set<string>;
  /** The schemas being copied right now, so a recursive one stays a reference. */
  readonly stack: Set<string>;
}

/**
 * A request schema with every object it refers to copied in, each closed
 * (`additionalProperties: false`: the service refuses unknown fields with a 422). Named enums
 * stay references.
 */
function inlineRequestSchema(
  schema: SchemaObject | ReferenceObject,
  context: InlineContext,
): SchemaObject | ReferenceObject {
  if (isReference(schema)) {
    const name = schema.$ref.startsWith(SCHEMA_REF_PREFIX) ? schema.$ref.slice(SCHEMA_REF_PREFIX.length) : '';
    const target = context.schemas[name];
    if (!target?.properties || context.stack.has(name)) return schema;
    context.inlined.add(name);
    context.stack.add(name);
    const copy = inlineRequestSchema(target, context);
    context.stack.delete(name);
    return copy;
  }
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties') {
      copy.properties = Object.fromEntries(
        Object.entries(value as Record<string, SchemaObject | ReferenceObject>).map(([property, child]) => [
          property,
          inlineRequestSchema(child, context),
        ]),
      );
    } else if (key === 'items' || key === 'not') {
      copy[key] = inlineRequestSchema(value as SchemaObject | ReferenceObject, context);
    } else if (key === 'allOf' || key === 'anyOf' || key === 'oneOf') {
      copy[key] = (value as (SchemaObject | ReferenceObject)[]).map((part) => inlineRequestSchema(part, context));
    } else {
      copy[key] = value;
    }
  }
  if (copy.properties !== undefined) copy.additionalProperties = false;
  return copy;
}

/**
 * Request bodies become named `components.requestBodies` with their schema written out, instead
 * of references to `components.schemas`. Generators treat a schema they meet under a request
 * body as input: a field with a `default` stays optional. The same schema reached through
 * `components.schemas` is also used for output, where openapi-typescript (with its default
 * options) makes every defaulted field required, and a generated client would then refuse the
 * seed's own `{"membership_type":"regular","max_quota":50}`.
 */
function moveRequestBodies(document: OpenAPIObject, operations: OperationObject[]): void {
  const schemas = (document.components?.schemas ?? {}) as Record<string, SchemaObject>;
  const requestBodies: Record<string, RequestBodyObject> = {};
  const context: InlineContext = { schemas, inlined: new Set(), stack: new Set() };
  for (const operation of operations) {
    const body = operation.requestBody;
    if (body === undefined || isReference(body)) continue;
    const content: RequestBodyObject['content'] = {};
    let name: string | undefined;
    for (const [mediaType, media] of Object.entries(body.content)) {
      const schema = media.schema;
      if (schema === undefined) continue;
      if (isReference(schema) && schema.$ref.startsWith(SCHEMA_REF_PREFIX)) {
        const schemaName = schema.$ref.slice(SCHEMA_REF_PREFIX.length);
        name ??= schemaName.replace(/Dto$/, '');
      }
      content[mediaType] = { ...media, schema: inlineRequestSchema(schema, context) };
    }
    if (name === undefined) {
      operation.requestBody = { ...body, content };
      continue;
    }
    requestBodies[name] ??= { ...body, required: body.required ?? true, content };
    operation.requestBody = { $ref: `#/components/requestBodies/${name}` };
  }
  document.components = { ...document.components, requestBodies };
  // A copied schema that nothing refers to any more leaves components.schemas (a batch's
  // member goes once the batch has gone, hence the repetition).
  for (let removed = true; removed;) {
    removed = false;
    const used = new Set<string>();
    collectSchemaRefs(document.paths, used);
    collectSchemaRefs(document.components, used);
    for (const name of context.inlined) {
      if (schemas[name] !== undefined && !used.has(name)) {
        delete schemas[name];
        removed = true;
      }
    }
  }
}

/**
 * @nestjs/swagger wraps a reference to a named enum in a one-element `allOf` so that it can carry
 * siblings (`default`, `description`), which OpenAPI 3.0 does not allow beside `$ref`. Without
 * siblings the wrapper is noise, and is replaced by the reference; with them the enum is written
 * out in place, so linters and generators see one plain schema.
 */
function simplifyEnumWrappers(value: unknown, schemas: Record<string, SchemaObject>): unknown {
  if (Array.isArray(value)) return value.map((item) => simplifyEnumWrappers(item, schemas));
  if (value === null || typeof value !== 'object') return value;
  const node = Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([key, child]) => [key, simplifyEnumWrappers(child, schemas)]),
  );
  const allOf = node.allOf;
  if (!Array.isArray(allOf) || allOf.length !== 1 || !isReference(allOf[0])) return node;
  const { allOf: _wrapper, ...siblings } = node;
  if (Object.keys(siblings).length === 0) return allOf[0];
  const ref = allOf[0].$ref;
  const target = ref.startsWith(SCHEMA_REF_PREFIX) ? schemas[ref.slice(SCHEMA_REF_PREFIX.length)] : undefined;
  if (!target?.enum) return node;
  // The enum's own description is about the type, not about this field.
  const { description: _enumDescription, ...enumSchema } = target;
  return { ...enumSchema, ...siblings };
}

function sortKeys(value: unknown, keepOrder = false): unknown {
  if (Array.isArray(value)) return value.map((item) => sortKeys(item));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (!keepOrder) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Schema properties keep their declared order (id first, timestamps last): it is stable and reads better.
  return Object.fromEntries(entries.map(([key, child]) => [key, sortKeys(child, key === 'properties')]));
}

/**
 * A deterministic rendering: objects sorted by key (except schema properties, which keep their
 * declared order), tags sorted by name, and the top-level members in the usual order.
 */
export function normalizeDocument(document: OpenAPIObject): OpenAPIObject {
  const sorted = sortKeys(document) as OpenAPIObject;
  const { openapi, info, servers, tags, paths, components, ...rest } = sorted;
  return {
    openapi,
    info,
    servers,
    tags: [...(tags ?? [])].sort((a, b) => a.name.localeCompare(b.name)),
    paths,
    components,
    ...rest,
  };
}

export function serializeDocument(document: OpenAPIObject): string {
  return `${JSON.stringify(normalizeDocument(document), null, 2)}\n`;
}

/** The OpenAPI 3 document of the running application's HTTP API. */
export function buildOpenApiDocument(app: INestApplication, options: OpenApiOptions = {}): OpenAPIObject {
  const builder = new DocumentBuilder()
    .setTitle(API_TITLE)
    .setDescription(DESCRIPTION)
    .setVersion(packageVersion())
    .setLicense('MIT', 'https://opensource.org/licenses/MIT')
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'An access token from POST /api/v1/auth/login.',
      },
      BEARER_SCHEME,
    )
    .addSecurity(METRICS_TOKEN_SCHEME, {
      type: 'http',
      scheme: 'bearer',
      description: 'METRICS_TOKEN, needed for GET /metrics only when the deployment sets one.',
    });
  if (options.serverUrl) builder.addServer(options.serverUrl, 'This deployment');
  builder.addServer('/', 'The server that serves this document');
  const config = builder.build();
  config.components = {
    ...config.components,
    headers: {
      'X-Request-Id': {
        description: 'Identifies the request in logs; a valid incoming X-Request-Id is echoed.',
        schema: { type: 'string' },
      },
      'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } },
    },
  };

  const document = SwaggerModule.createDocument(app, config, {
    operationIdFactory: operationId,
    extraModels: [
      ...PROBLEM_MODELS,
      ...AUTH_RESPONSE_MODELS,
      ...QUOTA_RESPONSE_MODELS,
      ...HOLD_RESPONSE_MODELS,
      ...WEBHOOK_RESPONSE_MODELS,
      ...RESPONSE_MODELS,
    ],
  });
  const access = collectHandlerAccess(app);
  const tags = new Set<string>();
  const operations: OperationObject[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (!operation) continue;
      completeOperation(method, path, operation, access.get(operation.operationId ?? ''));
      for (const tag of operation.tags ?? []) tags.add(tag);
      operations.push(operation);
    }
  }
  document.tags = [...tags].map((name) => ({ name, ...(TAGS[name] ? { description: TAGS[name] } : {}) }));
  moveRequestBodies(document, operations);
  const schemas = (document.components?.schemas ?? {}) as Record<string, SchemaObject>;
  // Problem bodies may carry extension members (`balance`, `membership_type`, ...).
  if (schemas.Problem) schemas.Problem.additionalProperties = true;
  const usedBefore = new Set<string>();
  collectSchemaRefs(document, usedBefore);
  document.paths = simplifyEnumWrappers(document.paths, schemas) as OpenAPIObject['paths'];
  document.components = simplifyEnumWrappers(document.components, schemas) as OpenAPIObject['components'];
  // An enum that is now written out everywhere it was used is no longer a component.
  const usedAfter = new Set<string>();
  collectSchemaRefs(document, usedAfter);
  const simplified = (document.components?.schemas ?? {}) as Record<string, SchemaObject>;
  for (const name of usedBefore) if (!usedAfter.has(name)) delete simplified[name];
  return normalizeDocument(document);
}
