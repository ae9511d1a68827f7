import type { OperationObject, ParameterObject } from '@nestjs/swagger';
import request, { type Test } from 'supertest';
import { ROLES, type Role } from '../../src/auth/principal';
import { bearer, loginAs } from '../support/auth';
import { startTestApp, type TestApp } from '../support/test-app';
import { HTTP_METHODS, readCommittedDocument } from './openapi-check';

/**
 * The refusals every route shares, sent to every documented operation: no token, a role that is
 * not allowed, an unknown query parameter, a malformed, non-JSON, oversized or wrongly shaped
 * body, an unusable Idempotency-Key. The suite-wide response check (test/support/test-app.ts)
 * fails any answer the operation does not document; the expectations here pin the status the
 * contract gives each refusal.
 */

const UNKNOWN_ID = '987654321';
const BODY_LIMIT_BYTES = 1024;
const BULK_BODY_LIMIT_BYTES = 4 * 1024 * 1024;
const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

interface DocumentedOperation {
  readonly method: string;
  readonly template: string;
  readonly path: string;
  readonly roles: readonly Role[] | undefined;
  readonly hasBody: boolean;
  readonly takesIdempotencyKey: boolean;
}

function documentedOperations(): DocumentedOperation[] {
  const { document } = readCommittedDocument();
  return Object.entries(document.paths).flatMap(([template, item]) =>
    HTTP_METHODS.flatMap((method) => {
      const operation = (item as Record<string, OperationObject | undefined>)[method];
      if (!operation) return [];
      const parameters = (operation.parameters ?? []) as ParameterObject[];
      return [
        {
          method,
          template,
          path: template.replace(/\{[^}]+\}/g, UNKNOWN_ID),
          roles: (operation as { 'x-roles'?: Role[] })['x-roles'],
          hasBody: operation.requestBody !== undefined,
          takesIdempotencyKey: parameters.some((p) => p.in === 'header' && p.name === 'Idempotency-Key'),
        },
      ];
    }),
  );
}

const OPERATIONS = documentedOperations();
const name = (op: DocumentedOperation) => `${op.method.toUpperCase()} ${op.template}`;

describe('every documented operation answers the shared refusals as documented', () => {
  let testApp: TestApp;
  const tokens = new Map<Role, string>();

  beforeAll(async () => {
    // Small body limit so that 413 is cheap to provoke; no rate limits (they have their own suite).
    testApp = await startTestApp({
      env: { BODY_LIMIT: `${BODY_LIMIT_BYTES}`, THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' },
    });
    for (const role of ROLES) tokens.set(role, (await loginAs(testApp, role)).token);
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const call = (op: DocumentedOperation, path = op.path): Test => {
    const agent = request(testApp.server);
    switch (op.method) {
      case 'get':
        return agent.get(path);
      case 'post':
        return agent.post(path);
      case 'put':
        return agent.put(path);
      case 'patch':
        return agent.patch(path);
      case 'delete':
        return agent.delete(path);
      default:
        throw new Error(`no probe for method ${op.method}`);
    }
  };
  /** The token of a role the operation allows (none for public operations). */
  const allowed = (op: DocumentedOperation, req: Test): Test =>
    op.roles?.length ? req.set(bearer(tokens.get(op.roles[0]) ?? '')) : req;

  const secured = OPERATIONS.filter((op) => op.roles !== undefined);
  it.each(secured.map((op) => [name(op), op] as const))('%s: 401 without a token', async (_name, op) => {
    expect((await call(op)).status).toBe(401);
  });

  const withForbiddenRole = secured.filter((op) => ROLES.some((role) => !op.roles?.includes(role)));
  it.each(withForbiddenRole.map((op) => [name(op), op] as const))(
    '%s: 403 for a role it does not allow',
    async (_name, op) => {
      const role = ROLES.find((r) => !op.roles?.includes(r));
      expect((await call(op).set(bearer(tokens.get(role ?? 'member') ?? ''))).status).toBe(403);
    },
  );

  it.each(OPERATIONS.map((op) => [name(op), op] as const))(
    '%s: an unknown query parameter gets a documented answer, never a 5xx',
    async (_name, op) => {
      const res = await allowed(op, call(op, `${op.path}?unexpected_parameter=1`));
      expect(res.status).toBeLessThan(500);
    },
  );

  const parsing = OPERATIONS.filter((op) => BODY_METHODS.has(op.method));
  it.each(parsing.map((op) => [name(op), op] as const))(
    '%s: 400 for malformed JSON, 415 for another media type, 413 over the body limit',
    async (_name, op) => {
      const malformed = await allowed(op, call(op)).set('Content-Type', 'application/json').send('{"amount":');
      expect({ malformed: malformed.status }).toEqual({ malformed: 400 });
      const xml = await allowed(op, call(op)).set('Content-Type', 'application/xml').send('<amount>1</amount>');
      expect({ xml: xml.status }).toEqual({ xml: 415 });
      const limit = op.template.endsWith('/bulk-adjust') ? BULK_BODY_LIMIT_BYTES : BODY_LIMIT_BYTES;
      const oversized = await allowed(op, call(op))
        .set('Content-Type', 'application/json')
        .send(`{"note":"${'x'.repeat(limit)}"}`);
      expect({ oversized: oversized.status }).toEqual({ oversized: 413 });
    },
  );

  const withBody = OPERATIONS.filter((op) => op.hasBody);
  it.each(withBody.map((op) => [name(op), op] as const))('%s: 422 for an unknown body field', async (_name, op) => {
    const res = await allowed(op, call(op)).send({ unexpected_field: true });
    expect(res.status).toBe(422);
  });

  /** A body each idempotent operation accepts, so that only the key is wrong. */
  const VALID_BODIES: Record<string, object> = {
    consume: { amount: 1 },
    refund: { amount: 1 },
    adjust: { delta: 1 },
    'bulk-adjust': { member_ids: [UNKNOWN_ID], delta: 1 },
    holds: { amount: 1 },
    commit: {},
    release: {},
  };
  const idempotent = OPERATIONS.filter((op) => op.takesIdempotencyKey);
  it.each(idempotent.map((op) => [name(op), op] as const))(
    '%s: 422 for an Idempotency-Key longer than 255 characters',
    async (_name, op) => {
      const body = VALID_BODIES[op.template.split('/').pop() ?? ''];
      expect(body).toBeDefined();
      const res = await allowed(op, call(op)).set('Idempotency-Key', 'k'.repeat(256)).send(body);
      expect(res.status).toBe(422);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'Idempotency-Key' })]);
    },
  );
});
