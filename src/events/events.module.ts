import { Module } from '@nestjs/common';
import { EventsRepository } from './events.repository';

/**
 * The event log behind webhooks: producers (quota, jobs, analytics) record events in their own
 * transactions; the webhooks module delivers them.
 */
@Module({
  providers: [EventsRepository],
  exports: [EventsRepository],
})
export class EventsModule {}
