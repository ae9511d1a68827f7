import type { INestApplication } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import {
  DocumentBuilder,
  SwaggerModule,
  type OpenAPIObject,
  type OperationObject,
  type ReferenceObject,
  type ResponseObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IS_PUBLIC_KEY, ROLES_KEY } from '../auth/decorators';
import type { Role } from '../auth/principal';
import { DEFAULT_THROTTLER } from '../throttle/throttle.decorators';
import { API_PROBLEMS_KEY, PROBLEM_CONTENT_TYPE, PROBLEM_MODELS, PROBLEM_SCHEMAS, PROBLEM_STATUS } from './problems';
import { RESPONSE_MODELS } from './schemas';

export const API_TITLE = 'Quota service API';
export const BEARER_SCHEME = 'bearer';
/** @nestjs/throttler's SkipThrottle metadata key for a named throttler. */
const THROTTLER_SKIP_KEY = `THROTTLER:SKIP${DEFAULT_THROTTLER}`;
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const DESCRIPTION = [
  'Per-membership-type quotas with an exact ledger, consumption with idempotency and background bulk work.',
  '',
  'Authenticate with `POST /api/v1/auth/login` and send the token as `Authorization: Bearer <token>`.',
  'Every refusal is `application/problem+json` with a stable `code`; every response carries `X-Request-Id`.',
  'Each secured operation lists the roles that may call it in `x-roles`.',
].join('\n');

export interface OpenApiOptions {
  /** The deployment's public URL (APP_URL), listed first among the servers when set. */
  readonly serverUrl?: string;
}

interface HandlerAccess {
  readonly isPublic: boolean;
  readonly roles: readonly Role[];
  readonly rateLimited: boolean;
  readonly problems: readonly string[];
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

/** Access rules of every controller handler, keyed like the operation ids. */
function collectHandlerAccess(app: INestApplication): Map<string, HandlerAccess> {
  const access = new Map<string, HandlerAccess>();
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
          problems: [
            ...((Reflect.getMetadata(API_PROBLEMS_KEY, controller) as string[] | undefined) ?? []),
            ...((Reflect.getMetadata(API_PROBLEMS_KEY, handler) as string[] | undefined) ?? []),
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

function problemResponse(codes: readonly string[]): ResponseObject {
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
 * non-public route, 429 where the rate limit applies, the body-parsing refusals on every route
 * with a body, and the outage answers. Route-specific codes come from @ApiProblems.
 */
function completeOperation(path: string, operation: OperationObject, access: HandlerAccess | undefined): void {
  const codes: string[] = [...(access?.problems ?? [])];
  const isApi = path.startsWith('/api/');
  if (access && !access.isPublic) {
    operation.security = [{ [BEARER_SCHEME]: [] }];
    Object.assign(operation, { 'x-roles': [...access.roles].sort() });
    codes.push('unauthorized', 'invalid_token', 'forbidden');
  }
  if (isApi && access?.rateLimited !== false) codes.push('rate_limited');
  if (operation.requestBody)
    codes.push('malformed_json', 'payload_too_large', 'unsupported_media_type', 'validation_failed');
  if (isApi) codes.push('database_unavailable');
  codes.push('internal_error');

  const byStatus = new Map<number, string[]>();
  for (const code of codes) {
    const status = PROBLEM_STATUS[code];
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
  health: 'Probes for Kubernetes and the seed monitors; no auth, not rate limited.',
  monitoring: 'Prometheus metrics.',
};

function collectRefs(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) collectRefs(item, into);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string') into.add(child.replace('#/components/schemas/', ''));
      else collectRefs(child, into);
    }
  }
}

/**
 * Request bodies refuse unknown fields (422), so their schemas say so, down to nested bodies
 * (the members of a batch).
 */
function closeRequestSchemas(schemas: Record<string, SchemaObject>, names: Set<string>): void {
  const pending = [...names];
  const seen = new Set<string>();
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    const schema = schemas[name];
    if (seen.has(name) || !schema?.properties) continue;
    seen.add(name);
    schema.additionalProperties = false;
    const nested = new Set<string>();
    collectRefs(schema.properties, nested);
    pending.push(...nested);
  }
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
    );
  if (options.serverUrl) builder.addServer(options.serverUrl, 'This deployment');
  builder.addServer('/', 'The server that serves this document').addServer('http://localhost:3000', 'npm start');
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
    extraModels: [...PROBLEM_MODELS, ...RESPONSE_MODELS],
  });
  const access = collectHandlerAccess(app);
  const tags = new Set<string>();
  const requestSchemas = new Set<string>();
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (!operation) continue;
      completeOperation(path, operation, access.get(operation.operationId ?? ''));
      for (const tag of operation.tags ?? []) tags.add(tag);
      collectRefs(operation.requestBody, requestSchemas);
    }
  }
  document.tags = [...tags].map((name) => ({ name, ...(TAGS[name] ? { description: TAGS[name] } : {}) }));
  const schemas = (document.components?.schemas ?? {}) as Record<string, SchemaObject>;
  closeRequestSchemas(schemas, requestSchemas);
  // Problem bodies may carry extension members (`balance`, `membership_type`, ...).
  if (schemas.Problem) schemas.Problem.additionalProperties = true;
  return normalizeDocument(document);
}
