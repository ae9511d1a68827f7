import { CACHE_MANAGER, type CacheModuleOptions } from '@nestjs/cache-manager';
import { Inject, Injectable } from '@nestjs/common';
import { createKeyv } from '@keyv/redis';
import type { Cache } from 'cache-manager';
import type { Logger } from 'pino';
import { FreshReads } from '../common/fresh-reads';
import { ROOT_LOGGER } from '../common/logger.token';
import type { AppConfig } from '../config/app-config';
import { tlsConnectOptions } from '../config/tls';
import { redisErrorListener } from '../redis/redis.module';

/** A cache call that takes longer than this is treated as a miss: stats never wait on a sick Redis. */
const CACHE_TIMEOUT_MS = 250;

/**
 * Options for @nestjs/cache-manager: Redis (shared by every instance, under REDIS_PREFIX) when it
 * is configured, process memory otherwise. The Redis client fails fast instead of queueing while
 * Redis is away and reconnects on the next use, so an outage costs one refused connection per call.
 */
export function statsCacheOptions(config: AppConfig, logger: Logger): CacheModuleOptions {
  const ttl = config.quota.statsTtlSeconds * 1000;
  if (!config.redis) return { ttl };
  const redis = config.redis;
  const keyv = createKeyv(
    {
      socket: {
        host: redis.host,
        port: redis.port,
        connectTimeout: 1000,
        reconnectStrategy: false,
        ...(redis.tls ? { tls: true as const, ...tlsConnectOptions(redis.tls) } : {}),
      },
      password: redis.password,
      database: redis.db,
      disableOfflineQueue: true,
    },
    { namespace: `${redis.prefix}:stats`, connectionTimeout: 1000, throwOnConnectError: true, throwOnErrors: true },
  );
  // Entries are plain JSON (no Buffers, no strings needing keyv's escaping); keyv's default
  // deserializer runs a reviver over every value, which cost more than the Redis read itself.
  keyv.serialize = (data) => JSON.stringify(data);
  keyv.deserialize = <T>(data: string) => JSON.parse(data) as T;
  // Shutdown drops the connection instead of waiting for commands stuck on an unreachable Redis.
  const adapter = keyv.store as { disconnect(force?: boolean): Promise<void> };
  keyv.disconnect = () => adapter.disconnect(true);
  keyv.on('error', redisErrorListener(logger, 'stats-cache', 'stats cache (redis) error'));
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
