import { once } from 'node:events';
import type { OnApplicationBootstrap } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisClient } from '../redis/redis.module';
import { Counter, type Registry } from 'prom-client';

/** A slow Redis must not slow every request down: past this the limiter gives up and lets it through. */
const COMMAND_TIMEOUT_MS = 500;
const READY_WAIT_MS = 3000;
const ERROR_LOG_INTERVAL_MS = 10_000;

type ThrottlerRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * The maintained Redis storage (`@nest-lab/throttler-storage-redis`: one Lua script per hit, keys
 * `{<REDIS_PREFIX>:throttle:<throttler>:<caller>:<throttler>}:hits|blocked`), shared by every
 * instance, behind a thin wrapper that fails open: if Redis errors or is slow, the request goes
 * through, the failure is counted, and a warning is logged at most once per interval. The two keys
 * of one script share the braced hash tag, so on a Redis Cluster they sit in one slot and the
 * script runs on the node that owns it (ioredis routes EVAL by its keys).
 */
export class FailOpenRedisThrottlerStorage implements ThrottlerStorage, OnApplicationBootstrap {
  private readonly store: ThrottlerStorageRedisService;
  private readonly failures: Counter;
  private lastLogged = 0;

  constructor(
    private readonly client: RedisClient,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
    registry: Registry,
  ) {
    // Two calls because the library types its constructor with one overload per client class.
    this.store =
      client instanceof Cluster ? new ThrottlerStorageRedisService(client) : new ThrottlerStorageRedisService(client);
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

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerRecord> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.store.increment(`${this.keyPrefix}${key}`, ttl, limit, blockDuration, throttlerName),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
        }),
      ]);
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
