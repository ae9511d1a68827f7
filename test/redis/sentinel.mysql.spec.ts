import { Redis } from 'ioredis';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { STATS } from '../analytics/helpers';
import { BULK, balances, getOperation, rowsPerMember, seedMembers, waitForOperation } from '../jobs/helpers';
import { bearer, loginAs } from '../support/auth';
import { createMember, ledgerReport } from '../support/quota-factories';
import { startRedisSentinel, type RedisSentinelServers } from '../support/redis-topologies';
import { waitFor } from '../support/service-process';
import { startTestApp, type TestApp } from '../support/test-app';
import { uniqueSuffix } from '../support/test-database';
import { expectBulkAdjustment, expectRateLimited, expectRedisHealthy, expectStatsCached } from './helpers';

/**
 * The service on a Sentinel-managed master started for this suite (REDIS_SENTINELS +
 * REDIS_SENTINEL_NAME): one master, one replica, three sentinels, and a failover mid-operation.
 */
describe('Redis Sentinel', () => {
  const prefix = `test-sentinel-${uniqueSuffix()}`;
  let sentinel: RedisSentinelServers | undefined;
  let t: TestApp | undefined;
  let limited: TestApp | undefined;
  /** Follows the master through the sentinels, as the service does. */
  let client: Redis | undefined;
  let admin: string;

  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    // Small chunks make the operation long enough to fail over in the middle of it; a short job
    // lock makes the worker renew it in Redis every second throughout.
    const env = {
      ...sentinel.env,
      REDIS_PREFIX: prefix,
      JOBS_CHUNK_SIZE: '10',
      JOBS_LOCK_DURATION_MS: '2000',
      THROTTLE_LIMIT: '0',
    };
    t = await startTestApp({ env });
    limited = await startTestApp({ env: { ...env, THROTTLE_LIMIT: '3' }, database: t.database });
    client = new Redis({
      sentinels: sentinel.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
      name: sentinel.name,
    });
    admin = (await loginAs(t, 'admin')).token;
  }, 60_000);

  afterAll(async () => {
    try {
      client?.disconnect();
      await limited?.close();
      await t?.close();
    } finally {
      await sentinel?.stop();
    }
  });

  it('reports Redis connected in /api/v1/health', async () => {
    await expectRedisHealthy(t!);
  });

  it('runs a bulk adjustment through BullMQ to completion', async () => {
    await expectBulkAdjustment(t!, admin, 200);
    expect(await client!.exists(`{${prefix}}:quota-operations:meta`)).toBe(1);
  });

  it('answers 429 past THROTTLE_LIMIT, counting on the master', async () => {
    await expectRateLimited(limited!, client!, prefix);
  });

  it('answers X-Cache HIT on the second stats read, the entry stored on the master', async () => {
    await expectStatsCached(t!, admin, client!, prefix);
  });

  it('finishes an operation across a failover, each member once, and follows the new master', async () => {
    const count = 3000;
    const { ids } = await seedMembers(t!, count, { balance: 10, maxQuota: 100 });
    let id = '';
    let newMaster: number | undefined;
    // A row lock held on a member half-way through stops the operation at that chunk (the lock
    // wait is MariaDB's, 50 s) until the failover is over, so the failover lands mid-operation.
    const blocker = t!.app.get(DataSource).createQueryRunner();
    await blocker.connect();
    await blocker.startTransaction();
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await blocker.rollbackTransaction();
      await blocker.release();
    };
    try {
      await blocker.query('SELECT id FROM members WHERE id = ? FOR UPDATE', [ids[count / 2]]);
      const res = await request(t!.server).post(BULK).set(bearer(admin)).send({ member_ids: ids, new_quota: 64 });
      expect(res.status).toBe(202);
      id = res.body.data.operation_id as string;
      await waitFor(async () => (await getOperation(t!, admin, id)).processed > 0, 20_000, 20);

      const { from, to } = await sentinel!.failover();
      newMaster = to;
      expect(to).not.toBe(from);
      const during = await getOperation(t!, admin, id);
      expect(during).toMatchObject({ status: 'running' });
      expect(during.processed).toBeLessThan(count);
    } finally {
      await release();
    }

    const op = await waitForOperation(t!, admin, id, undefined, 90_000);
    expect(op).toMatchObject({ status: 'completed', total: count, processed: count, changed: count, failed: 0 });
    expect(await balances(t!, ids)).toEqual(ids.map(() => 64));
    const perMember = await rowsPerMember(t!, op.id);
    expect(perMember.size).toBe(count);
    expect([...perMember.values()].every((n) => n === 1)).toBe(true);
    expect((await ledgerReport(t!)).mismatches).toEqual([]);

    // Writes after the failover land on the new master: a stats entry, read back directly there.
    if (newMaster === undefined) throw new Error('no failover happened');
    const master = new Redis({ host: '127.0.0.1', port: newMaster, lazyConnect: true });
    try {
      await master.connect();
      expect(await master.info('replication')).toContain('role:master');
      const member = await createMember(t!, { maxQuota: 9 });
      const url = `${STATS}?membership_type=${member.membershipType}`;
      // The cache's fail-fast client may still be reconnecting through the sentinels: a miss
      // without a stored entry then, so ask until the entry is there.
      await waitFor(
        async () => {
          await request(t!.server).get(url).set(bearer(admin)).expect(200);
          return (await master.keys(`${prefix}:stats::*${member.membershipType}*`)).length === 1;
        },
        15_000,
        200,
      );
      const hit = await request(t!.server).get(url).set(bearer(admin));
      expect(hit.headers['x-cache']).toBe('HIT');
      // The rate limiter's: a fresh user's budget counted on the new master (asked again while the
      // limiter's client may still be reconnecting, when it fails open).
      await waitFor(
        async () => {
          const user = await loginAs(limited!, 'operator');
          const statuses: number[] = [];
          for (let i = 0; i < 4; i++) {
            statuses.push((await request(limited!.server).get('/api/v1/auth/me').set(bearer(user.token))).status);
          }
          const hits = await master.get(`{${prefix}:throttle:default:user:${user.userId}:default}:hits`);
          return statuses.join() === '200,200,200,429' && hits === '4';
        },
        15_000,
        200,
      );
      // And BullMQ's: another operation runs to completion on the new master.
      await expectBulkAdjustment(t!, admin, 30);
      expect(await master.exists(`{${prefix}}:quota-operations:meta`)).toBe(1);
    } finally {
      master.disconnect();
    }
    await waitFor(
      async () => (await request(t!.server).get('/api/v1/health')).body.details?.redis?.status === 'up',
      15_000,
      200,
    );
    await expectRedisHealthy(t!);
  }, 120_000);
});
