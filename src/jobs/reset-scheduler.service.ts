import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { OperationRecorder } from '../quota/ledger-bulk.service';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { dbErrorKind, readTimestamp } from '../database/sql-session';
import { JobsClock } from './clock';
import { currentPeriodStart, periodKey } from './periods';
import { OperationsRepository } from './operations.repository';
import { QueueDriver } from './queue-driver';

/**
 * Creates the periodic resets that are due. Each config's current period (from the fixed
 * calendar in QUOTA_TIMEZONE) gets exactly one periodic_reset operation: the unique key
 * (config_id, period_key) makes every tick after the first a no-op, on any number of instances.
 * A service that was down over several boundaries creates only the current period's reset, so a
 * missed run is caught up once; a write freeze is such a pause (no reset is created while frozen;
 * the first tick after it creates the current period's). A period that began before the config existed is not reset.
 */
@Injectable()
export class ResetScheduler {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly recorder: OperationRecorder,
    private readonly queue: QueueDriver,
    private readonly clock: JobsClock,
    private readonly config: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly operations: OperationsRepository,
    private readonly freeze: WriteFreeze,
  ) {}

  /** Returns the ids of the reset operations it created. */
  async tick(): Promise<string[]> {
    if (this.freeze.isReadOnly()) return [];
    const now = this.clock.now();
    const configs = await this.db.read((s) => this.operations.resettableConfigs(s));
    const created: string[] = [];
    for (const config of configs) {
      if (config.reset_period === 'none') continue;
      const start = currentPeriodStart(config.reset_period, now, this.config.quota.timezone);
      if (start.getTime() <= readTimestamp(config.created_at).getTime()) continue;
      const key = periodKey(config.reset_period, start);
      try {
        const id = await this.db.transaction((s) =>
          this.recorder.record(s, {
            kind: 'periodic_reset',
            selection: { kind: 'membership_type', membershipType: config.membership_type },
            mode: 'set',
            value: Number(config.max_quota),
            reason: 'periodic_reset',
            note: `${config.reset_period} reset for the period starting ${start.toISOString()}`,
            payload: { config_id: String(config.id), period: config.reset_period, period_start: start.toISOString() },
            requestedBy: 'system',
            configId: String(config.id),
            periodKey: key,
            periodStartedAt: start,
          }),
        );
        created.push(id);
        this.logger.info({ operationId: id, configId: String(config.id), period: key }, 'periodic reset queued');
      } catch (err) {
        if (dbErrorKind(err) === 'duplicate') continue;
        throw err;
      }
    }
    for (const id of created) await this.queue.enqueue(id);
    return created;
  }
}
