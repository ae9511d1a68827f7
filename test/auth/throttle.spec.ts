import request from 'supertest';
import { bearer, createUser, loginAs } from '../support/auth';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, metricValue, storedUser } from './helpers';

/**
 * Rate limits on the running service: in memory on the embedded run, in Redis on the MySQL run
 * (each app under its own REDIS_PREFIX).
 */
describe('rate limits', () => {
  const apps: TestApp[] = [];
  async function start(env: Record<string, string>): Promise<TestApp> {
    const testApp = await startTestApp({ env: { THROTTLE_TTL: '60', ...env } });
    apps.push(testApp);
    return testApp;
  }

  afterAll(async () => {
    for (const testApp of apps) await testApp.close();
  });

  describe('the global limit (THROTTLE_LIMIT=3)', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await start({ THROTTLE_LIMIT: '3', THROTTLE_LOGIN_LIMIT: '0' });
    });

    it('counts per authenticated user across every route, then answers 429 with Retry-After', async () => {
      const user = await loginAs(testApp, 'admin');
      const other = await loginAs(testApp, 'admin');
      const limitedBefore = await metricValue(testApp, 'quota_rate_limited_total', { throttler: 'default' });
      expect((await request(testApp.server).get('/api/v1/auth/me').set(bearer(user.token))).status).toBe(200);
      expect((await request(testApp.server).get('/api/v1/admin/users').set(bearer(user.token))).status).toBe(200);
      const third = await request(testApp.server).get('/api/v1/auth/me').set(bearer(user.token));
      expect(third.status).toBe(200);
      expect(third.headers['x-ratelimit-remaining']).toBe('0');

      const refused = await request(testApp.server).get('/api/v1/admin/users').set(bearer(user.token));
      expectProblem(refused, 429, 'rate_limited');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(await metricValue(testApp, 'quota_rate_limited_total', { throttler: 'default' })).toBe(limitedBefore + 1);

      // Same address, another user: its own budget.
      const res = await request(testApp.server).get('/api/v1/auth/me').set(bearer(other.token));
      expect(res.status).toBe(200);
    });

    it('counts anonymous callers per address, bad tokens included', async () => {
      const ip = { 'X-Forwarded-For': 'ignored-without-trust-proxy' };
      for (let i = 0; i < 3; i++) {
        const res = await request(testApp.server).get('/api/v1/admin/users').set(bearer('forged.token.value'));
        expectProblem(res, 401, 'invalid_token');
      }
      expectProblem(await request(testApp.server).get('/api/v1/auth/me').set(ip), 429, 'rate_limited');
    });

    it('never limits the health endpoints', async () => {
      for (let i = 0; i < 10; i++) {
        for (const path of ['/api/v1/health/live', '/api/v1/health/ready', '/api/v1/health']) {
          const res = await request(testApp.server).get(path);
          expect(res.status).toBe(200);
          expect(res.headers['x-ratelimit-limit']).toBeUndefined();
        }
      }
    });
  });

  describe('the login limit (THROTTLE_LOGIN_LIMIT=2)', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await start({ THROTTLE_LIMIT: '100', THROTTLE_LOGIN_LIMIT: '2' });
    });

    it('refuses the third login from one address within the window, even with the right password, without counting it against the account', async () => {
      const user = await createUser(testApp, { role: 'operator' });
      expectProblem(
        await request(testApp.server).post('/api/v1/auth/login').send({ email: user.email, password: 'wrong-one' }),
        401,
        'invalid_credentials',
      );
      expect(
        (await request(testApp.server).post('/api/v1/auth/login').send({ email: user.email, password: user.password }))
          .status,
      ).toBe(200);
      const refused = await request(testApp.server)
        .post('/api/v1/auth/login')
        .send({ email: user.email, password: 'wrong-two' });
      expectProblem(refused, 429, 'rate_limited');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      // The refused attempt never reached the password check: the account's failure count is untouched.
      expect((await storedUser(testApp, user.userId)).failedLoginCount).toBe(0);
      // Other routes still have their own, larger budget.
      const { token } = await loginAs(testApp, 'operator');
      expect((await request(testApp.server).get('/api/v1/auth/me').set(bearer(token))).status).toBe(200);
    });
  });

  describe('X-Forwarded-For with TRUST_PROXY=0', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await start({ THROTTLE_LIMIT: '100', THROTTLE_LOGIN_LIMIT: '3', TRUST_PROXY: '0' });
    });

    it('is ignored: a client cannot reset its limit by inventing addresses', async () => {
      for (let i = 1; i <= 3; i++) {
        const res = await request(testApp.server)
          .post('/api/v1/auth/login')
          .set('X-Forwarded-For', `10.0.0.${i}`)
          .send({ email: `nobody${i}@example.test`, password: 'whatever-1' });
        expectProblem(res, 401, 'invalid_credentials');
      }
      const res = await request(testApp.server)
        .post('/api/v1/auth/login')
        .set('X-Forwarded-For', '10.9.9.9')
        .send({ email: 'nobody@example.test', password: 'whatever-1' });
      expectProblem(res, 429, 'rate_limited');
    });
  });

  describe('X-Forwarded-For with TRUST_PROXY=1', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await start({ THROTTLE_LIMIT: '100', THROTTLE_LOGIN_LIMIT: '3', TRUST_PROXY: '1' });
    });

    const attempt = (forwardedFor: string) =>
      request(testApp.server)
        .post('/api/v1/auth/login')
        .set('X-Forwarded-For', forwardedFor)
        .send({ email: 'nobody@example.test', password: 'whatever-1' });

    it('honours exactly one hop: addresses the client prepends do not give it a new budget', async () => {
      // The trusted proxy appends the address it saw (203.0.113.7); the rest is the client's own claim.
      for (let i = 1; i <= 3; i++) expectProblem(await attempt(`10.0.0.${i}, 203.0.113.7`), 401, 'invalid_credentials');
      expectProblem(await attempt('10.0.0.99, 203.0.113.7'), 429, 'rate_limited');
      expectProblem(await attempt('1.1.1.1, 8.8.8.8, 203.0.113.7'), 429, 'rate_limited');
      // A different client behind the same proxy keeps its own budget.
      expectProblem(await attempt('10.0.0.1, 203.0.113.8'), 401, 'invalid_credentials');
    });
  });

  describe('THROTTLE_LIMIT=0 and THROTTLE_LOGIN_LIMIT=0', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await start({ THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' });
    });

    it('turn the limiters off', async () => {
      const user = await createUser(testApp, { role: 'operator' });
      for (let i = 0; i < 15; i++) {
        const res = await request(testApp.server)
          .post('/api/v1/auth/login')
          .send({ email: user.email, password: user.password });
        expect(res.status).toBe(200);
        expect(res.headers['x-ratelimit-limit']).toBeUndefined();
      }
    });
  });
});
