import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationShutdown } from '@nestjs/common';
import type { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { redisErrorListener } from '../redis/redis.module';
import {
  JOB_ATTEMPTS,
  JOB_BACKOFF_MS,
  JobName,
  OPERATIONS_QUEUE,
  MAX_RUNS_PER_OPERATION,
  RESET_TICK_SCHEDULER_ID,
  helperJobId,
  operationJobId,
} from './jobs.constants';
import { OperationRunner } from './operation-runner.service';

/**
 * Where operation jobs go: BullMQ when REDIS_HOST is set, an in-process queue otherwise. Both run
 * the same OperationRunner; the database row, not the queue, is the source of truth.
 */
export abstract class QueueDriver {
  /** Queues a run of the operation unless one is already waiting or running. */
  abstract enqueue(operationId: string): Promise<void>;
  /**
   * Starts up to `count` helper runs of a planned operation (fewer past MAX_RUNS_PER_OPERATION);
   * each takes the operation's free chunks and ends when there are none.
   */
  abstract startHelpers(operationId: string, count: number): Promise<void>;
  /** Consumer side: makes sure the periodic reset tick is scheduled (once, however many instances). */
  abstract scheduleResetTick(everyMs: number): Promise<void>;
}

/**
 * Whether every connection of a BullMQ queue or worker is up at this moment. A connection that
 * has not connected yet counts as down: its promise stays pending for as long as Redis is away.
 */
export async function bullConnectionsReady(owner: Queue | Worker): Promise<boolean> {
  const backend = owner.getBackend();
  const clients = [backend.client, backend.blockingClient].filter((c) => c !== undefined);
  const notYet = new Promise<null>((resolve) => setImmediate(() => resolve(null)));
  const settled = await Promise.all(clients.map((c) => Promise.race([c.catch(() => null), notYet])));
  return settled.every((client) => client?.status === 'ready');
}

@Injectable()
export class BullQueueDriver extends QueueDriver implements BeforeApplicationShutdown, OnApplicationShutdown {
  constructor(
    @InjectQueue(OPERATIONS_QUEUE) private readonly queue: Queue,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    super();
    // Attached as soon as the queue exists: BullMQ prints an unlistened 'error' with console.error.
    queue.on('error', redisErrorListener(logger, 'queue', 'job queue (redis) error'));
  }

  /**
   * @nestjs/bullmq closes the queue on application shutdown with QUIT, which ioredis holds back
   * behind the commands queued while Redis is unreachable (an enqueue during the outage), so
   * shutdown would wait for Redis to return. With Redis down there is nothing to finish: the
   * operations are recorded in the database and the sweep queues them later, so the connection is
   * dropped instead (the backend's forced close; the library's own close then finds it closed).
   * Checked again after the HTTP drain, in case Redis went away meanwhile.
   */
  beforeApplicationShutdown(): Promise<void> {
    return this.dropIfUnreachable();
  }

  onApplicationShutdown(): Promise<void> {
    return this.dropIfUnreachable();
  }

  private async dropIfUnreachable(): Promise<void> {
    if (this.queue.closing || (await bullConnectionsReady(this.queue))) return;
    await this.queue.getBackend().close(true);
    await this.queue.close();
  }

  async enqueue(operationId: string): Promise<void> {
    const jobId = operationJobId(operationId);
    const existing = await this.queue.getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return;
      // A finished job keeps its id: remove it so the operation (still unfinished in the database) runs again.
      await existing.remove().catch(() => undefined);
    }
    await this.queue.add(
      JobName.RunOperation,
      { operationId },
      {
        jobId,
        attempts: JOB_ATTEMPTS,
        backoff: { type: 'exponential', delay: JOB_BACKOFF_MS },
        removeOnComplete: true,
        removeOnFail: 100,
      },
    );
  }

  /**
   * One job per helper, so that every worker's free slots can take some: BullMQ hands jobs to
   * whichever worker asks. A helper whose job still waits or runs is not added twice (same id).
   */
  async startHelpers(operationId: string, count: number): Promise<void> {
    const n = Math.min(count, MAX_RUNS_PER_OPERATION - 1);
    if (n < 1) return;
    await this.queue.addBulk(
      Array.from({ length: n }, (_, i) => ({
        name: JobName.RunOperationChunks,
        data: { operationId },
        opts: { jobId: helperJobId(operationId, i + 1), removeOnComplete: true, removeOnFail: true },
      })),
    );
  }

  async scheduleResetTick(everyMs: number): Promise<void> {
    await this.queue.upsertJobScheduler(
      RESET_TICK_SCHEDULER_ID,
      { every: everyMs },
      { name: JobName.ResetTick, data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  }
}

/**
 * The embedded mode's queue: one operation at a time in this process, with the same retries and
 * backoff as the BullMQ jobs, worked by JOBS_CONCURRENCY runs at once (the operation's own run and
 * helpers it starts once planned; SQLite takes their transactions one after another). Only
 * processes whose role consumes jobs run anything.
 */
@Injectable()
export class InProcessQueueDriver extends QueueDriver implements BeforeApplicationShutdown {
  private readonly pending: string[] = [];
  private readonly known = new Set<string>();
  private readonly helpers = new Set<Promise<void>>();
  private draining: Promise<void> | null = null;
  private stopped = false;
  private readonly consumes: boolean;
  private readonly concurrency: number;

  constructor(
    private readonly runner: OperationRunner,
    config: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {
    super();
    this.consumes = config.role !== 'api';
    this.concurrency = config.jobs.concurrency;
  }

  enqueue(operationId: string): Promise<void> {
    if (!this.consumes || this.stopped || this.known.has(operationId)) return Promise.resolve();
    this.known.add(operationId);
    this.pending.push(operationId);
    this.kick();
    return Promise.resolve();
  }

  /** Helpers beside the operation's own run, up to JOBS_CONCURRENCY runs in all; the run waits for them. */
  startHelpers(operationId: string, count: number): Promise<void> {
    const n = Math.min(count, this.concurrency - 1 - this.helpers.size, MAX_RUNS_PER_OPERATION - 1);
    for (let i = 0; i < n && !this.stopped; i++) {
      const helper = this.runner
        .run(operationId, { finalAttempt: false, lead: false })
        .catch((err: unknown) => this.logger.warn({ err, operationId }, 'operation helper failed'))
        .finally(() => this.helpers.delete(helper));
      this.helpers.add(helper);
    }
    return Promise.resolve();
  }

  /** The embedded mode ticks with a timer (see ResetScheduler); nothing to schedule. */
  scheduleResetTick(): Promise<void> {
    return Promise.resolve();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    await this.draining;
    await Promise.allSettled([...this.helpers]);
  }

  private kick(): void {
    if (this.draining || this.stopped) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      if (this.pending.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0 && !this.stopped && !this.runner.isStopping) {
      const operationId = this.pending.shift()!;
      try {
        for (let attempt = 1; attempt <= JOB_ATTEMPTS && !this.runner.isStopping; attempt++) {
          try {
            await this.runner.run(operationId, {
              finalAttempt: attempt === JOB_ATTEMPTS,
              lead: true,
              onPlanned: (pendingChunks) => this.startHelpers(operationId, pendingChunks - 1),
            });
            break;
          } catch (err) {
            this.logger.warn({ err, operationId, attempt }, 'operation attempt failed');
            if (attempt < JOB_ATTEMPTS) await new Promise((r) => setTimeout(r, JOB_BACKOFF_MS * 2 ** (attempt - 1)));
          }
        }
        // The next operation starts with every slot free.
        await Promise.allSettled([...this.helpers]);
      } finally {
        this.known.delete(operationId);
      }
    }
  }
}
