import type { ExecutionContext } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { ThrottlerModule, type ThrottlerModuleOptions } from '@nestjs/throttler';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { MetricsRegistry } from '../metrics/metrics.module';
import { RedisConnection } from '../redis/redis.module';
import { AppThrottlerGuard, clientAddress } from './app-throttler.guard';
import { FailOpenRedisThrottlerStorage } from './fail-open-throttler.storage';
import { DEFAULT_THROTTLER, LOGIN_RATE_LIMIT_KEY, LOGIN_THROTTLER } from './throttle.decorators';

function isLoginRoute(context: ExecutionContext): boolean {
  return Reflect.getMetadata(LOGIN_RATE_LIMIT_KEY, context.getHandler()) === true;
}

export function throttlerOptions(
  config: AppConfig,
  redis: RedisConnection,
  logger: Logger,
  registry: MetricsRegistry,
): ThrottlerModuleOptions {
  const ttl = config.throttle.ttlSeconds * 1000;
  const { limit, loginLimit } = config.throttle;
  return {
    throttlers: [
      // A limit of 0 turns the limiter off.
      { name: DEFAULT_THROTTLER, ttl, limit, skipIf: () => limit === 0 },
      {
        name: LOGIN_THROTTLER,
        ttl,
        limit: loginLimit,
        skipIf: (context) => loginLimit === 0 || !isLoginRoute(context),
        getTracker: (req) => clientAddress(req),
      },
    ],
    // Without Redis (embedded mode) the throttler keeps its counters in memory.
    storage:
      redis.client && config.redis
        ? new FailOpenRedisThrottlerStorage(redis.client, `${config.redis.prefix}:throttle:`, logger, registry)
        : undefined,
  };
}

@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [AppConfig, RedisConnection, ROOT_LOGGER, MetricsRegistry],
      useFactory: throttlerOptions,
    }),
  ],
  providers: [AppThrottlerGuard],
  exports: [AppThrottlerGuard],
})
export class ThrottleModule {}
