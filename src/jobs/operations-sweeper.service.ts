import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { AppConfig } from '../config/app-config';
import { OperationRecorder } from '../quota/ledger-bulk.service';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { OperationsRepository } from './operations.repository';
import { QueueDriver } from './queue-driver';
import { ResetScheduler } from './reset-scheduler.service';

const SWEEP_BATCH = 1000;
/** The HTTP answer does not wait longer than this for the queue; the sweep queues what did not make it. */
const ENQUEUE_TIMEOUT_MS = 2000;
/** The scheduler's names for the sweep (JOBS_SWEEP_INTERVAL_MS) and, without Redis, the reset tick (JOBS_RESET_TICK_MS). */
export const SWEEP_INTERVAL = 'operations-sweep';
export const RESET_TICK_INTERVAL = 'reset-tick';

/**
 * Keeps the queue in line with the database. Every process queues the operations it records; a
 * process that consumes jobs also, at start-up and periodically, queues again every operation that
 * is queued or running in the database without a live job (Redis restarted empty, a lost enqueue),
 * and runs the reset tick (the embedded mode's only scheduler; a catch-up with BullMQ).
 */
@Injectable()
export class OperationsSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly queue: QueueDriver,
    private readonly resets: ResetScheduler,
    private readonly recorder: OperationRecorder,
    private readonly config: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly scheduler: SchedulerRegistry,
    private readonly operations: OperationsRepository,
    private readonly freeze: WriteFreeze,
  ) {}

  get consumes(): boolean {
    return this.config.role !== 'api';
  }

  onApplicationBootstrap(): void {
    this.recorder.onAnnounce((id) => void this.enqueueQuietly(id));
    if (!this.consumes) return;
    if (this.config.redis) {
      // Not awaited: with Redis unreachable BullMQ waits for it, and start-up (health probes,
      // the API of an `all` process) must not wait with it.
      void this.queue.scheduleResetTick(this.config.jobs.resetTickMs).catch((err: unknown) => {
        this.logger.warn({ err }, 'could not schedule the reset tick; the sweep retries');
      });
    } else {
      this.every(RESET_TICK_INTERVAL, this.config.jobs.resetTickMs, () => this.resets.tick());
    }
    this.every(SWEEP_INTERVAL, this.config.jobs.sweepIntervalMs, () => this.sweep());
    // Start-up, and the end of a write freeze: catch up a missed reset and pick up whatever a
    // previous process left unfinished or the freeze paused.
    const catchUp = (what: string) =>
      this.guard(what, async () => {
        await this.resets.tick();
        await this.sweep();
      });
    this.freeze.onThaw(() => void catchUp('catch-up after the write freeze'));
    void catchUp('start-up sweep');
  }

  onApplicationShutdown(): void {
    stopScheduled(this.scheduler, RESET_TICK_INTERVAL);
    stopScheduled(this.scheduler, SWEEP_INTERVAL);
  }

  /** Queues every unfinished operation again (a no-op for those whose job waits or runs). */
  async sweep(): Promise<number> {
    // Nothing would run while frozen; the end of the freeze sweeps at once.
    if (this.freeze.isReadOnly()) return 0;
    let after = '0';
    let queued = 0;
    for (;;) {
      const ids = await this.db.read((s) => this.operations.activeIdsAfter(s, after, SWEEP_BATCH));
      for (const id of ids) {
        await this.queue.enqueue(id);
        queued++;
      }
      if (ids.length < SWEEP_BATCH) return queued;
      after = ids[ids.length - 1];
    }
  }

  /** Queues a freshly recorded operation; failures are logged, never surfaced (the row is what counts). */
  async enqueueQuietly(operationId: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.queue.enqueue(operationId),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${ENQUEUE_TIMEOUT_MS} ms`)), ENQUEUE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.logger.warn({ err, operationId }, 'could not queue the operation now; the sweep will');
    } finally {
      clearTimeout(timer);
    }
  }

  private every(name: string, ms: number, work: () => Promise<unknown>): void {
    scheduleEvery(this.scheduler, name, ms, () => this.guard('periodic job work', work));
  }

  private async guard(what: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.logger.warn({ err }, `${what} failed`);
    }
  }
}
