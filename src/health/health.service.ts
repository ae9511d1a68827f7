import { Inject, Injectable, ServiceUnavailableException } from '@nestjs/common';
import {
  HealthCheckService,
  HealthIndicatorService,
  type HealthCheckResult,
  type HealthIndicatorFunction,
  type HealthIndicatorResult,
} from '@nestjs/terminus';
import type { Logger } from 'pino';
import { DataSource } from 'typeorm';
import { ROOT_LOGGER } from '../common/logger.token';
import { RedisConnection } from '../redis/redis.module';
import { LifecycleState } from './lifecycle-state';

const PING_TIMEOUT_MS = 1500;
/** Migrations change only on deploys; checking them once every few seconds is plenty. */
const MIGRATION_CHECK_CACHE_MS = 5000;

export interface SeedHealthBody {
  status: 'healthy' | 'unhealthy';
  timestamp: string;
  database: 'connected' | 'disconnected';
  quota_system: 'operational' | 'degraded';
  details: Record<string, unknown>;
}

@Injectable()
export class HealthService {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly dataSource: DataSource,
    private readonly redis: RedisConnection,
    private readonly lifecycle: LifecycleState,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  private database() {
    return this.indicators
      .check('database')
      .attempt(async () => {
        try {
          await this.dataSource.query('SELECT 1');
        } catch (err) {
          this.logger.warn({ err }, 'database ping failed');
          // The probe body is public: say that it failed, not where the database lives.
          throw new Error('unreachable', { cause: err });
        }
      })
      .withTimeout(PING_TIMEOUT_MS);
  }

  private redisPing() {
    return this.indicators
      .check('redis')
      .attempt(async () => {
        try {
          await this.redis.ping(PING_TIMEOUT_MS);
        } catch (err) {
          this.logger.warn({ err }, 'redis ping failed');
          throw new Error('unreachable', { cause: err });
        }
      })
      .withTimeout(PING_TIMEOUT_MS);
  }

  private migrations() {
    return this.indicators
      .check('migrations')
      .attempt(async () => {
        const pending = await this.dataSource.showMigrations();
        if (pending) throw new Error('pending migrations; run npm run migration:run');
        return { applied: true };
      })
      .withTimeout(PING_TIMEOUT_MS)
      .cacheFor(MIGRATION_CHECK_CACHE_MS);
  }

  private lifecycleCheck(): HealthIndicatorResult<'lifecycle'> {
    const session = this.indicators.check('lifecycle');
    return this.lifecycle.isShuttingDown ? session.down({ message: 'shutting down' }) : session.up();
  }

  /** Kubernetes readiness: everything a request needs, and not draining. */
  async readiness(): Promise<{ ready: boolean; body: HealthCheckResult | object }> {
    const checks: HealthIndicatorFunction[] = [
      () => this.lifecycleCheck(),
      () => this.database(),
      () => this.migrations(),
    ];
    if (this.redis.client) checks.push(() => this.redisPing());
    try {
      return { ready: true, body: await this.health.check(checks) };
    } catch (err) {
      if (err instanceof ServiceUnavailableException) return { ready: false, body: err.getResponse() as object };
      throw err;
    }
  }

  /** The seed's body, kept for its monitors, with the individual checks under `details`. */
  async seedHealth(): Promise<SeedHealthBody> {
    const [database, migrations, redis] = await Promise.all([
      this.database(),
      this.migrations(),
      this.redis.client ? this.redisPing() : Promise.resolve(undefined),
    ]);
    const databaseUp = database.database.status === 'up';
    const migrationsUp = migrations.migrations.status === 'up';
    const redisUp = redis === undefined || redis.redis.status === 'up';
    const healthy = databaseUp && migrationsUp;
    return {
      status: healthy ? 'healthy' : 'unhealthy',
      timestamp: new Date().toISOString(),
      database: databaseUp ? 'connected' : 'disconnected',
      quota_system: healthy && redisUp && !this.lifecycle.isShuttingDown ? 'operational' : 'degraded',
      details: { ...database, ...migrations, ...(redis ?? {}), ...this.lifecycleCheck() },
    };
  }
}
