import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Injectable, type Type } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import type { AppConfig } from '../config/app-config';
import { JobName, OPERATIONS_QUEUE, parseRunOperationPayload } from './jobs.constants';
import { OperationRunner } from './operation-runner.service';
import { ResetScheduler } from './reset-scheduler.service';

/** The BullMQ side: validates the payload and calls a service, nothing else. */
@Injectable()
export class OperationsProcessor extends WorkerHost {
  constructor(
    private readonly runner: OperationRunner,
    private readonly resets: ResetScheduler,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {
    super();
  }

  async process(job: Job): Promise<void> {
    switch (job.name as JobName) {
      case JobName.RunOperation: {
        const { operationId } = parseRunOperationPayload(job.data);
        const attempts = job.opts.attempts ?? 1;
        await this.runner.run(operationId, { finalAttempt: job.attemptsMade + 1 >= attempts });
        return;
      }
      case JobName.ResetTick:
        await this.resets.tick();
        return;
      default:
        this.logger.warn({ jobName: job.name, jobId: job.id }, 'unknown job ignored');
    }
  }
}

/**
 * The processor with this deployment's worker options (lock duration from the config, one
 * operation at a time per process: operations are database-bound).
 */
export function configuredProcessor(config: AppConfig): Type<OperationsProcessor> {
  class ConfiguredOperationsProcessor extends OperationsProcessor {}
  Processor(OPERATIONS_QUEUE, {
    concurrency: 1,
    lockDuration: config.jobs.lockDurationMs,
    stalledInterval: Math.max(1000, Math.floor(config.jobs.lockDurationMs / 2)),
    maxStalledCount: 5,
  })(ConfiguredOperationsProcessor);
  return ConfiguredOperationsProcessor;
}
