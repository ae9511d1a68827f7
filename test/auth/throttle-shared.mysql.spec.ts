import { Redis } from 'ioredis';
import request from 'supertest';
import { bearer, createUser, loginAs } from '../support/auth';
import { freePort } from '../support/service-process';
import { startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, redisServer, uniqueSuffix, type TestDatabase } from '../support/test-database';
import { expectProblem, metricValue, storedUser } from './helpers';

/** Two instances of the service on one database and one Redis, as behind a load balancer. */
describe('rate limits shared through Redis', () => {
  const prefix = `test-shared-${uniqueSuffix()}`;
  let database: TestDatabase;
  let first: TestApp;
  let second: TestApp;
  let redis: Redis;

  beforeAll(async () => {
    database = await createTestDatabase();
    // TRUST_PROXY=1: each test plays its own client address, so anonymous budgets do not overlap.
    const env = {
      REDIS_PREFIX: prefix,
      THROTTLE_TTL: '60',
      THROTTLE_LIMIT: '4',
      THROTTLE_LOGIN_LIMIT: '3',
      TRUST_PROXY: '1',
    };
    first = await startTestApp({ database, env });
    second = await startTestApp({ database, env });
    redis = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true });
    await redis.connect();
  });

  afterAll(async () => {
    await first?.close();
    await second?.close();
    const keys = [...(await redis.keys(`${prefix}:*`)), ...(await redis.keys(`{${prefix}:*`))];
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await database?.drop();
  });

  it('spends one budget per user, whichever instance serves the request', async () => {
    const user = await loginAs(first, 'admin');
    const statuses: number[] = [];
    for (const testApp of [first, second, first, second]) {
      statuses.push((await request(testApp.server).get('/api/v1/auth/me').set(bearer(user.token))).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200]);
    expectProblem(await request(second.server).get('/api/v1/auth/me').set(bearer(user.token)), 429, 'rate_limited');
    expectProblem(await request(first.server).get('/api/v1/admin/users').set(bearer(user.token)), 429, 'rate_limited');

    // One counter for the user in Redis, under REDIS_PREFIX, on one Redis Cluster slot (hash tag);
    // the storage counts refused requests too (4 admitted + 2 refused).
    const hits = `{${prefix}:throttle:default:user:${user.userId}:default}:hits`;
    expect(await redis.keys(`{${prefix}:throttle:*`)).toEqual(expect.arrayContaining([hits]));
    expect(await redis.get(hits)).toBe('6');
  });

  it('lets exactly the budget through when one user sends many requests at once to both instances', async () => {
    const user = await loginAs(first, 'admin');
    const responses = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        request((i % 2 === 0 ? first : second).server)
          .get('/api/v1/auth/me')
          .set(bearer(user.token)),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(4).fill(200), ...Array(20).fill(429)]);
    for (const r of responses.filter((x) => x.status === 429)) expectProblem(r, 429, 'rate_limited');
  });

  it('spends one login budget per address across instances', async () => {
    const user = await createUser(first, { role: 'operator' });
    const body = { email: user.email, password: 'wrong-password-x' };
    const login = (testApp: TestApp) =>
      request(testApp.server).post('/api/v1/auth/login').set('X-Forwarded-For', '198.51.100.20').send(body);
    expectProblem(await login(first), 401, 'invalid_credentials');
    expectProblem(await login(second), 401, 'invalid_credentials');
    expectProblem(await login(first), 401, 'invalid_credentials');
    expectProblem(await login(second), 429, 'rate_limited');
    expect(await redis.get(`{${prefix}:throttle:login:ip:198.51.100.20:login}:hits`)).toBe('4');
    expect((await storedUser(first, user.userId)).failedLoginCount).toBe(3);
  });

  it('revokes on every instance at once: disabled through one, refused by the other', async () => {
    const admin = await loginAs(second, 'admin');
    const user = await loginAs(first, 'operator');
    expect((await request(second.server).get('/api/v1/auth/me').set(bearer(user.token))).status).toBe(200);
    const res = await request(first.server)
      .patch(`/api/v1/admin/users/${user.userId}`)
      .set(bearer(admin.token))
      .send({ is_active: false });
    expect(res.status).toBe(200);
    const after = await request(second.server)
      .get('/api/v1/auth/me')
      .set('X-Forwarded-For', '198.51.100.30')
      .set(bearer(user.token));
    expectProblem(after, 401, 'invalid_token');
  });
});

describe('rate limits while Redis is unreachable', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    // Nothing listens on this port: every Redis command fails at once.
    const deadPort = await freePort();
    testApp = await startTestApp({
      env: {
        REDIS_PORT: String(deadPort),
        APP_ROLE: 'api',
        THROTTLE_LIMIT: '1',
        THROTTLE_LOGIN_LIMIT: '1',
        LOGIN_MAX_FAILURES: '3',
      },
    });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('lets requests through (fail open) and counts each failure, while the database lockout still holds', async () => {
    const user = await loginAs(testApp, 'operator');
    for (let i = 0; i < 4; i++) {
      expect((await request(testApp.server).get('/api/v1/auth/me').set(bearer(user.token))).status).toBe(200);
    }
    expect(await metricValue(testApp, 'quota_rate_limit_store_errors_total')).toBeGreaterThanOrEqual(4);

    for (let i = 0; i < 3; i++) {
      const res = await request(testApp.server)
        .post('/api/v1/auth/login')
        .send({ email: user.email, password: 'wrong-one-x' });
      expectProblem(res, 401, 'invalid_credentials');
    }
    const locked = await request(testApp.server)
      .post('/api/v1/auth/login')
      .send({ email: user.email, password: user.password });
    expectProblem(locked, 429, 'account_locked');
    expect((await storedUser(testApp, user.userId)).lockedUntil).toBeInstanceOf(Date);
  });
});
