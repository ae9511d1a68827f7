import { once } from 'node:events';
import type { OnApplicationBootstrap } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

/**
 * Fixed window per key, then a block once the limit is passed. Both keys share a hash tag so the
 * script stays on one slot under Redis Cluster.
 */
const INCREMENT_SCRIPT = `
local hitKey = KEYS[1]
local blockKey = KEYS[2]
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local blockDuration = tonumber(ARGV[3])
local blockTtl = redis.call('PTTL', blockKey)
if blockTtl > 0 then
  local hits = tonumber(redis.call('GET', hitKey) or '0')
  local hitTtl = redis.call('PTTL', hitKey)
  if hitTtl < 0 then hitTtl = 0 end
  return { hits, hitTtl, 1, blockTtl }
end
local totalHits = redis.call('INCR', hitKey)
local timeToExpire = redis.call('PTTL', hitKey)
if timeToExpire <= 0 then
  redis.call('PEXPIRE', hitKey, ttl)
  timeToExpire = ttl
end
if totalHits > limit then
  redis.call('SET', blockKey, 1, 'PX', blockDuration)
  return { totalHits, timeToExpire, 1, blockDuration }
end
return { totalHits, timeToExpire, 0, 0 }
`;

/** A slow Redis must not slow every request down: past this the limiter gives up and lets it through. */
const COMMAND_TIMEOUT_MS = 500;
const READY_WAIT_MS = 3000;
const ERROR_LOG_INTERVAL_MS = 10_000;

type ScriptClient = Redis & {
  quotaThrottleIncrement(hitKey: string, blockKey: string, ttl: number, limit: number, block: number): Promise<unknown>;
};

/**
 * Throttler storage shared by every instance through Redis, under REDIS_PREFIX. It fails open: if
 * Redis errors or is slow, the request goes through, and that is logged and counted.
 */
export class RedisThrottlerStorage implements ThrottlerStorage, OnApplicationBootstrap {
  private readonly client: ScriptClient;
  private readonly failures: Counter;
  private lastLogged = 0;

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

  async increment(key: string, ttl: number, limit: number, blockDuration: number, _throttlerName: string) {
    const base = `${this.keyPrefix}{${key}}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        this.client.quotaThrottleIncrement(`${base}:hits`, `${base}:blocked`, ttl, limit, blockDuration),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
        }),
      ]);
      const [totalHits, timeToExpire, isBlocked, timeToBlockExpire] = parseResult(result);
      return {
        totalHits,
        timeToExpire: Math.ceil(timeToExpire / 1000),
        isBlocked: isBlocked === 1,
        timeToBlockExpire: Math.ceil(timeToBlockExpire / 1000),
      };
    } catch (err) {
      this.failures.inc();
      const now = Date.now();
      if (now - this.lastLogged > ERROR_LOG_INTERVAL_MS) {
        this.lastLogged = now;
        this.logger.error(
          { err: { message: err instanceof Error ? err.message : String(err) } },
          'rate limiter store unavailable: letting requests through unthrottled',
        );
      }
      return { totalHits: 0, timeToExpire: Math.ceil(ttl / 1000), isBlocked: false, timeToBlockExpire: 0 };
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
