import request from 'supertest';
import { LifecycleState } from '../../src/health/lifecycle-state';
import { startTestApp, type TestApp } from '../support/test-app';

describe('health endpoints', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('GET /api/v1/health answers the seed body, with the checks as detail', async () => {
    const res = await request(t.server).get('/api/v1/health').expect(200);
    expect(res.body).toMatchObject({
      status: 'healthy',
      database: 'connected',
      quota_system: 'operational',
    });
    expect(new Date(res.body.timestamp).toISOString()).toBe(res.body.timestamp);
    expect(res.body.details.database.status).toBe('up');
    expect(res.body.details.migrations.status).toBe('up');
    if (t.config.redis) expect(res.body.details.redis.status).toBe('up');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('GET /api/v1/health/live answers without touching dependencies', async () => {
    const res = await request(t.server).get('/api/v1/health/live').expect(200);
    expect(res.body.status).toBe('ok');
    expect(typeof res.body.uptime_seconds).toBe('number');
  });

  it('GET /api/v1/health/ready checks the database, migrations and lifecycle, never Redis', async () => {
    const res = await request(t.server).get('/api/v1/health/ready').expect(200);
    expect(res.body.status).toBe('ok');
    expect(Object.keys(res.body.details).sort()).toEqual(['database', 'lifecycle', 'migrations']);
  });

  it('every response carries X-Request-Id, echoing a valid incoming one and replacing an unsafe one', async () => {
    const generated = await request(t.server).get('/api/v1/health/live');
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);

    const echoed = await request(t.server).get('/api/v1/health/live').set('X-Request-Id', 'trace-42.abc');
    expect(echoed.headers['x-request-id']).toBe('trace-42.abc');

    const unsafe = await request(t.server).get('/api/v1/health/live').set('X-Request-Id', 'bad id\twith spaces');
    expect(unsafe.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('sends the security headers of a JSON API and no X-Powered-By', async () => {
    for (const path of ['/api/v1/health/live', '/api/v1/no-such-route']) {
      const res = await request(t.server).get(path);
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
      // Headers for browser documents stay off JSON answers.
      expect(res.headers['cross-origin-opener-policy']).toBeUndefined();
      expect(res.headers['x-dns-prefetch-control']).toBeUndefined();
    }
  });

  it('turns readiness to 503 as soon as shutdown begins, while liveness stays up', async () => {
    const other = await startTestApp();
    try {
      await request(other.server).get('/api/v1/health/ready').expect(200);
      other.app.get(LifecycleState).beginShutdown();
      const res = await request(other.server).get('/api/v1/health/ready').expect(503);
      expect(res.body.status).toBe('error');
      expect(res.body.error.lifecycle).toEqual({ status: 'down', message: 'shutting down' });
      await request(other.server).get('/api/v1/health/live').expect(200);
      const seed = await request(other.server).get('/api/v1/health').expect(200);
      expect(seed.body.quota_system).toBe('degraded');
    } finally {
      await other.close();
    }
  });
});

describe('health with pending migrations', () => {
  it('reports not ready and unhealthy until migrations are applied', async () => {
    const t = await startTestApp({ env: { DB_MIGRATE_ON_START: 'false' } });
    try {
      const ready = await request(t.server).get('/api/v1/health/ready').expect(503);
      expect(ready.body.error.migrations.status).toBe('down');
      const seed = await request(t.server).get('/api/v1/health').expect(503);
      expect(seed.body).toMatchObject({ status: 'unhealthy', database: 'connected', quota_system: 'degraded' });
    } finally {
      await t.close();
    }
  });
});
