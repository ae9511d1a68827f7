import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { AnalyticsMetrics } from './analytics.metrics';
import { AnomaliesRepository } from './anomalies.repository';

const DAY_MS = 86_400_000;
const PRUNE_INTERVAL_MS = 3_600_000;
/** Rows per statement: short transactions that never hold many locks at once. */
export const PRUNE_BATCH = 5_000;
/** The scheduler's name for the hourly prune. */
export const PRUNE_INTERVAL = 'anomaly-retention';

/**
 * Keeps quota_anomalies from growing for ever: events older than QUOTA_ANOMALY_RETENTION_DAYS
 * (detected_at) are deleted, oldest first, in short batches, once an hour on the instances that
 * run background work. Every instance may do it at the same time; a batch deletes whatever is
 * still there.
 */
@Injectable()
export class AnomalyRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private running: Promise<number> | null = null;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly config: AppConfig,
    private readonly metrics: AnalyticsMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly scheduler: SchedulerRegistry,
    private readonly anomalies: AnomaliesRepository,
    private readonly freeze: WriteFreeze,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.role === 'api' || this.config.analytics.anomalyRetentionDays === 0) return;
    // Paused during a write freeze.
    const tick = this.freeze.whileWritable(async () => {
      if (this.running) return;
      await this.prune().catch((err: unknown) => this.logger.error({ err }, 'pruning old anomalies failed'));
    });
    scheduleEvery(this.scheduler, PRUNE_INTERVAL, PRUNE_INTERVAL_MS, tick);
  }

  async beforeApplicationShutdown(): Promise<void> {
    stopScheduled(this.scheduler, PRUNE_INTERVAL);
    await this.running?.catch(() => undefined);
  }

  /** Deletes the anomalies detected before now − the retention; returns how many. */
  async prune(now = new Date()): Promise<number> {
    const days = this.config.analytics.anomalyRetentionDays;
    if (days === 0) return 0;
    const work = this.deleteBefore(new Date(now.getTime() - days * DAY_MS));
    this.running = work;
    try {
      const deleted = await work;
      if (deleted > 0) {
        this.metrics.anomaliesPruned.inc(deleted);
        this.logger.info({ deleted, retention_days: days }, 'deleted anomalies past their retention');
      }
      return deleted;
    } finally {
      this.running = null;
    }
  }

  private async deleteBefore(cutoff: Date): Promise<number> {
    let deleted = 0;
    for (;;) {
      // Select first (a range on idx_quota_anomalies_detected_at), then delete by primary key, as
      // the idempotency-key purge does: a DELETE with the condition itself (or an IN subquery,
      // which MariaDB runs as a scan of the whole table) would lock index gaps that the tail
      // processor's inserts wait for.
      const ids = await this.db.read((s) => this.anomalies.idsDetectedBefore(s, cutoff, PRUNE_BATCH));
      if (ids.length === 0) return deleted;
      deleted += await this.db.transaction((s) => this.anomalies.deleteByIds(s, ids), { retries: 2 });
      if (ids.length < PRUNE_BATCH) return deleted;
    }
  }
}
