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
import { write } from '../database/writer';
import { WriteFreeze } from '../maintenance/write-freeze';
import { RedisConnection } from '../redis/redis.module';
import { LifecycleState } from './lifecycle-state';

const PING_TIMEOUT_MS = 1500;
/** Migrations change only on deploys; checking them once every few seconds is plenty. */
const MIGRATION_CHECK_CACHE_MS = 5000;
const FAILURE_LOG_INTERVAL_MS = 10_000;

/** A failure whose message is fit for the public probe body as it is. */
class PublicCheckFailure extends Error {}

export interface SeedHealthBody {
  status: 'healthy' | 'unhealthy';
  timestamp: string;
  database: 'connected' | 'disconnected';
  quota_system: 'operational' | 'degraded';
  details: Record<string, unknown>;
}

@Injectable()
export class HealthService {
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly dataSource: DataSource,
    private readonly redis: RedisConnection,
    private readonly lifecycle: LifecycleState,
    private readonly freeze: WriteFreeze,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * A check whose failure is told in a fixed public phrase: probe bodies are unauthenticated, so
   * the driver's own message (host, port, SQL) goes to the operator log only, however long the
   * dependency stays down and whether or not the answer comes from the check's cache.
   */
  private guarded(key: string, publicFailure: string, work: () => Promise<void | Record<string, unknown>>) {
    return this.indicators
      .check(key)
      .attempt(async () => {
        try {
          return await work();
        } catch (err) {
          if (err instanceof PublicCheckFailure) throw err;
          this.logFailure(key, err);
          throw new PublicCheckFailure(publicFailure);
        }
      })
      .withTimeout(PING_TIMEOUT_MS);
  }

  /**
   * Probes ask every few seconds on every pod: during an outage one line per check every 10 s,
   * with the driver's message, says enough (the count of the others comes with it).
   */
  private logFailure(key: string, err: unknown): void {
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last && now - last.at < FAILURE_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    this.logger.warn({ err: { message }, check: key, suppressed: last?.suppressed ?? 0 }, `${key} check failed`);
    this.lastLogged.set(key, { at: now, suppressed: 0 });
  }

  private database() {
    return this.guarded('database', 'unreachable', async () => {
      await this.dataSource.query('SELECT 1');
    });
  }

  private redisPing() {
    return this.guarded('redis', 'unreachable', async () => {
      await this.redis.ping(PING_TIMEOUT_MS);
    });
  }

  private migrations() {
    return this.guarded('migrations', 'could not be checked: database unreachable', async () => {
      // It may create the migrations table: a write, so through the embedded database's one writer.
      const pending = await write(this.dataSource, () => this.dataSource.showMigrations());
      if (pending) throw new PublicCheckFailure('pending migrations; run npm run migration:run');
      return { applied: true };
    }).cacheFor(MIGRATION_CHECK_CACHE_MS);
  }

  private lifecycleCheck(): HealthIndicatorResult<'lifecycle'> {
    const session = this.indicators.check('lifecycle');
    return this.lifecycle.isShuttingDown ? session.down({ message: 'shutting down' }) : session.up();
  }

  /**
   * Kubernetes readiness: the database answers, migrations are applied, not draining. Redis is
   * left out on purpose: without it the API still serves from the database (limits fail open,
   * stats are computed, operations are recorded and queued later), so a Redis blip must not take
   * every pod out of the load balancer. /health reports it as `quota_system: degraded`.
   */
  async readiness(): Promise<{ ready: boolean; body: HealthCheckResult | object }> {
    const checks: HealthIndicatorFunction[] = [
      () => this.lifecycleCheck(),
      () => this.database(),
      () => this.migrations(),
    ];
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
    // A write freeze is a degraded service, not an unhealthy one: reads work, and readiness stays up
    // so that every instance keeps serving them.
    const frozen = this.freeze.current;
    const maintenance = frozen.readOnly
      ? { maintenance: { status: 'read_only', reason: frozen.reason, since: frozen.since?.toISOString() ?? null } }
      : {};
    return {
      status: healthy ? 'healthy' : 'unhealthy',
      timestamp: new Date().toISOString(),
      database: databaseUp ? 'connected' : 'disconnected',
      quota_system:
        healthy && redisUp && !this.lifecycle.isShuttingDown && !frozen.readOnly ? 'operational' : 'degraded',
      details: { ...database, ...migrations, ...(redis ?? {}), ...this.lifecycleCheck(), ...maintenance },
    };
  }
}
