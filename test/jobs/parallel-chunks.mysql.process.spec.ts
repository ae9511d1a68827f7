import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import request from 'supertest';
import { OPERATIONS_QUEUE } from '../../src/jobs/jobs.constants';
import { bearer, loginAs } from '../support/auth';
import { ledgerReport, sql } from '../support/quota-factories';
import { freePort, spawnService, waitFor, waitUntilReady, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, redisServer, uniqueSuffix, type TestDatabase } from '../support/test-database';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { BULK, OPERATIONS, seedMembers } from './helpers';

const MEMBERS = 30_000;
const CHUNK = 250;

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

/** A worker's resident memory, from the kernel's view of the process. */
function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) / 1024;
}

/**
 * One operation worked by two worker processes at once (MariaDB + Redis, built service): both take
 * its chunks, a SIGKILLed one leaves nothing half-done or done twice, and a cancel stops both.
 */
describe('two worker processes on one 30,000-member operation (MariaDB + Redis, built service)', () => {
  jest.setTimeout(150_000);
  let database: TestDatabase;
  let api: TestApp;
  let admin: string;
  let queue: Queue;
  const prefix = `test-${uniqueSuffix()}`;
  const workers: ServiceProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('mysql');
    api = await startTestApp({ database, env: { APP_ROLE: 'api', REDIS_PREFIX: prefix, THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(api, 'admin')).token;
    queue = new Queue(OPERATIONS_QUEUE, {
      connection: { host: redisServer.host, port: redisServer.port },
      prefix: `{${prefix}}`,
    });
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await queue?.close();
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
      JOBS_CHUNK_SIZE: String(CHUNK),
      JOBS_CONCURRENCY: '2',
      // A short lease and job lock, so that a killed worker's chunk and job are taken over quickly.
      JOBS_LOCK_DURATION_MS: '2000',
      JOBS_SWEEP_INTERVAL_MS: '1000',
    });
    workers.push(worker);
    await waitUntilReady(worker, 20_000);
    return worker;
  }

  /** The operation as an admin sees it. */
  async function operation(id: string): Promise<{ status: string; processed: number; total: number }> {
    const res = await request(api.server).get(`${OPERATIONS}/${id}`).set(bearer(admin));
    expect(res.status).toBe(200);
    return res.body.data as { status: string; processed: number; total: number };
  }

  /** Done chunks per worker process id (claimed_by is host:pid:claim). */
  async function doneByPid(id: string): Promise<Map<number, number>> {
    const rows = await sql<{ claimed_by: string; n: unknown }>(
      api,
      "SELECT claimed_by, COUNT(*) AS n FROM quota_operation_chunks WHERE operation_id = ? AND status = 'done' GROUP BY claimed_by",
      [id],
    );
    const byPid = new Map<number, number>();
    for (const row of rows) {
      const pid = Number(row.claimed_by.split(':')[1]);
      byPid.set(pid, (byPid.get(pid) ?? 0) + Number(row.n));
    }
    return byPid;
  }

  async function historyRows(id: string): Promise<number> {
    const [row] = await sql<{ n: unknown }>(
      api,
      'SELECT COUNT(*) AS n FROM member_quota_history WHERE operation_id = ?',
      [id],
    );
    return Number(row.n);
  }

  async function startBulk(membershipType: string): Promise<string> {
    const res = await request(api.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: membershipType, delta: -30 });
    expect(res.status).toBe(202);
    expect(res.body.data.total).toBe(MEMBERS);
    return res.body.data.operation_id as string;
  }

  it('both workers take chunks; one is SIGKILLed; the operation completes with every member changed exactly once', async () => {
    const { membershipType } = await seedMembers(api, MEMBERS, { balance: 100, maxQuota: 100 });
    const a = await startWorker();
    const b = await startWorker();
    const id = await startBulk(membershipType);

    // Both processes have committed chunks of the operation, which is still under way.
    await waitFor(async () => (await doneByPid(id)).size === 2, 60_000, 20);
    const during = await operation(id);
    expect(during.status).toBe('running');
    expect(during.processed).toBeGreaterThan(0);
    expect(during.processed).toBeLessThan(MEMBERS);
    expect(during.processed % CHUNK).toBe(0);

    a.child.kill('SIGKILL');
    await a.exited();
    const afterKill = await operation(id);
    expect(afterKill.status).toBe('running');
    expect(afterKill.processed).toBeLessThan(MEMBERS);
    const doneByA = (await doneByPid(id)).get(a.child.pid!) ?? 0;
    expect(doneByA).toBeGreaterThan(0);

    let peakRss = 0;
    await waitFor(
      async () => {
        peakRss = Math.max(peakRss, rssMb(b.child.pid!));
        return (await operation(id)).status === 'completed';
      },
      90_000,
      100,
    );
    expect(await operation(id)).toMatchObject({ status: 'completed', total: MEMBERS, processed: MEMBERS });
    expect(peakRss).toBeGreaterThan(0);
    expect(peakRss).toBeLessThan(300);

    // The killed worker's chunks stay counted once; the survivor did the rest, the lapsed one included.
    const byPid = await doneByPid(id);
    expect(byPid.get(a.child.pid!)).toBe(doneByA);
    expect(byPid.get(b.child.pid!)).toBeGreaterThan(0);
    const [chunkSums] = await sql<{ pending: unknown; processed: unknown }>(
      api,
      "SELECT SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending, SUM(processed) AS processed FROM quota_operation_chunks WHERE operation_id = ?",
      [id],
    );
    expect({ pending: Number(chunkSums.pending), processed: Number(chunkSums.processed) }).toEqual({
      pending: 0,
      processed: MEMBERS,
    });

    const [perMember] = await sql<{ members: unknown; once: unknown; wrong: unknown }>(
      api,
      `SELECT COUNT(*) AS members, SUM(CASE WHEN n = 1 THEN 1 ELSE 0 END) AS once,
              SUM(CASE WHEN quota_balance <> 70 THEN 1 ELSE 0 END) AS wrong
         FROM (SELECT m.id, m.quota_balance, COUNT(h.id) AS n FROM members m
                 LEFT JOIN member_quota_history h ON h.member_id = m.id AND h.operation_id = ?
                WHERE m.membership_type = ? GROUP BY m.id, m.quota_balance) x`,
      [id, membershipType],
    );
    expect({
      members: Number(perMember.members),
      once: Number(perMember.once),
      wrong: Number(perMember.wrong),
    }).toEqual({ members: MEMBERS, once: MEMBERS, wrong: 0 });
    expect(await historyRows(id)).toBe(MEMBERS);
    expect((await ledgerReport(api)).mismatches).toEqual([]);
  });

  it('cancel while two workers run stops both: processed < total, and nothing is written after', async () => {
    const { membershipType } = await seedMembers(api, MEMBERS, { balance: 100, maxQuota: 100 });
    while (workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).length < 2) {
      await startWorker();
    }
    const id = await startBulk(membershipType);
    await waitFor(async () => (await doneByPid(id)).size === 2, 60_000, 20);

    const cancel = await request(api.server).post(`${OPERATIONS}/${id}/cancel`).set(bearer(admin));
    expect(cancel.status).toBe(202);
    await waitFor(async () => (await operation(id)).status === 'cancelled', 30_000, 50);
    // Every run of the operation has ended (each stops between chunks).
    await waitFor(async () => (await queue.getActiveCount()) + (await queue.getWaitingCount()) === 0, 30_000, 100);

    const ended = await operation(id);
    expect(ended.processed).toBeGreaterThan(0);
    expect(ended.processed).toBeLessThan(MEMBERS);
    expect(await historyRows(id)).toBe(ended.processed);
    const [balances] = await sql<{ changed: unknown; untouched: unknown }>(
      api,
      `SELECT SUM(CASE WHEN quota_balance = 70 THEN 1 ELSE 0 END) AS changed,
              SUM(CASE WHEN quota_balance = 100 THEN 1 ELSE 0 END) AS untouched
         FROM members WHERE membership_type = ?`,
      [membershipType],
    );
    expect({ changed: Number(balances.changed), untouched: Number(balances.untouched) }).toEqual({
      changed: ended.processed,
      untouched: MEMBERS - ended.processed,
    });
    expect(await operation(id)).toMatchObject({ status: 'cancelled', processed: ended.processed });
    expect((await ledgerReport(api)).mismatches).toEqual([]);
  });
});
