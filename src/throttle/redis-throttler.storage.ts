import { once } from 'node:events';
import type { OnApplicationBootstrap } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

/**
 * Fixed window per key, then a block once the limit is passed. ARGV[4] hits arrive at once (see
 * HitBatch). Both keys share a hash tag so the script stays on one slot under Redis Cluster.
 */
const INCREMENT_SCRIPT = `
local hitKey = KEYS[1]
local blockKey = KEYS[2]
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local blockDuration = tonumber(ARGV[3])
local hits = tonumber(ARGV[4])
local blockTtl = redis.call('PTTL', blockKey)
if blockTtl > 0 then
  local total = tonumber(redis.call('GET', hitKey) or '0')
  local hitTtl = redis.call('PTTL', hitKey)
  if hitTtl < 0 then hitTtl = 0 end
  return { total, hitTtl, 1, blockTtl }
end
local totalHits = redis.call('INCRBY', hitKey, hits)
local timeToExpire = redis.call('PTTL', hitKey)
if timeToExpire <= 0 then
  redis.call('PEXPIRE', hitKey, ttl)
  timeToExpire = ttl
end
if totalHits > limit then
  redis.call('SET', blockKey, 1, 'PX', blockDuration)
  return { totalHits, timeToExpire, 0, blockDuration }
end
return { totalHits, timeToExpire, 0, 0 }
`;

/** A slow Redis must not slow every request down: past this the limiter gives up and lets it through. */
const COMMAND_TIMEOUT_MS = 500;
const READY_WAIT_MS = 3000;
const ERROR_LOG_INTERVAL_MS = 10_000;

type ScriptClient = Redis & {
  quotaThrottleIncrement(
    hitKey: string,
    blockKey: string,
    ttl: number,
    limit: number,
    block: number,
    hits: number,
  ): Promise<unknown>;
};

interface ThrottlerRecord {
  totalHits: number;
  timeToExpire: number;
  isBlocked: boolean;
  timeToBlockExpire: number;
}

interface Hit {
  resolve(record: ThrottlerRecord): void;
}

/** The hits of one key waiting for the call in flight to finish; they go to Redis together. */
interface HitBatch {
  readonly ttl: number;
  readonly limit: number;
  readonly blockDuration: number;
  waiting: Hit[];
}

/**
 * Throttler storage shared by every instance through Redis, under REDIS_PREFIX. It fails open: if
 * Redis errors or is slow, the request goes through, and that is logged and counted.
 */
export class RedisThrottlerStorage implements ThrottlerStorage, OnApplicationBootstrap {
  private readonly client: ScriptClient;
  private readonly failures: Counter;
  private lastLogged = 0;
  private readonly batches = new Map<string, HitBatch>();

  constructor(
    client: Redis,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
    registry: Registry,
  ) {
    client.defineCommand('quotaThrottleIncrement', { numberOfKeys: 2, lua: INCREMENT_SCRIPT });
    this.client = client as ScriptClient;
    this.failures = new Counter({
      name: 'quota_rate_limit_store_errors_total',
      help: 'Rate-limit checks let through because the Redis store failed (fail open).',
      registers: [registry],
    });
  }

  /** The shared client refuses commands until connected; give it a moment at start-up. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.client.status === 'ready') return;
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, READY_WAIT_MS).unref());
    await Promise.race([once(this.client, 'ready').then(() => undefined), timeout]).catch(() => undefined);
  }

  /**
   * Counts one hit. While a script call for the key is in flight, further hits on it wait and then
   * go to Redis as one call that adds them all: a busy caller costs a round trip per batch rather
   * than per request, and every hit is still counted, in order, across all instances.
   */
  increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    _throttlerName: string,
  ): Promise<ThrottlerRecord> {
    return new Promise((resolve) => {
      const batch = this.batches.get(key);
      if (batch) {
        batch.waiting.push({ resolve });
        return;
      }
      const started: HitBatch = { ttl, limit, blockDuration, waiting: [] };
      this.batches.set(key, started);
      void this.send(key, started, [{ resolve }]);
    });
  }

  private async send(key: string, batch: HitBatch, hits: Hit[]): Promise<void> {
    const records = await this.call(key, batch, hits.length);
    hits.forEach((hit, i) => hit.resolve(records(i)));
    if (batch.waiting.length === 0) {
      this.batches.delete(key);
      return;
    }
    const next = batch.waiting;
    batch.waiting = [];
    return this.send(key, batch, next);
  }

  /** One script call for `count` hits; returns what the i-th of them is told. */
  private async call(key: string, batch: HitBatch, count: number): Promise<(i: number) => ThrottlerRecord> {
    const base = `${this.keyPrefix}{${key}}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        this.client.quotaThrottleIncrement(
          `${base}:hits`,
          `${base}:blocked`,
          batch.ttl,
          batch.limit,
          batch.blockDuration,
          count,
        ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
        }),
      ]);
      const [totalHits, timeToExpire, wasBlocked, timeToBlockExpire] = parseResult(result);
      const expire = Math.ceil(timeToExpire / 1000);
      const blockExpire = Math.ceil(timeToBlockExpire / 1000);
      if (wasBlocked === 1) {
        return () => ({ totalHits, timeToExpire: expire, isBlocked: true, timeToBlockExpire: blockExpire });
      }
      // The hits were added in order: the i-th of them brought the count to first + i.
      const first = totalHits - count + 1;
      return (i) => {
        const hits = first + i;
        const isBlocked = hits > batch.limit;
        return { totalHits: hits, timeToExpire: expire, isBlocked, timeToBlockExpire: isBlocked ? blockExpire : 0 };
      };
    } catch (err) {
      this.failures.inc(count);
      const now = Date.now();
      if (now - this.lastLogged > ERROR_LOG_INTERVAL_MS) {
        this.lastLogged = now;
        this.logger.error(
          { err: { message: err instanceof Error ? err.message : String(err) } },
          'rate limiter store unavailable: letting requests through unthrottled',
        );
      }
      const open = { totalHits: 0, timeToExpire: Math.ceil(batch.ttl / 1000), isBlocked: false, timeToBlockExpire: 0 };
      return () => open;
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseResult(result: unknown): [number, number, number, number] {
  if (!Array.isArray(result) || result.length !== 4 || !result.every((v) => typeof v === 'number')) {
    throw new TypeError('unexpected answer from the rate-limit script');
  }
  return result as [number, number, number, number];
}
