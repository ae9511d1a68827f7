import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { DatabaseModule } from '../database/database.module';
import { EventsModule } from '../events/events.module';
import { MaintenanceModule } from '../maintenance/maintenance.module';
import { DeliveryQueueRepository } from './delivery-queue.repository';
import { DeliveryWorker } from './delivery-worker.service';
import { DestinationPolicy } from './destination-policy';
import { WebhookRetention } from './webhook-retention.service';
import { WebhookSender } from './webhook-sender';
import { WebhooksMetrics } from './webhooks.metrics';

/**
 * Webhook delivery workers: on APP_ROLE worker and all they send the pending deliveries of the
 * event log, signed, with retries, and purge the log past WEBHOOK_RETENTION_DAYS. Every role
 * reports the queue's metrics.
 */
@Module({
  imports: [DatabaseModule, EventsModule, MaintenanceModule],
  providers: [
    DeliveryQueueRepository,
    WebhooksMetrics,
    {
      provide: WebhookSender,
      inject: [AppConfig],
      useFactory: (config: AppConfig) =>
        new WebhookSender(new DestinationPolicy(config.webhooks), config.webhooks.timeoutMs),
    },
    DeliveryWorker,
    WebhookRetention,
  ],
  exports: [DeliveryWorker, WebhookRetention],
})
export class WebhookDeliveryModule {}
