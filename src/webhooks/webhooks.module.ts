import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { DatabaseModule } from '../database/database.module';
import { EventsModule } from '../events/events.module';
import { DeliveryLogRepository } from './delivery-log.repository';
import { SubscriptionsController } from './subscriptions.controller';
import { SubscriptionsRepository } from './subscriptions.repository';
import { SubscriptionsService } from './subscriptions.service';

/** Webhook subscriptions, their secrets and delivery logs over HTTP (the delivery workers are their own module). */
@Module({
  imports: [DatabaseModule, AuditModule, EventsModule],
  controllers: [SubscriptionsController],
  providers: [SubscriptionsRepository, DeliveryLogRepository, SubscriptionsService],
  exports: [SubscriptionsService],
})
export class WebhooksModule {}
