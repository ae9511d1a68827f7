import { freePort, spawnService, waitForOutput, waitUntilReady, type ServiceProcess } from '../support/service-process';
import {
  startRedisCluster,
  startRedisSentinel,
  type RedisClusterServers,
  type RedisSentinelServers,
} from '../support/redis-topologies';
import { TEST_JWT_SECRET } from '../support/test-app';
import { createTestDatabase, uniqueSuffix, type TestDatabase } from '../support/test-database';

/** The built service, as production runs it, on a Redis Cluster and on Sentinel. */
describe('the built service on each Redis topology', () => {
  jest.setTimeout(90_000);
  let database: TestDatabase | undefined;
  let cluster: RedisClusterServers | undefined;
  let sentinel: RedisSentinelServers | undefined;
  let service: ServiceProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase('mysql');
    [cluster, sentinel] = await Promise.all([startRedisCluster(), startRedisSentinel()]);
  }, 60_000);

  afterEach(async () => {
    if (service && service.child.exitCode === null && service.child.signalCode === null) {
      service.child.kill('SIGKILL');
      await service.exited();
    }
    service = undefined;
  });

  afterAll(async () => {
    try {
      await database?.drop();
    } finally {
      await Promise.all([cluster?.stop(), sentinel?.stop()]);
    }
  });

  it.each([
    ['Cluster', () => cluster!.env, 'background work: Redis Cluster (3 seed nodes) (plain)'],
    ['Sentinel', () => sentinel!.env, 'background work: Redis Sentinel mymaster via 3 sentinels (plain)'],
  ])(
    'Redis %s: names it in the start-up line, reports Redis up, and exits 0 on SIGTERM',
    async (_name, topologyEnv, line) => {
      const port = await freePort();
      service = spawnService({
        ...database!.env,
        ...topologyEnv(),
        APP_ENV: 'testing',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        JWT_SECRET: TEST_JWT_SECRET,
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_PREFIX: `test-topology-${uniqueSuffix()}`,
      });
      await waitUntilReady(service, 20_000);
      await waitForOutput(service, line);

      const res = await fetch(`${service.baseUrl}/api/v1/health`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { quota_system: string; details: { redis?: { status: string } } };
      expect(body.quota_system).toBe('operational');
      expect(body.details.redis).toMatchObject({ status: 'up' });

      service.child.kill('SIGTERM');
      expect(await service.exited()).toBe(0);
      expect(service.output()).not.toMatch(/maxRetriesPerRequest|Unhandled|ERR /);
    },
  );
});
