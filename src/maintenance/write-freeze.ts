import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { AppError } from '../common/app-error';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { MetricsRegistry } from '../metrics/metrics.module';
import { WRITABLE, type MaintenanceState } from './maintenance.repository';
import { MaintenanceService, type MaintenanceActor, type MaintenanceChange } from './maintenance.service';

export const MAINTENANCE_POLL_INTERVAL = 'maintenance-poll';
/** What a refused write tells the client to wait: a restore takes minutes, not seconds. */
export const READ_ONLY_RETRY_AFTER_SECONDS = 60;

/**
 * This instance's view of the write freeze (contract §15). The switch lives in the database; each
 * instance reads it every MAINTENANCE_POLL_INTERVAL_MS (1 s) and keeps it in memory, so a write
 * path asks a boolean, never the database, and every instance obeys within two polls. The
 * instance that changes the switch applies it at once.
 *
 * Background work consults it through one of:
 * - `whileWritable(work)`: wraps periodic work (scheduleEvery, @Interval) so ticks do nothing while
 *   frozen; e.g. `scheduleEvery(registry, NAME, ms, freeze.whileWritable(() => this.deliverDue()))`;
 * - `isReadOnly()` between units of work (chunks, batches) to stop after the one in hand;
 * - `onThaw(listener)` to catch up at once when writes resume, rather than at the next tick.
 */
@Injectable()
export class WriteFreeze implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private state: MaintenanceState = WRITABLE;
  private readonly thawListeners: (() => void)[] = [];
  /** Whether the last poll failed, so an outage is logged when it starts and ends, not every second. */
  private pollFailing = false;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly maintenance: MaintenanceService,
    private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    registry: MetricsRegistry,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {
    const readOnly = () => this.isReadOnly();
    new Gauge({
      name: 'quota_read_only',
      help: 'Whether this instance refuses writes (write freeze, maintenance mode): 1 frozen, 0 writable.',
      registers: [registry],
      collect() {
        this.set(readOnly() ? 1 : 0);
      },
    });
  }

  /** Read before the application serves anything, so a process started during a freeze never writes. */
  async onModuleInit(): Promise<void> {
    await this.refresh();
  }

  onApplicationBootstrap(): void {
    scheduleEvery(this.scheduler, MAINTENANCE_POLL_INTERVAL, this.config.maintenance.pollIntervalMs, () =>
      this.refresh(),
    );
  }

  onApplicationShutdown(): void {
    stopScheduled(this.scheduler, MAINTENANCE_POLL_INTERVAL);
  }

  isReadOnly(): boolean {
    return this.state.readOnly;
  }

  get current(): MaintenanceState {
    return this.state;
  }

  /** The refusal of a write while frozen (503 read_only, Retry-After); nothing when writable. */
  assertWritable(): void {
    if (!this.state.readOnly) return;
    throw new AppError(
      'read_only',
      'The service is in maintenance (write freeze): reads work, changes are refused until it ends.',
      { retryAfterSeconds: READ_ONLY_RETRY_AFTER_SECONDS },
    );
  }

  /** Periodic work that skips its ticks while frozen (see the class comment). */
  whileWritable<T>(work: () => Promise<T>): () => Promise<T | undefined> {
    return () => (this.state.readOnly ? Promise.resolve(undefined) : work());
  }

  onThaw(listener: () => void): void {
    this.thawListeners.push(listener);
  }

  /** Flips the switch (audit logged in the same transaction); this instance obeys at once. */
  async change(actor: MaintenanceActor, change: MaintenanceChange): Promise<MaintenanceState> {
    const state = await this.db.transaction((s) => this.maintenance.change(s, actor, change), { entityManager: true });
    this.apply(state);
    return state;
  }

  /** Reads the switch; a failed read keeps the last known state (and is logged once per outage). */
  async refresh(): Promise<void> {
    try {
      const state = await this.db.read((s) => this.maintenance.read(s));
      if (this.pollFailing) this.logger.info('the maintenance switch can be read again');
      this.pollFailing = false;
      this.apply(state);
    } catch (err) {
      if (!this.pollFailing) {
        this.logger.warn(
          { err, read_only: this.state.readOnly },
          'could not read the maintenance switch; keeping the last known state',
        );
      }
      this.pollFailing = true;
    }
  }

  /** Takes a state read or written by this instance. */
  apply(state: MaintenanceState): void {
    const was = this.state.readOnly;
    this.state = state;
    if (was === state.readOnly) return;
    if (state.readOnly) {
      this.logger.warn({ reason: state.reason, by: state.changedBy }, 'write freeze: refusing writes');
      return;
    }
    this.logger.info({ by: state.changedBy }, 'write freeze lifted: writes resume');
    for (const listener of this.thawListeners) {
      try {
        listener();
      } catch (err) {
        this.logger.warn({ err }, 'a listener of the end of the write freeze failed');
      }
    }
  }
}
