import request from 'supertest';
import { bearer, createUser, loginAs } from '../support/auth';
import { createMember } from '../support/quota-factories';
import { freePort, waitFor } from '../support/service-process';
import { TcpProxy } from '../support/tcp-proxy';
import { startTestApp, type TestApp } from '../support/test-app';
import { redisServer } from '../support/test-database';
import { BULK, waitForOperation } from '../jobs/helpers';

/** Longer than every cache a health answer could come from (the migrations check keeps 5 s). */
const PAST_EVERY_CACHE_MS = 6_500;

/**
 * Redis reached through a loopback proxy the test cuts: the service sees its Redis vanish and
 * come back on the same address, while the shared Redis server keeps running for other suites.
 */
describe('a Redis that goes away and comes back', () => {
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    proxy = new TcpProxy(await freePort(), { host: redisServer.host, port: redisServer.port });
    await proxy.start();
    t = await startTestApp({
      env: { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(proxy.port), JOBS_SWEEP_INTERVAL_MS: '500' },
    });
  });
  afterAll(async () => {
    await proxy.start().catch(() => undefined);
    await t?.close();
    await proxy.stop();
  });

  it('stays ready and keeps serving from the database; /health says degraded, without internals', async () => {
    const admin = (await loginAs(t, 'admin')).token;
    const service = (await loginAs(t, 'service')).token;
    const operator = await createUser(t, { role: 'operator' });
    const member = await createMember(t, { maxQuota: 100 });
    await request(t.server).get('/api/v1/health/ready').expect(200);

    await proxy.stop();
    await waitFor(async () => (await request(t.server).get('/api/v1/health')).body.quota_system === 'degraded', 5000);
    await new Promise((r) => setTimeout(r, PAST_EVERY_CACHE_MS));

    const ready = await request(t.server).get('/api/v1/health/ready');
    expect(ready.status).toBe(200);
    expect(Object.keys(ready.body.details as object).sort()).toEqual(['database', 'lifecycle', 'migrations']);
    const health = await request(t.server).get('/api/v1/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'healthy', database: 'connected', quota_system: 'degraded' });
    expect(health.body.details.redis).toMatchObject({ status: 'down', message: 'unreachable' });
    for (const body of [JSON.stringify(ready.body), JSON.stringify(health.body)]) {
      expect(body).not.toMatch(/ECONNREFUSED|ECONNRESET|127\.0\.0\.1|localhost|6379/);
      expect(body).not.toContain(String(proxy.port));
    }

    // Login (rate limits fail open, lockout lives in the database), consume, adjust and stats.
    await request(t.server)
      .post('/api/v1/auth/login')
      .send({ email: operator.email, password: operator.password })
      .expect(200);
    const consumed = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/consume`)
      .set(bearer(service))
      .send({ amount: 3 });
    expect(consumed.status).toBe(200);
    expect(consumed.body.data.balance).toBe(97);
    await request(t.server)
      .post(`/api/v1/admin/quota/members/${member.id}/adjust`)
      .set(bearer(admin))
      .send({ delta: 1 })
      .expect(200);
    const stats = await request(t.server)
      .get(`/api/v1/admin/quota/stats?membership_type=${member.membershipType}`)
      .set(bearer(admin));
    expect(stats.status).toBe(200);
    // A bulk adjustment is recorded now and runs once Redis is back.
    const accepted = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: member.membershipType, new_quota: 40 });
    expect(accepted.status).toBe(202);

    await proxy.start();
    await waitFor(
      async () => (await request(t.server).get('/api/v1/health')).body.quota_system === 'operational',
      10_000,
    );
    const op = await waitForOperation(t, admin, accepted.body.data.operation_id as string, undefined, 30_000);
    expect(op).toMatchObject({ status: 'completed', total: 1, processed: 1 });
    const balance = await request(t.server).get(`/api/v1/quota/members/${member.id}`).set(bearer(service)).expect(200);
    expect(balance.body.data.balance).toBe(40);
  }, 120_000);
});
