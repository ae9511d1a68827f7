import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { RetentionPurge } from '../maintenance/retention-purge';
import { WriteFreeze } from '../maintenance/write-freeze';
import { AnalyticsMetrics } from './analytics.metrics';
import { AnomaliesRepository } from './anomalies.repository';

/** Rows per statement: short transactions that never hold many locks at once. */
export const PRUNE_BATCH = 5_000;
/** The scheduler's name for the hourly prune. */
export const PRUNE_INTERVAL = 'anomaly-retention';

/**
 * Keeps quota_anomalies from growing for ever: events older than QUOTA_ANOMALY_RETENTION_DAYS
 * (detected_at) are deleted hourly on the instances that run background work (RetentionPurge).
 * The ids are selected first (a range on idx_quota_anomalies_detected_at), then deleted by primary
 * key, as the idempotency-key purge does: a DELETE with the condition itself (or an IN subquery,
 * which MariaDB runs as a scan of the whole table) would lock index gaps that the tail processor's
 * inserts wait for.
 */
@Injectable()
export class AnomalyRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly purge: RetentionPurge;

  constructor(
    db: QuotaDatabase,
    private readonly config: AppConfig,
    metrics: AnalyticsMetrics,
    @Inject(ROOT_LOGGER) logger: Logger,
    scheduler: SchedulerRegistry,
    anomalies: AnomaliesRepository,
    freeze: WriteFreeze,
  ) {
    this.purge = new RetentionPurge(
      {
        name: PRUNE_INTERVAL,
        rows: 'anomalies',
        days: config.analytics.anomalyRetentionDays,
        batch: PRUNE_BATCH,
        olderThan: (s, cutoff, limit) => anomalies.idsDetectedBefore(s, cutoff, limit),
        delete: (s, ids) => anomalies.deleteByIds(s, ids),
        deleted: (count) => metrics.anomaliesPruned.inc(count),
      },
      db,
      scheduler,
      freeze,
      logger,
    );
  }

  onApplicationBootstrap(): void {
    if (this.config.role !== 'api') this.purge.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.purge.stop();
  }

  /** Deletes the anomalies detected before now − the retention; returns how many. */
  prune(now = new Date()): Promise<number> {
    return this.purge.purge(now);
  }
}
