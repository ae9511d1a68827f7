import type { OpenAPIObject, OperationObject, ParameterObject, ResponseObject } from '@nestjs/swagger';
import request from 'supertest';
import { buildOpenApiDocument, serializeDocument } from '../../src/openapi/document';
import { generateOpenApiJson } from '../../src/openapi/generate';
import { listAppRoutes, ROUTE_RULES } from '../support/route-rules';
import { startTestApp, type TestApp } from '../support/test-app';
import { collectRefs, HTTP_METHODS, readCommittedDocument, resolvePointer } from './openapi-check';

/** Routes that are not part of the documented API: probes' siblings outside Nest, the docs themselves. */
const UNDOCUMENTED = /^\/api\/docs(\/|-json$|$)/;

function operations(document: OpenAPIObject): Array<{ method: string; path: string; operation: OperationObject }> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    HTTP_METHODS.flatMap((method) => {
      const operation = (item as Record<string, OperationObject | undefined>)[method];
      return operation ? [{ method, path, operation }] : [];
    }),
  );
}

const BEARER = 'bearer';

const toTemplate = (expressPath: string) => expressPath.replace(/:([A-Za-z_]+)/g, '{$1}');

describe('openapi.json', () => {
  const committed = readCommittedDocument();
  const document = committed.document;

  it('is up to date with the code (if not: run `npm run openapi` and commit openapi.json)', async () => {
    const fresh = await generateOpenApiJson();
    if (fresh !== committed.text) {
      const current = JSON.parse(fresh) as OpenAPIObject;
      const differing = [...new Set([...Object.keys(current.paths), ...Object.keys(document.paths)])].filter(
        (p) => JSON.stringify(current.paths[p]) !== JSON.stringify(document.paths[p]),
      );
      throw new Error(
        `openapi.json is out of date: run \`npm run openapi\` and commit the result.\n` +
          `Paths that differ: ${differing.join(', ') || '(none; components or info differ)'}`,
      );
    }
  });

  it('is an OpenAPI 3 document with a title, version, servers and the bearer scheme', () => {
    expect(document.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(document.info.title).toBe('Quota service API');
    expect(document.info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(document.servers?.length).toBeGreaterThan(0);
    expect(document.components?.securitySchemes?.bearer).toEqual(
      expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }),
    );
    expect(Object.keys(document.paths).length).toBeGreaterThan(0);
  });

  it('has no $ref that does not resolve', () => {
    const dangling = collectRefs(document).filter(({ ref }) => resolvePointer(document, ref) === undefined);
    expect(dangling).toEqual([]);
  });

  it('gives every operation a unique id, its path parameters, a success response with a schema, and problem+json errors', () => {
    const problems: string[] = [];
    const ids = new Set<string>();
    for (const { method, path, operation } of operations(document)) {
      const where = `${method.toUpperCase()} ${path}`;
      if (!operation.operationId || ids.has(operation.operationId))
        problems.push(`${where}: missing or duplicate operationId`);
      ids.add(operation.operationId ?? '');
      if (!operation.summary) problems.push(`${where}: no summary`);
      const declared = ((operation.parameters ?? []) as ParameterObject[])
        .filter((p) => p.in === 'path')
        .map((p) => p.name);
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      if (JSON.stringify(declared.sort()) !== JSON.stringify(inPath.sort())) problems.push(`${where}: path parameters`);
      const responses = Object.entries((operation.responses ?? {}) as Record<string, ResponseObject>);
      const success = responses.filter(([status]) => /^2\d\d$/.test(status));
      if (success.length === 0) problems.push(`${where}: no success response`);
      for (const [status, response] of success) {
        if (status === '204') continue;
        const media = Object.values(response.content ?? {});
        if (media.length === 0 || !media.every((m) => m.schema)) problems.push(`${where} ${status}: no body schema`);
      }
      for (const [status, response] of responses.filter(([s]) => /^[45]\d\d$/.test(s))) {
        // The health endpoints answer 503 with their own body, as the seed's monitors expect.
        if (path.startsWith('/api/v1/health') && status === '503') continue;
        const schema = response.content?.['application/problem+json']?.schema;
        const refs = schema ? collectRefs(schema).map((r) => r.ref) : [];
        if (!refs.includes('#/components/schemas/Problem')) problems.push(`${where} ${status}: not a Problem`);
      }
      if (operation.requestBody && !(operation.responses as Record<string, unknown>)['422']) {
        problems.push(`${where}: a body but no 422`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('keeps request fields with a default optional, in schemas written out under components.requestBodies', () => {
    // openapi-typescript (default options) makes a defaulted field required in any schema it also
    // uses for output, i.e. any object reached through components.schemas.
    const problems: string[] = [];
    const walk = (schema: Record<string, unknown> | undefined, at: string): void => {
      if (!schema) return;
      if (typeof schema.$ref === 'string') {
        const target = resolvePointer(document, schema.$ref) as Record<string, unknown> | undefined;
        if (target?.properties) problems.push(`${at}: refers to ${schema.$ref} instead of writing it out`);
        return;
      }
      const required = (schema.required as string[] | undefined) ?? [];
      for (const [name, property] of Object.entries(
        (schema.properties ?? {}) as Record<string, Record<string, unknown>>,
      )) {
        if ('default' in property && required.includes(name))
          problems.push(`${at}.${name}: has a default but is required`);
        walk(property, `${at}.${name}`);
      }
      if (schema.items) walk(schema.items as Record<string, unknown>, `${at}[]`);
      for (const key of ['allOf', 'anyOf', 'oneOf']) {
        ((schema[key] as Record<string, unknown>[] | undefined) ?? []).forEach((part, i) =>
          walk(part, `${at}.${key}[${i}]`),
        );
      }
    };
    for (const { method, path, operation } of operations(document)) {
      const body = operation.requestBody as { $ref?: string } | undefined;
      if (body && !body.$ref?.startsWith('#/components/requestBodies/')) {
        problems.push(`${method.toUpperCase()} ${path}: request body is not a components.requestBodies reference`);
      }
    }
    for (const [name, body] of Object.entries(document.components?.requestBodies ?? {})) {
      for (const [media, content] of Object.entries(
        (body as { content: Record<string, { schema?: object }> }).content,
      )) {
        walk(content.schema as Record<string, unknown> | undefined, `requestBodies.${name} ${media}`);
      }
    }
    expect(problems).toEqual([]);
    const createConfig = resolvePointer(
      document,
      '#/components/requestBodies/CreateConfig/content/application~1json/schema',
    );
    expect(createConfig).toEqual(expect.objectContaining({ required: ['membership_type', 'max_quota'] }));
  });

  it('declares the bearer scheme and the roles exactly where the access rules need a token', () => {
    const mismatches: string[] = [];
    for (const rule of ROUTE_RULES) {
      const path = toTemplate(rule.path);
      const operation = (document.paths[path] as Record<string, OperationObject | undefined> | undefined)?.[
        rule.method.toLowerCase()
      ];
      if (!operation) continue; // coverage is checked against the live routes below
      const roles = (operation as unknown as Record<string, unknown>)['x-roles'];
      if (rule.allowed === 'public') {
        // `security: []`, or `[{}, ...]` where a token is optional (metrics): anonymous calls are documented.
        const security = operation.security ?? [{ [BEARER]: [] }];
        const anonymous =
          security.length === 0 || security.some((requirement) => Object.keys(requirement).length === 0);
        if (!anonymous || roles !== undefined) mismatches.push(`${rule.method} ${path}: public`);
      } else {
        if (JSON.stringify(operation.security) !== JSON.stringify([{ bearer: [] }])) {
          mismatches.push(`${rule.method} ${path}: no bearer security`);
        }
        if (JSON.stringify(roles) !== JSON.stringify([...rule.allowed].sort())) {
          mismatches.push(`${rule.method} ${path}: x-roles ${JSON.stringify(roles)}`);
        }
        const responses = operation.responses as Record<string, unknown>;
        if (!responses['401'] || !responses['403']) mismatches.push(`${rule.method} ${path}: no 401/403`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});

describe('the running application and its document', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('documents every route it serves, with the right methods, and nothing it does not serve', () => {
    const { document } = readCommittedDocument();
    const served = listAppRoutes(testApp.app)
      .filter((route) => !UNDOCUMENTED.test(route.path))
      .map((route) => `${route.method} ${toTemplate(route.path)}`)
      .sort();
    const documented = operations(document)
      .map(({ method, path }) => `${method.toUpperCase()} ${path}`)
      .sort();
    expect({ undocumented: served.filter((r) => !documented.includes(r)) }).toEqual({ undocumented: [] });
    expect({ notServed: documented.filter((r) => !served.includes(r)) }).toEqual({ notServed: [] });
  });

  it('builds the committed document from the app running in this mode', () => {
    const { text } = readCommittedDocument();
    expect(serializeDocument(buildOpenApiDocument(testApp.app))).toBe(text);
  });

  it('serves Swagger UI at /api/docs and the document at /api/docs-json, without a token', async () => {
    const ui = await request(testApp.server).get('/api/docs');
    expect(ui.status).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    expect(ui.text).toContain('swagger-ui');
    // A browser document: helmet's full set, whose CSP lets the page load its own scripts.
    expect(ui.headers['content-security-policy']).toContain("script-src 'self'");
    expect(ui.headers['cross-origin-opener-policy']).toBe('same-origin');
    const init = await request(testApp.server).get('/api/docs/swagger-ui-init.js');
    expect(init.status).toBe(200);
    const bundle = await request(testApp.server).get('/api/docs/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    const json = await request(testApp.server).get('/api/docs-json');
    expect(json.status).toBe(200);
    expect(json.headers['content-type']).toMatch(/application\/json/);
    const served = json.body as OpenAPIObject;
    expect(Object.keys(served.paths).sort()).toEqual(Object.keys(readCommittedDocument().document.paths).sort());
  });
});

describe('with API_DOCS_ENABLED=false (the production default)', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ env: { API_DOCS_ENABLED: 'false' } });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('serves no docs', async () => {
    for (const path of ['/api/docs', '/api/docs-json', '/api/docs/swagger-ui-init.js']) {
      const res = await request(testApp.server).get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
    expect(listAppRoutes(testApp.app).filter((route) => UNDOCUMENTED.test(route.path))).toEqual([]);
  });
});
