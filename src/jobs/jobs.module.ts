import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import type { AppConfig } from '../config/app-config';
import { EventsModule } from '../events/events.module';
import { QuotaModule } from '../quota/quota.module';
import { JobsClock } from './clock';
import { OPERATIONS_QUEUE } from './jobs.constants';
import { JobsMetrics } from './jobs.metrics';
import { OperationChunksRepository } from './operation-chunks.repository';
import { OperationRunner } from './operation-runner.service';
import { OperationsController } from './operations.controller';
import { configuredProcessor } from './operations.processor';
import { OperationsRepository } from './operations.repository';
import { OperationsService } from './operations.service';
import { OperationsSweeper } from './operations-sweeper.service';
import { bullConnection } from './bull-connection';
import { BullQueueDriver, InProcessQueueDriver, QueueDriver } from './queue-driver';
import { ResetScheduler } from './reset-scheduler.service';

/**
 * Background operations: bulk adjustments, config propagation and periodic resets. With Redis the
 * queue is BullMQ (keys under the hash tag `{REDIS_PREFIX}` so Redis Cluster keeps a queue on one
 * slot); without it an in-process driver runs the same services. APP_ROLE=api records and queues
 * operations but never runs them; worker and all run them.
 */
@Module({})
export class JobsModule {
  static forRoot(config: AppConfig): DynamicModule {
    const consumes = config.role !== 'api';
    const redis = config.redis;
    const providers: Provider[] = [
      JobsClock,
      JobsMetrics,
      OperationsRepository,
      OperationChunksRepository,
      OperationRunner,
      OperationsService,
      ResetScheduler,
      OperationsSweeper,
      redis ? { provide: QueueDriver, useClass: BullQueueDriver } : InProcessQueueDriver,
      ...(redis ? [] : [{ provide: QueueDriver, useExisting: InProcessQueueDriver }]),
      ...(redis && consumes ? [configuredProcessor(config)] : []),
    ];
    return {
      module: JobsModule,
      imports: [
        QuotaModule,
        AuditModule,
        EventsModule,
        ...(redis
          ? [
              BullModule.forRoot({ connection: bullConnection(redis), prefix: `{${redis.prefix}}` }),
              BullModule.registerQueue({ name: OPERATIONS_QUEUE }),
            ]
          : []),
      ],
      controllers: [OperationsController],
      providers,
      exports: [OperationsService, ResetScheduler, OperationsSweeper, QueueDriver, JobsClock],
    };
  }
}
