import { CACHE_MANAGER } from '@nestjs/cache-manager';
import type { Cache } from 'cache-manager';
import { Redis } from 'ioredis';
import request from 'supertest';
import { RedisKeyvStore } from '../../src/redis/redis-keyv-store';
import { bearer, loginAs } from '../support/auth';
import { createMember } from '../support/quota-factories';
import { freePort } from '../support/service-process';
import { redisServer } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { ANALYTICS_TEST_ENV, STATS } from './helpers';

describe('stats cache in Redis, shared by every instance', () => {
  let a: TestApp;
  let b: TestApp;
  let redis: Redis;
  let prefix: string;

  beforeAll(async () => {
    prefix = `test-stats-${process.pid}-${Date.now()}`;
    const env = { ...ANALYTICS_TEST_ENV, REDIS_PREFIX: prefix };
    a = await startTestApp({ env });
    b = await startTestApp({ env, database: a.database });
    redis = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true });
  });
  afterAll(async () => {
    redis?.disconnect();
    await b?.close();
    await a?.close();
  });

  it('stores entries in Redis under REDIS_PREFIX, and another instance reads them', async () => {
    const admin = (await loginAs(a, 'admin')).token;
    const member = await createMember(a, { maxQuota: 30 });
    const url = `${STATS}?membership_type=${member.membershipType}`;
    const first = await request(a.server).get(url).set(bearer(admin)).expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const keys = await redis.keys(`${prefix}:stats::*`);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toContain(member.membershipType);

    const fromOther = await request(b.server).get(url).set(bearer(admin)).expect(200);
    expect(fromOther.headers['x-cache']).toBe('HIT');
    expect(fromOther.body.meta.generated_at).toBe(first.body.meta.generated_at);
    expect(fromOther.body.data).toEqual(first.body.data);
  });
});

describe('stats while Redis is unreachable', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: ANALYTICS_TEST_ENV });
  });
  afterAll(async () => {
    await t?.close();
  });

  /**
   * The app's other Redis users (queues, rate limits) are left alone: only the stats cache's own
   * connection is pointed at a port where nothing listens, then given back. The shared Redis server
   * is never stopped.
   */
  it('computes from the database instead of failing, quickly, and caches again once Redis is back', async () => {
    const admin = (await loginAs(t, 'admin')).token;
    const member = await createMember(t, { maxQuota: 12 });
    const url = `${STATS}?membership_type=${member.membershipType}`;
    const store = (t.app.get<Cache>(CACHE_MANAGER).stores[0] as unknown as { store: RedisKeyvStore }).store;
    const working = store.client;
    const deadPort = await freePort();
    const dead = new Redis({ host: '127.0.0.1', port: deadPort, enableOfflineQueue: false, retryStrategy: () => null });
    dead.on('error', () => undefined);
    store.client = dead;
    try {
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const res = await request(t.server).get(url).set(bearer(admin));
        expect(res.status).toBe(200);
        expect(res.headers['x-cache']).toBe('MISS');
        expect(res.body.meta.cached).toBe(false);
        expect(res.body.data.membership_types).toEqual([
          expect.objectContaining({ membership_type: member.membershipType, members: 1, total_balance: 12 }),
        ]);
        expect(Date.now() - started).toBeLessThan(1500);
      }
    } finally {
      store.client = working;
      dead.disconnect();
    }
    expect((await request(t.server).get(url).set(bearer(admin))).headers['x-cache']).toBe('MISS');
    expect((await request(t.server).get(url).set(bearer(admin))).headers['x-cache']).toBe('HIT');
  });
});
