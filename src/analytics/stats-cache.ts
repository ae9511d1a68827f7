import { CACHE_MANAGER, type CacheModuleOptions } from '@nestjs/cache-manager';
import { Inject, Injectable } from '@nestjs/common';
import type { Cache } from 'cache-manager';
import { Keyv } from 'keyv';
import type { Logger } from 'pino';
import { FreshReads } from '../common/fresh-reads';
import { ROOT_LOGGER } from '../common/logger.token';
import type { AppConfig } from '../config/app-config';
import { createRedisClient, redisErrorListener } from '../redis/redis.module';
import { RedisKeyvStore } from '../redis/redis-keyv-store';

/** A cache call that takes longer than this is treated as a miss: stats never wait on a sick Redis. */
const CACHE_TIMEOUT_MS = 250;

/**
 * Options for @nestjs/cache-manager: Redis (shared by every instance, keys `<REDIS_PREFIX>:stats::…`)
 * when it is configured, process memory otherwise. The Redis client is the service's fail-fast
 * one for the configured topology (single, Cluster or Sentinel): it refuses commands instead of
 * queueing them while Redis is away and reconnects in the background, so an outage costs a miss.
 */
export function statsCacheOptions(config: AppConfig, logger: Logger): CacheModuleOptions {
  const ttl = config.quota.statsTtlSeconds * 1000;
  if (!config.redis) return { ttl };
  // One budget for the connection's errors and the failed writes Keyv reports: one line per 10 s.
  const onError = redisErrorListener(logger, 'stats-cache', 'stats cache (redis) error');
  const client = createRedisClient(config.redis, logger, 'stats-cache', onError);
  const store = new RedisKeyvStore(client, `${config.redis.prefix}:stats::`);
  // The store names its keys itself; Keyv's own `namespace:` prefix is off.
  const keyv = new Keyv(store, { namespace: undefined, useKeyPrefix: false, throwOnErrors: true });
  // Entries are plain JSON (no Buffers, no strings needing keyv's escaping); keyv's default
  // deserializer runs a reviver over every value, which cost more than the Redis read itself.
  keyv.serialize = (data) => JSON.stringify(data);
  keyv.deserialize = <T>(data: string) => JSON.parse(data) as T;
  keyv.on('error', onError);
  // keyv's CommonJS and ESM typings differ only by resolution mode; the instance is the same class.
  return { ttl, stores: [keyv] as unknown as CacheModuleOptions['stores'] };
}

export interface CachedStats {
  /** The stats body as the JSON text it is sent as. */
  readonly dataJson: string;
  readonly generatedAt: string;
}

type CacheRead = CachedStats | null | 'error';

@Injectable()
export class StatsCache {
  /**
   * Requests for the same stats share one cache read (a dashboard wall or a burst asks for the
   * same filters at once); each still gets a read that started after it arrived, so an entry
   * written before a request came in, by ?fresh=true on any instance, is the one it sees.
   */
  private readonly reads = new FreshReads<string, CacheRead>((key) => this.readOnce(key));

  constructor(
    @Inject(CACHE_MANAGER) private readonly cache: Cache,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  /** The cached entry, or null on a miss, or 'error' on any cache failure (then the caller computes). */
  get(key: string): Promise<CacheRead> {
    return this.reads.get(key);
  }

  private async readOnce(key: string): Promise<CacheRead> {
    try {
      return (await withTimeout(this.cache.get<CachedStats>(key))) ?? null;
    } catch (err) {
      this.logger.debug({ err }, 'stats cache read failed');
      return 'error';
    }
  }

  async set(key: string, entry: CachedStats, ttlMs: number): Promise<void> {
    try {
      await withTimeout(this.cache.set(key, entry, ttlMs));
    } catch (err) {
      this.logger.debug({ err }, 'stats cache write failed');
    }
  }
}

async function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CACHE_TIMEOUT_MS} ms`)), CACHE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
