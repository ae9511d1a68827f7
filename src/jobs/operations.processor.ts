import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Injectable, type BeforeApplicationShutdown, type Type } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import type { AppConfig } from '../config/app-config';
import { redisErrorListener } from '../redis/redis.module';
import { JobName, OPERATIONS_QUEUE, parseRunOperationPayload } from './jobs.constants';
import { OperationRunner } from './operation-runner.service';
import { bullConnectionsReady, QueueDriver } from './queue-driver';
import { ResetScheduler } from './reset-scheduler.service';

/** The BullMQ side: validates the payload and calls a service, nothing else. */
@Injectable()
export class OperationsProcessor extends WorkerHost implements BeforeApplicationShutdown {
  private readonly logRedisError: (err: unknown) => void;

  constructor(
    private readonly runner: OperationRunner,
    private readonly resets: ResetScheduler,
    private readonly queue: QueueDriver,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {
    super();
    this.logRedisError = redisErrorListener(logger, 'worker', 'job worker (redis) error');
  }

  /**
   * Bound by @nestjs/bullmq right after it creates the worker, before any connection attempt can
   * fail: without a listener BullMQ prints every failed reconnect (both of the worker's
   * connections) with console.error.
   */
  @OnWorkerEvent('error')
  onWorkerError(err: Error): void {
    this.logRedisError(err);
  }

  /**
   * The runner is stopped first: Nest runs this hook before the runner's own (this class depends
   * on it), and a graceful close waits for the running job, which only ends early once the runner
   * stops on a chunk boundary. Then, with Redis up, the worker closes gracefully: BullMQ records
   * the job's end before its connections quit. With Redis down that close never returns: it waits
   * for its blocking connection to report 'end', which ioredis never emits for a connection parked
   * between reconnect attempts, and for commands that wait for Redis to come back. So the worker is
   * closed with force (connections dropped). Nothing is lost: the chunk is committed in MySQL, and
   * the job, still active in Redis, is taken over by another worker once its lock expires, or queued
   * again by the sweep. @nestjs/bullmq's own close, later, finds the worker closed.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.runner.stop();
    const reachable = await bullConnectionsReady(this.worker);
    if (!reachable) {
      this.logger.warn('redis is unreachable: stopping the job worker without waiting for redis');
    }
    await this.worker.close(!reachable);
  }

  async process(job: Job): Promise<void> {
    switch (job.name as JobName) {
      case JobName.RunOperation: {
        const { operationId } = parseRunOperationPayload(job.data);
        const attempts = job.opts.attempts ?? 1;
        await this.runner.run(operationId, {
          finalAttempt: job.attemptsMade + 1 >= attempts,
          lead: true,
          onPlanned: (pending) => this.queue.startHelpers(operationId, pending - 1),
        });
        return;
      }
      case JobName.RunOperationChunks: {
        const { operationId } = parseRunOperationPayload(job.data);
        await this.runner.run(operationId, { finalAttempt: false, lead: false });
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
 * The processor with this deployment's worker options: JOBS_CONCURRENCY jobs at a time (each an
 * operation's run or a helper of one, so that many chunk runners per process), and the lock
 * duration from the config.
 */
export function configuredProcessor(config: AppConfig): Type<OperationsProcessor> {
  class ConfiguredOperationsProcessor extends OperationsProcessor {}
  Processor(OPERATIONS_QUEUE, {
    concurrency: config.jobs.concurrency,
    lockDuration: config.jobs.lockDurationMs,
    stalledInterval: Math.max(1000, Math.floor(config.jobs.lockDurationMs / 2)),
    maxStalledCount: 5,
  })(ConfiguredOperationsProcessor);
  return ConfiguredOperationsProcessor;
}
