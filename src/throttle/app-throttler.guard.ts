import { Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  normalizeIp,
  ThrottlerGuard,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import { Counter } from 'prom-client';
import { AppError } from '../common/app-error';
import { MetricsRegistry } from '../metrics/metrics.module';

interface ThrottledRequest {
  ip?: string;
  /** The authenticated caller (auth's Principal), when there is one. */
  user?: { readonly userId: string };
}

/**
 * `req.ip` already honours exactly TRUST_PROXY hops (Fastify's trustProxy), so a client cannot
 * pick its own address with X-Forwarded-For. IPv6 clients are grouped by /64.
 */
export function clientAddress(req: ThrottledRequest): string {
  return `ip:${normalizeIp(req.ip ?? 'unknown')}`;
}

/**
 * The global limit counts per authenticated user (per address when anonymous) across every
 * route, not per route: the key is the throttler name and the caller only.
 */
@Injectable()
export class AppThrottlerGuard extends ThrottlerGuard {
  private readonly limited: Counter<'throttler'>;

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    registry: MetricsRegistry,
  ) {
    super(options, storage, reflector);
    this.limited = new Counter({
      name: 'quota_rate_limited_total',
      help: 'Requests refused by a rate limit, by limiter.',
      labelNames: ['throttler'],
      registers: [registry],
    });
  }

  protected override getTracker(req: ThrottledRequest): Promise<string> {
    return Promise.resolve(req.user ? `user:${req.user.userId}` : clientAddress(req));
  }

  protected override generateKey(_context: ExecutionContext, tracker: string, throttlerName: string): string {
    return `${throttlerName}:${tracker}`;
  }

  protected override throwThrottlingException(_context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    const throttler = detail.key.split(':', 1)[0];
    this.limited.inc({ throttler });
    const retryAfterSeconds = Math.max(1, detail.timeToBlockExpire);
    return Promise.reject(
      new AppError('rate_limited', `Too many requests; retry after ${retryAfterSeconds} seconds.`, {
        retryAfterSeconds,
      }),
    );
  }
}
