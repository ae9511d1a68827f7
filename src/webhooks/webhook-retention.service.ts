import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { EventsRepository } from '../events/events.repository';
import { WriteFreeze } from '../maintenance/write-freeze';
import { WebhooksMetrics } from './webhooks.metrics';

const DAY_MS = 86_400_000;
const PURGE_INTERVAL_MS = 3_600_000;
/** Events per transaction: short ones, that never hold many locks at once. */
export const PURGE_BATCH = 1_000;
/** The scheduler's name for the hourly purge. */
export const WEBHOOK_RETENTION_INTERVAL = 'webhook-retention';

/**
 * Keeps the webhook event log from growing for ever: events recorded more than
 * WEBHOOK_RETENTION_DAYS ago are deleted with their delivery log, oldest first, in short batches,
 * once an hour on the instances that run background work. An event with a delivery still pending
 * (retrying, or redelivered) stays until that delivery is settled, whatever its age. Every
 * instance may purge at the same time; a batch deletes whatever is still there.
 */
@Injectable()
export class WebhookRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private running: Promise<number> | null = null;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly config: AppConfig,
    private readonly events: EventsRepository,
    private readonly metrics: WebhooksMetrics,
    private readonly scheduler: SchedulerRegistry,
    private readonly freeze: WriteFreeze,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.role === 'api' || this.config.webhooks.retentionDays === 0) return;
    // Paused during a write freeze.
    const tick = this.freeze.whileWritable(async () => {
      if (this.running) return;
      await this.purge().catch((err: unknown) => this.logger.error({ err }, 'purging old webhook events failed'));
    });
    scheduleEvery(this.scheduler, WEBHOOK_RETENTION_INTERVAL, PURGE_INTERVAL_MS, tick);
  }

  async beforeApplicationShutdown(): Promise<void> {
    stopScheduled(this.scheduler, WEBHOOK_RETENTION_INTERVAL);
    await this.running?.catch(() => undefined);
  }

  /** Deletes the settled events recorded before now − the retention; returns how many. */
  async purge(now = new Date()): Promise<number> {
    const days = this.config.webhooks.retentionDays;
    if (days === 0) return 0;
    const work = this.deleteBefore(new Date(now.getTime() - days * DAY_MS));
    this.running = work;
    try {
      const deleted = await work;
      if (deleted > 0) {
        this.metrics.eventsPurged.inc(deleted);
        this.logger.info({ deleted, retention_days: days }, 'deleted webhook events past their retention');
      }
      return deleted;
    } finally {
      this.running = null;
    }
  }

  private async deleteBefore(cutoff: Date): Promise<number> {
    let deleted = 0;
    for (;;) {
      // Read first, then delete by primary key under lock (see EventsRepository.deleteSettled).
      const ids = await this.db.read((s) => this.events.settledBefore(s, cutoff, PURGE_BATCH));
      if (ids.length === 0) return deleted;
      deleted += await this.db.transaction((s) => this.events.deleteSettled(s, ids), { retries: 2 });
      if (ids.length < PURGE_BATCH) return deleted;
    }
  }
}
