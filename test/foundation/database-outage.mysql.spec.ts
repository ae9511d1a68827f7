import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { freePort, waitFor } from '../support/service-process';
import { TcpProxy } from '../support/tcp-proxy';
import { startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, mysqlServer, type TestDatabase } from '../support/test-database';

/** Longer than every cache a health answer could come from (the migrations check keeps 5 s). */
const PAST_EVERY_CACHE_MS = 6_500;

describe('a database that goes away and comes back', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase('mysql');
    proxy = new TcpProxy(await freePort(), { host: mysqlServer.host, port: mysqlServer.port });
    await proxy.start();
    t = await startTestApp({
      database,
      env: { ...database.env, DB_HOST: '127.0.0.1', DB_PORT: String(proxy.port) },
    });
  });
  afterAll(async () => {
    await t.close();
    await proxy.stop();
    await database.drop();
  });

  const expectNoInternals = (body: unknown) => {
    const text = JSON.stringify(body);
    expect(text).not.toMatch(/ECONNREFUSED|ECONNRESET|ETIMEDOUT|PROTOCOL_|ER_[A-Z_]+|127\.0\.0\.1|localhost|3306/);
    expect(text).not.toContain(String(proxy.port));
  };

  it('turns readiness to 503 within seconds, answers quickly, and recovers without a restart', async () => {
    await request(t.server).get('/api/v1/health/ready').expect(200);
    const { token } = await loginAs(t, 'admin');
    await request(t.server).get('/api/v1/auth/me').set(bearer(token)).expect(200);

    await proxy.stop();
    const downSince = Date.now();
    await waitFor(async () => (await request(t.server).get('/api/v1/health/ready')).status === 503, 5000);
    expect(Date.now() - downSince).toBeLessThan(5000);

    const started = Date.now();
    const ready = await request(t.server).get('/api/v1/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.error.database).toMatchObject({ status: 'down', message: 'unreachable' });
    expect(Date.now() - started).toBeLessThan(2500);

    const seed = await request(t.server).get('/api/v1/health');
    expect(seed.status).toBe(503);
    expect(seed.body).toMatchObject({ status: 'unhealthy', database: 'disconnected', quota_system: 'degraded' });
    expectNoInternals(seed.body);

    // A request that needs the database fails fast with a problem, not a hang or a 500.
    const askedAt = Date.now();
    const me = await request(t.server).get('/api/v1/auth/me').set(bearer(token));
    expect(me.status).toBe(503);
    expect(me.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(me.body.code).toBe('database_unavailable');
    expect(me.headers['retry-after']).toBe('5');
    expect(Date.now() - askedAt).toBeLessThan(4000);

    // Liveness never depends on the database, so the orchestrator does not restart the pod.
    await request(t.server).get('/api/v1/health/live').expect(200);

    // However long the outage lasts, and whichever check's cached answer is served: every public
    // body (probes, the seed's /health, error bodies) says that something failed, never where.
    await new Promise((r) => setTimeout(r, PAST_EVERY_CACHE_MS));
    for (const path of ['/api/v1/health', '/api/v1/health/ready']) {
      const res = await request(t.server).get(path);
      expect(res.status).toBe(503);
      expectNoInternals(res.body);
    }
    const later = await request(t.server).get('/api/v1/health');
    expect(later.body.details.migrations).toMatchObject({
      status: 'down',
      message: 'could not be checked: database unreachable',
    });
    const refused = await request(t.server).get('/api/v1/auth/me').set(bearer(token));
    expect(refused.status).toBe(503);
    expectNoInternals(refused.body);

    await proxy.start();
    await waitFor(async () => (await request(t.server).get('/api/v1/health/ready')).status === 200, 10_000);
    const healthy = await request(t.server).get('/api/v1/health').expect(200);
    await request(t.server).get('/api/v1/auth/me').set(bearer(token)).expect(200);
    expect(healthy.body).toMatchObject({ status: 'healthy', database: 'connected' });
  }, 60_000);
});
