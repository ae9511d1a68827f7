import request from 'supertest';
import { startTestApp, type TestApp } from '../support/test-app';

/** A worker process (APP_ROLE=worker) answers probes and scrapes only. */
describe('HTTP surface of a worker process', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: { APP_ROLE: 'worker' } });
  });

  afterAll(async () => {
    await t.close();
  });

  it('answers the health probes and /metrics', async () => {
    const live = await request(t.server).get('/api/v1/health/live');
    expect(live.status).toBe(200);
    expect(live.body).toMatchObject({ status: 'ok' });
    expect(live.headers['x-request-id']).toEqual(expect.any(String));
    const metrics = await request(t.server).get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('# TYPE http_request_duration_seconds histogram');
  });

  it.each([
    ['GET', '/api/v1/admin/quota/configs'],
    ['POST', '/api/v1/auth/login'],
    ['POST', '/api/v1/quota/members/1/consume'],
    ['GET', '/api/docs'],
  ])('%s %s is 404 problem+json', async (method, path) => {
    const res = await request(t.server)[method === 'GET' ? 'get' : 'post'](path).send({});
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 404, code: 'not_found' });
    expect(res.body.request_id).toBe(res.headers['x-request-id']);
  });
});
