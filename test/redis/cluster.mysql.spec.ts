import { Cluster } from 'ioredis';
import { loginAs } from '../support/auth';
import { startRedisCluster, type RedisClusterServers } from '../support/redis-topologies';
import { startTestApp, type TestApp } from '../support/test-app';
import { uniqueSuffix } from '../support/test-database';
import {
  expectBulkAdjustment,
  expectRateLimited,
  expectRedisHealthy,
  expectStatsCached,
  keysMatching,
} from './helpers';

/** The service on a real 3-master Redis Cluster started for this suite (REDIS_CLUSTER_NODES). */
describe('Redis Cluster', () => {
  const prefix = `test-cluster-${uniqueSuffix()}`;
  let cluster: RedisClusterServers | undefined;
  let t: TestApp | undefined;
  let limited: TestApp | undefined;
  let client: Cluster | undefined;
  let admin: string;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    const env = { ...cluster.env, REDIS_PREFIX: prefix, JOBS_CHUNK_SIZE: '25', THROTTLE_LIMIT: '0' };
    t = await startTestApp({ env });
    limited = await startTestApp({ env: { ...env, THROTTLE_LIMIT: '3' }, database: t.database });
    client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
    admin = (await loginAs(t, 'admin')).token;
  }, 60_000);

  afterAll(async () => {
    try {
      client?.disconnect();
      await limited?.close();
      await t?.close();
    } finally {
      await cluster?.stop();
    }
  });

  it('reports Redis connected in /api/v1/health', async () => {
    await expectRedisHealthy(t!);
  });

  it('runs a bulk adjustment through BullMQ to completion, its queue keys on one slot', async () => {
    await expectBulkAdjustment(t!, admin, 300);
    // Every key of the queue carries the hash tag {REDIS_PREFIX}: one slot, so one master holds them all.
    const perMaster = await Promise.all(client!.nodes('master').map((node) => node.keys(`{${prefix}}:*`)));
    const holding = perMaster.filter((keys) => keys.length > 0);
    expect(holding).toHaveLength(1);
    expect(holding[0]).toEqual(expect.arrayContaining([`{${prefix}}:quota-operations:meta`]));
  });

  it('answers 429 past THROTTLE_LIMIT, counting in the Cluster', async () => {
    await expectRateLimited(limited!, client!, prefix);
  });

  it('answers X-Cache HIT on the second stats read, the entry stored in the Cluster', async () => {
    await expectStatsCached(t!, admin, client!, prefix);
    // The entries spread over the masters by key; the cache reads and writes each on its own node.
    expect(await keysMatching(client!, `${prefix}:stats::*`)).not.toHaveLength(0);
  });
});
