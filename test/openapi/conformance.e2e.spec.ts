import request, { type Response } from 'supertest';
import { bearer, createUser, loginAs } from '../support/auth';
import { uniqueExternalId } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { checkResponse, readCommittedDocument, validateSchema } from './openapi-check';

/**
 * The main flows, over HTTP, with every response checked against the committed openapi.json:
 * documented status, media type, body schema (undocumented members fail) and X-Request-Id.
 */
describe('responses conform to openapi.json', () => {
  const { document } = readCommittedDocument();
  let testApp: TestApp;
  let admin: string;
  let service: string;
  const checked: string[] = [];

  const expectConforms = (method: string, path: string, res: Response, status: number) => {
    expect({ path, status: res.status, body: res.body as unknown }).toEqual(expect.objectContaining({ path, status }));
    expect(checkResponse(document, method, path, res)).toEqual([]);
    checked.push(`${method.toUpperCase()} ${path} ${res.status}`);
  };

  beforeAll(async () => {
    testApp = await startTestApp();
    admin = (await loginAs(testApp, 'admin')).token;
    service = (await loginAs(testApp, 'service')).token;
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('login and me', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    const path = '/api/v1/auth/login';
    const ok = await request(testApp.server).post(path).send({ email: user.email, password: user.password });
    expectConforms('post', path, ok, 200);
    const refused = await request(testApp.server).post(path).send({ email: user.email, password: 'not-the-password' });
    expectConforms('post', path, refused, 401);
    const token = (ok.body as { data: { access_token: string } }).data.access_token;
    expectConforms(
      'get',
      '/api/v1/auth/me',
      await request(testApp.server).get('/api/v1/auth/me').set(bearer(token)),
      200,
    );
    expectConforms('get', '/api/v1/auth/me', await request(testApp.server).get('/api/v1/auth/me'), 401);
  });

  it('configs, members, consume, refusals and the ledger', async () => {
    const server = testApp.server;
    // The seed's own request body.
    const created = await request(server)
      .post('/api/v1/admin/quota/configs')
      .set(bearer(admin))
      .send({ membership_type: 'regular', max_quota: 50 });
    expectConforms('post', '/api/v1/admin/quota/configs', created, 201);
    const configId = (created.body as { data: { id: string } }).data.id;
    const duplicate = await request(server)
      .post('/api/v1/admin/quota/configs')
      .set(bearer(admin))
      .send({ membership_type: 'regular', max_quota: 50 });
    expectConforms('post', '/api/v1/admin/quota/configs', duplicate, 409);
    const invalid = await request(server)
      .post('/api/v1/admin/quota/configs')
      .set(bearer(admin))
      .send({ membership_type: 'Not A Slug', max_quota: -1, surprise: true });
    expectConforms('post', '/api/v1/admin/quota/configs', invalid, 422);
    expect((invalid.body as { errors: unknown[] }).errors.length).toBeGreaterThan(0);
    const malformed = await request(server)
      .post('/api/v1/admin/quota/configs')
      .set(bearer(admin))
      .set('Content-Type', 'application/json')
      .send('{"membership_type":');
    expectConforms('post', '/api/v1/admin/quota/configs', malformed, 400);
    expectConforms(
      'get',
      '/api/v1/admin/quota/configs',
      await request(server).get('/api/v1/admin/quota/configs').set(bearer(admin)),
      200,
    );
    expectConforms(
      'get',
      `/api/v1/admin/quota/configs/${configId}`,
      await request(server).get(`/api/v1/admin/quota/configs/${configId}`).set(bearer(admin)),
      200,
    );

    const member = await request(server)
      .post('/api/v1/admin/members')
      .set(bearer(admin))
      .send({ external_id: uniqueExternalId(), membership_type: 'regular' });
    expectConforms('post', '/api/v1/admin/members', member, 201);
    const memberId = (member.body as { data: { id: string } }).data.id;
    expectConforms(
      'get',
      '/api/v1/admin/members',
      await request(server).get('/api/v1/admin/members?per_page=5').set(bearer(admin)),
      200,
    );
    expectConforms(
      'get',
      '/api/v1/admin/members/987654321',
      await request(server).get('/api/v1/admin/members/987654321').set(bearer(admin)),
      404,
    );

    const balancePath = `/api/v1/quota/members/${memberId}`;
    expectConforms('get', balancePath, await request(server).get(balancePath).set(bearer(service)), 200);
    const consumePath = `${balancePath}/consume`;
    const consumed = await request(server)
      .post(consumePath)
      .set(bearer(service))
      .set('Idempotency-Key', 'conformance-1')
      .send({ amount: 20, note: 'first' });
    expectConforms('post', consumePath, consumed, 200);
    expect(consumed.headers['x-quota-remaining']).toBe('30');
    const replay = await request(server)
      .post(consumePath)
      .set(bearer(service))
      .set('Idempotency-Key', 'conformance-1')
      .send({ amount: 20, note: 'first' });
    expectConforms('post', consumePath, replay, 200);
    expect(replay.headers['idempotent-replayed']).toBe('true');

    const insufficient = await request(server).post(consumePath).set(bearer(service)).send({ amount: 31 });
    expectConforms('post', consumePath, insufficient, 409);
    expect(insufficient.body).toEqual(expect.objectContaining({ code: 'insufficient_quota', balance: 30 }));
    // The specific schema, not only the generic Problem branch of the anyOf.
    expect(
      validateSchema(document, { $ref: '#/components/schemas/InsufficientQuotaProblem' }, insufficient.body),
    ).toEqual([]);
    const badAmount = await request(server).post(consumePath).set(bearer(service)).send({ amount: 0 });
    expectConforms('post', consumePath, badAmount, 422);
    expectConforms('post', consumePath, await request(server).post(consumePath).send({ amount: 1 }), 401);
    const operator = (await loginAs(testApp, 'operator')).token;
    expectConforms(
      'post',
      consumePath,
      await request(server).post(consumePath).set(bearer(operator)).send({ amount: 1 }),
      403,
    );

    const refundPath = `${balancePath}/refund`;
    expectConforms(
      'post',
      refundPath,
      await request(server).post(refundPath).set(bearer(service)).send({ amount: 5 }),
      200,
    );
    const adjustPath = `/api/v1/admin/quota/members/${memberId}/adjust`;
    expectConforms(
      'post',
      adjustPath,
      await request(server).post(adjustPath).set(bearer(admin)).send({ delta: -1 }),
      200,
    );
    expectConforms(
      'post',
      adjustPath,
      await request(server).post(adjustPath).set(bearer(admin)).send({ new_quota: 10, delta: 2 }),
      422,
    );

    const historyPath = `/api/v1/admin/quota/history?member_id=${memberId}&limit=2`;
    const page = await request(server).get(historyPath).set(bearer(admin));
    expectConforms('get', historyPath, page, 200);
    const cursor = (page.body as { meta: { next_cursor: string | null } }).meta.next_cursor;
    expect(cursor).not.toBeNull();
    const next = `/api/v1/admin/quota/history?member_id=${memberId}&limit=2&cursor=${cursor}`;
    expectConforms('get', next, await request(server).get(next).set(bearer(admin)), 200);
    expectConforms(
      'get',
      '/api/v1/admin/quota/history?bogus=1',
      await request(server).get('/api/v1/admin/quota/history?bogus=1').set(bearer(admin)),
      422,
    );
    const integrity = `/api/v1/admin/quota/integrity?member_id=${memberId}`;
    expectConforms('get', integrity, await request(server).get(integrity).set(bearer(admin)), 200);

    const inUse = await request(server).delete(`/api/v1/admin/quota/configs/${configId}`).set(bearer(admin));
    expectConforms('delete', `/api/v1/admin/quota/configs/${configId}`, inUse, 409);
  });

  it('users', async () => {
    const created = await request(testApp.server)
      .post('/api/v1/admin/users')
      .set(bearer(admin))
      .send({ email: `${uniqueExternalId('op')}@example.test`, password: 'a-long-enough-password', role: 'operator' });
    expectConforms('post', '/api/v1/admin/users', created, 201);
    expectConforms(
      'get',
      '/api/v1/admin/users',
      await request(testApp.server).get('/api/v1/admin/users').set(bearer(admin)),
      200,
    );
  });

  it('health probes', async () => {
    for (const path of ['/api/v1/health', '/api/v1/health/live', '/api/v1/health/ready']) {
      expectConforms('get', path, await request(testApp.server).get(path), 200);
    }
  });

  it('an unknown route under the prefix is not documented, and still answers problem+json', async () => {
    const res = await request(testApp.server).get('/api/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(validateSchema(document, { $ref: '#/components/schemas/Problem' }, res.body)).toEqual([]);
  });
});
