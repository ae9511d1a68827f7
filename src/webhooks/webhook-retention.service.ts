import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { EventsRepository } from '../events/events.repository';
import { RetentionPurge } from '../maintenance/retention-purge';
import { WriteFreeze } from '../maintenance/write-freeze';
import { WebhooksMetrics } from './webhooks.metrics';

/** Events per transaction: short ones, that never hold many locks at once. */
export const PURGE_BATCH = 1_000;
/** The scheduler's name for the hourly purge. */
export const WEBHOOK_RETENTION_INTERVAL = 'webhook-retention';

/**
 * Keeps the webhook event log from growing for ever: events recorded more than
 * WEBHOOK_RETENTION_DAYS ago are deleted with their delivery log, hourly on the instances that run
 * background work (RetentionPurge). An event with a delivery still pending (retrying, or
 * redelivered) stays until that delivery is settled, whatever its age
 * (EventsRepository.deleteSettled looks again under lock).
 */
@Injectable()
export class WebhookRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly retention: RetentionPurge;

  constructor(
    db: QuotaDatabase,
    private readonly config: AppConfig,
    events: EventsRepository,
    metrics: WebhooksMetrics,
    scheduler: SchedulerRegistry,
    freeze: WriteFreeze,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.retention = new RetentionPurge(
      {
        name: WEBHOOK_RETENTION_INTERVAL,
        rows: 'webhook events',
        days: config.webhooks.retentionDays,
        batch: PURGE_BATCH,
        olderThan: (s, cutoff, limit) => events.settledBefore(s, cutoff, limit),
        delete: (s, ids) => events.deleteSettled(s, ids),
        deleted: (count) => metrics.eventsPurged.inc(count),
      },
      db,
      scheduler,
      freeze,
      logger,
    );
  }

  onApplicationBootstrap(): void {
    if (this.config.role !== 'api') this.retention.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.retention.stop();
  }

  /** Deletes the settled events recorded before now − the retention; returns how many. */
  purge(now = new Date()): Promise<number> {
    return this.retention.purge(now);
  }
}
