import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { QuotaDatabase } from '../database/database';
import { MetricsRegistry } from '../metrics/metrics.module';
import { DeliveryQueueRepository } from './delivery-queue.repository';

/** How an attempt of a delivery ended: delivered, failed but to be tried again, or failed for good. */
export type DeliveryResult = 'delivered' | 'retrying' | 'failed';

@Injectable()
export class WebhooksMetrics {
  readonly deliveries: Counter<'result'>;
  readonly pending: Gauge;
  readonly eventsPurged: Counter;

  constructor(registry: MetricsRegistry, db: QuotaDatabase, queue: DeliveryQueueRepository) {
    this.deliveries = new Counter({
      name: 'quota_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by result: delivered, retrying (failed, tried again later) or failed (for good).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.eventsPurged = new Counter({
      name: 'quota_webhook_events_purged_total',
      help: 'Events deleted from the webhook event log (with their delivery log) past WEBHOOK_RETENTION_DAYS.',
      registers: [registry],
    });
    // Read from the database at each scrape, like the hold gauges: the same deployment-wide figure
    // on every instance (use max, not sum), left out of a scrape while the database is away.
    this.pending = new Gauge({
      name: 'quota_webhook_deliveries_pending',
      help: 'Webhook deliveries not yet delivered nor failed for good, over every subscription (read from the database at each scrape).',
      registers: [registry],
      async collect() {
        const pending = await db.read((s) => queue.pendingCount(s)).catch(() => null);
        if (pending !== null) this.set(pending);
      },
    });
  }
}
