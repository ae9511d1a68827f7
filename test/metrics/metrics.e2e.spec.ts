import request from 'supertest';
import { parsePrometheusText, sampleValue } from '../support/prometheus';
import { startTestApp, type TestApp } from '../support/test-app';

describe('GET /metrics', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves Prometheus text format that parses, with process metrics', async () => {
    const res = await request(t.server).get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parsePrometheusText(res.text);
    expect(types.get('http_request_duration_seconds')).toBe('histogram');
    expect(types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(sampleValue(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('counts requests by route template and status', async () => {
    const route = { route: '/api/v1/health/live', method: 'GET', status_code: '200' };
    const before = parsePrometheusText((await request(t.server).get('/metrics')).text).samples;
    const start = sampleValue(before, 'http_request_duration_seconds_count', route) ?? 0;

    for (let i = 0; i < 3; i++) await request(t.server).get('/api/v1/health/live').expect(200);
    await request(t.server).get('/api/v1/no/such/route/123').expect(404);

    const after = parsePrometheusText((await request(t.server).get('/metrics')).text).samples;
    expect(sampleValue(after, 'http_request_duration_seconds_count', route)).toBe(start + 3);
    expect(
      sampleValue(after, 'http_request_duration_seconds_count', { route: 'unmatched', status_code: '404' }),
    ).toBeGreaterThanOrEqual(1);
    // Raw URLs never become labels.
    expect(after.some((s) => s.labels.route?.includes('/no/such/route'))).toBe(false);
  });

  it('reports the database pool on MySQL', async () => {
    const { samples } = parsePrometheusText((await request(t.server).get('/metrics')).text);
    const limit = sampleValue(samples, 'quota_db_pool_connections', { state: 'limit' });
    if (t.database.driver === 'mysql') expect(limit).toBe(10);
    else expect(limit).toBeUndefined();
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: { METRICS_TOKEN: 'scrape-token-1234' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('refuses a scrape without the bearer token', async () => {
    const res = await request(t.server).get('/metrics').expect(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.code).toBe('unauthorized');
    await request(t.server).get('/metrics').set('Authorization', 'Bearer wrong').expect(401);
  });

  it('serves the scrape with the bearer token', async () => {
    const res = await request(t.server).get('/metrics').set('Authorization', 'Bearer scrape-token-1234').expect(200);
    expect(parsePrometheusText(res.text).types.size).toBeGreaterThan(10);
  });
});
