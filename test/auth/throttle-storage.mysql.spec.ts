import { Redis } from 'ioredis';
import pino from 'pino';
import { Registry } from 'prom-client';
import { FailOpenRedisThrottlerStorage } from '../../src/throttle/fail-open-throttler.storage';
import { freePort } from '../support/service-process';
import { redisServer, uniqueSuffix } from '../support/test-database';

/** The Redis throttler store on its own, against the real Redis: exact counts, shared limits, fail open. */
describe('FailOpenRedisThrottlerStorage', () => {
  const prefix = `test-throttle-store-${uniqueSuffix()}:`;
  let client: Redis;
  let storage: FailOpenRedisThrottlerStorage;

  beforeAll(async () => {
    client = new Redis({ host: redisServer.host, port: redisServer.port });
    storage = new FailOpenRedisThrottlerStorage(client, prefix, pino({ level: 'silent' }), new Registry());
    await storage.onApplicationBootstrap();
  });
  afterAll(async () => {
    const keys = await client.keys(`{${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  it('counts hits that arrive together exactly, and blocks past the limit for the block duration', async () => {
    const records = await Promise.all(
      Array.from({ length: 10 }, () => storage.increment('default:user:1', 60_000, 4, 30_000, 'default')),
    );
    expect(records.map((r) => r.totalHits).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(
      records
        .filter((r) => !r.isBlocked)
        .map((r) => r.totalHits)
        .sort(),
    ).toEqual([1, 2, 3, 4]);
    const blocked = records.filter((r) => r.isBlocked);
    expect(blocked).toHaveLength(6);
    for (const r of blocked) {
      expect(r.timeToBlockExpire).toBeGreaterThan(25);
      expect(r.timeToBlockExpire).toBeLessThanOrEqual(30);
    }
    expect(records.find((r) => r.totalHits === 1)).toMatchObject({ timeToExpire: 60, timeToBlockExpire: 0 });
    expect(Number(await client.pttl(`{${prefix}default:user:1:default}:blocked`))).toBeGreaterThan(25_000);

    const later = await storage.increment('default:user:1', 60_000, 4, 30_000, 'default');
    expect(later.isBlocked).toBe(true);
  });

  it('never admits more than the limit across two instances hitting at the same time, and wastes none of it', async () => {
    const other = new FailOpenRedisThrottlerStorage(client, prefix, pino({ level: 'silent' }), new Registry());
    const admitted: number[] = [];
    await Promise.all(
      [storage, other].map(async (store) => {
        for (let i = 0; i < 150; i++) {
          const record = await store.increment('default:user:5', 60_000, 200, 30_000, 'default');
          if (!record.isBlocked) admitted.push(record.totalHits);
        }
      }),
    );
    expect(admitted).toHaveLength(200);
    expect(new Set(admitted).size).toBe(200);
    expect(Math.max(...admitted)).toBe(200);
  });

  it('keeps keys apart', async () => {
    const [a, b] = await Promise.all([
      storage.increment('default:user:2', 60_000, 1, 1_000, 'default'),
      storage.increment('default:user:3', 60_000, 1, 1_000, 'default'),
    ]);
    expect([a.totalHits, a.isBlocked, b.totalHits, b.isBlocked]).toEqual([1, false, 1, false]);
  });

  it('fails open while Redis is unreachable: every hit goes through, each is counted, one warning per interval', async () => {
    const dead = new Redis({
      port: await freePort(),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    dead.on('error', () => undefined);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const registry = new Registry();
    const failing = new FailOpenRedisThrottlerStorage(dead, prefix, logger, registry);
    try {
      for (let i = 0; i < 5; i++) {
        const record = await failing.increment('default:user:9', 60_000, 1, 30_000, 'default');
        expect(record).toEqual({ totalHits: 0, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0 });
      }
      const metric = await registry.getSingleMetric('quota_rate_limit_store_errors_total')!.get();
      expect(metric.values[0].value).toBe(5);
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0])).toMatchObject({
        msg: 'rate limiter store unavailable: letting requests through unthrottled',
      });
    } finally {
      dead.disconnect();
    }
  });
});
