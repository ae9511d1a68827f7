import { Redis } from 'ioredis';
import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { ledgerReport, sql } from '../support/quota-factories';
import { createTestDatabase, redisServer, testDriver, uniqueSuffix, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { BULK, balances, rowsPerMember, seedMembers, waitForOperation } from './helpers';

/** Deletes only this deployment's keys (never FLUSHDB: other suites share the Redis). */
async function flushPrefix(prefix: string): Promise<number> {
  const redis = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true });
  await redis.connect();
  try {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

describe('operations survive a lost queue and process roles', () => {
  let database: TestDatabase;
  const prefix = `test-${uniqueSuffix()}`;
  const env = (role: string) => ({ APP_ROLE: role, REDIS_PREFIX: prefix, JOBS_CHUNK_SIZE: '10', THROTTLE_LIMIT: '0' });

  beforeAll(async () => {
    database = await createTestDatabase(testDriver);
  });

  afterAll(async () => {
    if (testDriver === 'mysql') await flushPrefix(prefix);
    await database?.drop();
  });

  it('an operation accepted by an api process (which never runs jobs) is finished by a worker started later, even after the queue was emptied', async () => {
    const api: TestApp = await startTestApp({ database, env: env('api') });
    let ids: string[];
    let operationId: string;
    let admin: string;
    try {
      admin = (await loginAs(api, 'admin')).token;
      ({ ids } = await seedMembers(api, 35, { balance: 5 }));
      const res = await request(api.server).post(BULK).set(bearer(admin)).send({ member_ids: ids, delta: 4 });
      expect(res.status).toBe(202);
      operationId = res.body.data.operation_id;
      await new Promise((r) => setTimeout(r, 300));
      const [row] = await sql<{ status: string; processed: unknown }>(
        api,
        'SELECT status, processed FROM quota_operations WHERE id = ?',
        [operationId],
      );
      expect(row.status).toBe('queued');
      expect(Number(row.processed)).toBe(0);

      if (testDriver === 'mysql') {
        // The job is in BullMQ under the deployment's hash tag; Redis then loses everything.
        expect(await flushPrefix(prefix)).toBeGreaterThan(0);
      }
    } finally {
      await api.close();
    }

    const worker = await startTestApp({ database, env: env('worker') });
    try {
      // The worker role has no business routes, but probes and metrics answer.
      expect((await request(worker.server).get('/api/v1/health/live')).status).toBe(200);
      expect((await request(worker.server).get('/metrics')).status).toBe(200);
      const refused = await request(worker.server)
        .get(`/api/v1/admin/quota/operations/${operationId}`)
        .set(bearer(admin));
      expect(refused.status).toBe(404);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);

      const deadline = Date.now() + 20_000;
      let status = '';
      while (Date.now() < deadline) {
        const [row] = await sql<{ status: string }>(worker, 'SELECT status FROM quota_operations WHERE id = ?', [
          operationId,
        ]);
        status = row.status;
        if (status === 'completed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe('completed');
      expect(await balances(worker, ids)).toEqual(ids.map(() => 9));
      const perMember = await rowsPerMember(worker, operationId);
      expect(perMember.size).toBe(35);
      expect([...perMember.values()].every((n) => n === 1)).toBe(true);
      expect((await ledgerReport(worker)).mismatches).toEqual([]);
    } finally {
      await worker.close();
    }
  });

  it('an all process serves HTTP and runs the jobs', async () => {
    const all = await startTestApp({ database, env: env('all') });
    try {
      const admin = (await loginAs(all, 'admin')).token;
      const { ids } = await seedMembers(all, 3, { balance: 1 });
      const res = await request(all.server).post(BULK).set(bearer(admin)).send({ member_ids: ids, new_quota: 2 });
      expect(res.status).toBe(202);
      expect(await waitForOperation(all, admin, res.body.data.operation_id)).toMatchObject({ status: 'completed' });
    } finally {
      await all.close();
    }
  });
});
