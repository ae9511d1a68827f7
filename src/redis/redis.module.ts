import { Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AppConfig, type RedisConfig } from '../config/app-config';
import { ROOT_LOGGER } from '../common/logger.token';
import { tlsConnectOptions } from '../config/tls';

/** During an outage every reconnect attempt fails: one line per client per interval says enough. */
const ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * An 'error' listener for one Redis client (ours, BullMQ's, the stats cache's). A client with no
 * listener has its errors printed raw by the driver, with stack and socket details, on every
 * reconnect attempt; this logs the message only, at most once per interval, and counts the rest.
 */
export function redisErrorListener(
  logger: Logger,
  client: string,
  msg = 'redis connection error',
): (err: unknown) => void {
  let lastLogged = 0;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastLogged = now;
    const message = err instanceof Error ? err.message : String(err);
    logger.warn({ err: { message }, client, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
    suppressed = 0;
  };
}

export function createRedisClient(config: RedisConfig, logger: Logger, name: string): Redis {
  const client = new Redis({
    host: config.host,
    port: config.port,
    password: config.password,
    db: config.db,
    tls: config.tls ? tlsConnectOptions(config.tls) : undefined,
    connectionName: `quota-service:${name}`,
    connectTimeout: 2000,
    // Fail fast while Redis is away instead of queueing: callers decide how to degrade.
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  client.on('error', redisErrorListener(logger, name));
  return client;
}

/** The shared Redis connection, or null when REDIS_HOST is not set (embedded mode). */
@Injectable()
export class RedisConnection implements OnApplicationShutdown {
  readonly client: Redis | null;

  constructor(config: AppConfig, @Inject(ROOT_LOGGER) logger: Logger) {
    this.client = config.redis ? createRedisClient(config.redis, logger, 'main') : null;
  }

  async ping(timeoutMs: number): Promise<string> {
    if (!this.client) throw new Error('redis is not configured');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.client.ping(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  onApplicationShutdown(): void {
    this.client?.disconnect();
  }
}

@Global()
@Module({ providers: [RedisConnection], exports: [RedisConnection] })
export class RedisModule {}
