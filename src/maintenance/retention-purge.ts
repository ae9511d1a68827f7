import type { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import type { QuotaDatabase } from '../database/database';
import type { SqlSession } from '../database/sql-session';
import type { WriteFreeze } from './write-freeze';

const DAY_MS = 86_400_000;
const PURGE_INTERVAL_MS = 3_600_000;

/** One table's retention: what it keeps, and how to find and delete what it no longer keeps. */
export interface RetentionRule {
  /** The scheduler's name for the hourly purge. */
  readonly name: string;
  /** What is deleted, in the log's words ("anomalies", "webhook events"). */
  readonly rows: string;
  /** Days kept; 0 keeps every row for ever. */
  readonly days: number;
  /** Rows per delete transaction. */
  readonly batch: number;
  /** Ids of up to `limit` rows older than `cutoff`, oldest first (a plain read). */
  olderThan(s: SqlSession, cutoff: Date, limit: number): Promise<string[]>;
  /** Deletes what is still there of these rows; returns how many went. */
  delete(s: SqlSession, ids: readonly string[]): Promise<number>;
  /** Counts the rows deleted (the rule's metric). */
  deleted(count: number): void;
}

/**
 * The hourly purge of a table past its retention, on the instances that run background work:
 * oldest first, in short batches (read the ids, then delete them by primary key in a transaction of
 * their own, so no statement locks a range that writers insert into). Every instance may purge at
 * the same time; a batch deletes whatever is still there. Paused during a write freeze.
 */
export class RetentionPurge {
  private running: Promise<number> | null = null;

  constructor(
    private readonly rule: RetentionRule,
    private readonly db: QuotaDatabase,
    private readonly scheduler: SchedulerRegistry,
    private readonly freeze: WriteFreeze,
    private readonly logger: Logger,
  ) {}

  /** Schedules the hourly purge (unless the rule keeps everything). */
  start(): void {
    if (this.rule.days === 0) return;
    const tick = this.freeze.whileWritable(async () => {
      if (this.running) return;
      await this.purge().catch((err: unknown) => this.logger.error({ err }, `purging old ${this.rule.rows} failed`));
    });
    scheduleEvery(this.scheduler, this.rule.name, PURGE_INTERVAL_MS, tick);
  }

  /** Stops the schedule and waits for a purge in progress. */
  async stop(): Promise<void> {
    stopScheduled(this.scheduler, this.rule.name);
    await this.running?.catch(() => undefined);
  }

  /** Deletes the rows older than now − the retention; returns how many. */
  async purge(now = new Date()): Promise<number> {
    const { days } = this.rule;
    if (days === 0) return 0;
    const work = this.deleteBefore(new Date(now.getTime() - days * DAY_MS));
    this.running = work;
    try {
      const deleted = await work;
      if (deleted > 0) {
        this.rule.deleted(deleted);
        this.logger.info({ deleted, retention_days: days }, `deleted ${this.rule.rows} past their retention`);
      }
      return deleted;
    } finally {
      this.running = null;
    }
  }

  private async deleteBefore(cutoff: Date): Promise<number> {
    const { batch } = this.rule;
    let deleted = 0;
    for (;;) {
      const ids = await this.db.read((s) => this.rule.olderThan(s, cutoff, batch));
      if (ids.length === 0) return deleted;
      deleted += await this.db.transaction((s) => this.rule.delete(s, ids), { retries: 2 });
      if (ids.length < batch) return deleted;
    }
  }
}
