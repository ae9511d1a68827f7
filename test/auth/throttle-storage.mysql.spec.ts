import { Redis } from 'ioredis';
import pino from 'pino';
import { Registry } from 'prom-client';
import { RedisThrottlerStorage } from '../../src/throttle/redis-throttler.storage';
import { redisServer, uniqueSuffix } from '../support/test-database';

/** The Redis throttler store on its own, against the real Redis: counting stays exact when hits are batched. */
describe('RedisThrottlerStorage', () => {
  const prefix = `test-throttle-store-${uniqueSuffix()}:`;
  let client: Redis;
  let storage: RedisThrottlerStorage;
  let scriptCalls = 0;

  beforeAll(async () => {
    client = new Redis({ host: redisServer.host, port: redisServer.port });
    storage = new RedisThrottlerStorage(client, prefix, pino({ level: 'silent' }), new Registry());
    const script = (client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)
      .quotaThrottleIncrement;
    (client as unknown as Record<string, unknown>).quotaThrottleIncrement = (...args: unknown[]) => {
      scriptCalls++;
      return script.apply(client, args);
    };
    await storage.onApplicationBootstrap();
  });
  afterAll(async () => {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  it('counts hits that arrive together in order, in fewer round trips, and blocks past the limit', async () => {
    scriptCalls = 0;
    const records = await Promise.all(
      Array.from({ length: 10 }, () => storage.increment('default:user:1', 60_000, 4, 30_000, 'default')),
    );
    expect(records.map((r) => r.totalHits)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(records.map((r) => r.isBlocked)).toEqual([false, false, false, false, true, true, true, true, true, true]);
    expect(records[4]).toMatchObject({ timeToExpire: 60, timeToBlockExpire: 30 });
    expect(records[0].timeToBlockExpire).toBe(0);
    // The first hit goes alone; the nine that arrived while it was in flight share one call.
    expect(scriptCalls).toBe(2);
    expect(await client.get(`${prefix}{default:user:1}:hits`)).toBe('10');
    expect(Number(await client.pttl(`${prefix}{default:user:1}:blocked`))).toBeGreaterThan(25_000);

    // Blocked: later hits are refused without being counted.
    const later = await storage.increment('default:user:1', 60_000, 4, 30_000, 'default');
    expect(later).toMatchObject({ isBlocked: true, totalHits: 10 });
  });

  it('far from the limit, leases hits ahead so most requests need no round trip; the count stays in order', async () => {
    scriptCalls = 0;
    const totals: number[] = [];
    for (let i = 0; i < 100; i++) {
      const record = await storage.increment('default:user:4', 60_000, 1_000, 30_000, 'default');
      expect(record.isBlocked).toBe(false);
      totals.push(record.totalHits);
    }
    expect(totals).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // Each call takes one hit and leases up to 32 more.
    expect(scriptCalls).toBeLessThanOrEqual(4);
    const counted = Number(await client.get(`${prefix}{default:user:4}:hits`));
    expect(counted).toBeGreaterThanOrEqual(100);
    expect(counted).toBeLessThanOrEqual(100 + 32);
  });

  it('never admits more than the limit across instances, leases or not, and wastes little of it', async () => {
    const other = new RedisThrottlerStorage(client, prefix, pino({ level: 'silent' }), new Registry());
    const hit = (store: RedisThrottlerStorage) => store.increment('default:user:5', 60_000, 200, 30_000, 'default');
    const admitted: number[] = [];
    // Both instances keep hitting, one at a time each (as busy request loops would), until blocked.
    await Promise.all(
      [storage, other].map(async (store) => {
        for (let i = 0; i < 300; i++) {
          const record = await hit(store);
          if (!record.isBlocked) admitted.push(record.totalHits);
        }
      }),
    );
    expect(admitted.length).toBeLessThanOrEqual(200);
    // Unused leases are at most an eighth of what was left when each was taken.
    expect(admitted.length).toBeGreaterThanOrEqual(180);
    expect(new Set(admitted).size).toBe(admitted.length);
    expect(Math.max(...admitted)).toBeLessThanOrEqual(200);
  });

  it('keeps keys apart', async () => {
    const [a, b] = await Promise.all([
      storage.increment('default:user:2', 60_000, 1, 1_000, 'default'),
      storage.increment('default:user:3', 60_000, 1, 1_000, 'default'),
    ]);
    expect([a.totalHits, a.isBlocked, b.totalHits, b.isBlocked]).toEqual([1, false, 1, false]);
  });
});
