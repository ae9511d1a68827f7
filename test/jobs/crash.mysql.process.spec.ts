import { Redis } from 'ioredis';
import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { ledgerReport, sql } from '../support/quota-factories';
import { freePort, spawnService, waitFor, waitUntilReady, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, redisServer, uniqueSuffix, type TestDatabase } from '../support/test-database';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { BULK, seedMembers } from './helpers';

const MEMBERS = 20_000;

async function flushPrefix(prefix: string): Promise<void> {
  const redis = new Redis({ host: redisServer.host, port: redisServer.port });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

interface Progress {
  status: string;
  processed: number;
}

describe('worker processes killed in the middle of a 20,000-member operation (MariaDB + Redis, built service)', () => {
  jest.setTimeout(120_000);
  let database: TestDatabase;
  let api: TestApp;
  const prefix = `test-${uniqueSuffix()}`;
  const workers: ServiceProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('mysql');
    api = await startTestApp({ database, env: { APP_ROLE: 'api', REDIS_PREFIX: prefix } });
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await api?.close();
    await flushPrefix(prefix);
    await database?.drop();
  });

  async function startWorker(): Promise<ServiceProcess> {
    const port = await freePort();
    const worker = spawnService({
      ...baseTestEnv(database),
      REDIS_PREFIX: prefix,
      APP_ROLE: 'worker',
      PORT: String(port),
      HOST: '127.0.0.1',
      // Small chunks so the kill lands mid-way; a short lock so a dead worker's job is taken over quickly.
      JOBS_CHUNK_SIZE: '250',
      JOBS_LOCK_DURATION_MS: '2000',
      JOBS_SWEEP_INTERVAL_MS: '1000',
    });
    workers.push(worker);
    await waitUntilReady(worker, 20_000);
    return worker;
  }

  async function progress(operationId: string): Promise<Progress> {
    const [row] = await sql<{ status: string; processed: unknown }>(
      api,
      'SELECT status, processed FROM quota_operations WHERE id = ?',
      [operationId],
    );
    return { status: row.status, processed: Number(row.processed) };
  }

  it('SIGKILL, then SIGTERM (finishes its chunk, exits 0), then a third worker completes it: each member once, ledger exact', async () => {
    const admin = (await loginAs(api, 'admin')).token;
    const { ids, membershipType } = await seedMembers(api, MEMBERS, { balance: 100, maxQuota: 100 });
    const first = await startWorker();

    const res = await request(api.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: membershipType, delta: -30 });
    expect(res.status).toBe(202);
    expect(res.body.data.total).toBe(MEMBERS);
    const operationId: string = res.body.data.operation_id;

    await waitFor(async () => (await progress(operationId)).processed >= 2_000, 30_000, 10);
    first.child.kill('SIGKILL');
    await first.exited();
    const afterKill = await progress(operationId);
    expect(afterKill.status).toBe('running');
    expect(afterKill.processed).toBeLessThan(MEMBERS);

    const second = await startWorker();
    await waitFor(async () => (await progress(operationId)).processed >= afterKill.processed + 2_000, 30_000, 10);
    second.child.kill('SIGTERM');
    expect(await second.exited()).toBe(0);
    const afterTerm = await progress(operationId);
    expect(afterTerm.status).toBe('running');
    expect(afterTerm.processed).toBeLessThan(MEMBERS);
    // A graceful stop ends on a chunk boundary: what is counted is exactly what the ledger holds.
    const written = await sql<{ n: unknown }>(
      api,
      'SELECT COUNT(*) AS n FROM member_quota_history WHERE operation_id = ?',
      [operationId],
    );
    expect(Number(written[0].n)).toBe(afterTerm.processed);
    expect((await ledgerReport(api)).mismatches).toEqual([]);

    await startWorker();
    await waitFor(async () => (await progress(operationId)).status === 'completed', 60_000, 100);
    expect(await progress(operationId)).toEqual({ status: 'completed', processed: MEMBERS });

    const perMember = await sql<{ rows_for_op: unknown; members: unknown }>(
      api,
      `SELECT COUNT(*) AS members, MAX(n) AS rows_for_op FROM (
         SELECT m.id, COUNT(h.id) AS n FROM members m
           LEFT JOIN member_quota_history h ON h.member_id = m.id AND h.operation_id = ?
          WHERE m.membership_type = ? GROUP BY m.id HAVING COUNT(h.id) = 1) x`,
      [operationId, membershipType],
    );
    expect(Number(perMember[0].members)).toBe(MEMBERS);
    expect(Number(perMember[0].rows_for_op)).toBe(1);
    const wrong = await sql<{ n: unknown }>(
      api,
      'SELECT COUNT(*) AS n FROM members WHERE membership_type = ? AND quota_balance <> 70',
      [membershipType],
    );
    expect(Number(wrong[0].n)).toBe(0);
    expect(ids).toHaveLength(MEMBERS);
    expect((await ledgerReport(api)).mismatches).toEqual([]);
  });
});
