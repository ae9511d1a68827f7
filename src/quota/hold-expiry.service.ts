import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { HoldsRepository } from './holds.repository';
import { HoldsService } from './holds.service';

export const HOLD_EXPIRY_INTERVAL = 'hold-expiry';
/** Holds expired per read of the due list; a sweep reads again until none is due. */
const SWEEP_BATCH = 200;

/**
 * Gives back the units of holds past their time, every QUOTA_HOLD_EXPIRY_INTERVAL_MS (1 s by
 * default) on every instance, and at start-up (so holds that lapsed while no instance ran come
 * back at once). Paused during a write freeze: holds due meanwhile read `expired` at once and give
 * their units back at the first sweep after it. Instances need no coordination: each hold's expiry is a conditional update that
 * only one transaction can match (HoldsService.expire), and a hold that another instance expired
 * meanwhile is skipped.
 */
@Injectable()
export class HoldExpiryService implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly holds: HoldsRepository,
    private readonly service: HoldsService,
    private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly freeze: WriteFreeze,
  ) {}

  onApplicationBootstrap(): void {
    const sweep = this.freeze.whileWritable(() => this.sweepQuietly());
    scheduleEvery(this.scheduler, HOLD_EXPIRY_INTERVAL, this.config.quota.holdExpiryIntervalMs, sweep);
    void sweep();
  }

  onApplicationShutdown(): void {
    stopScheduled(this.scheduler, HOLD_EXPIRY_INTERVAL);
  }

  /**
   * Expires every hold due by `now`; returns how many this call expired. A hold that cannot be
   * given back now (its units would take the balance above 2^31-1) is logged and left for the next
   * sweep: it must not keep the holds behind it (other members' too) from coming back.
   */
  async sweep(now = new Date()): Promise<number> {
    let expired = 0;
    const skipped = new Set<string>();
    for (;;) {
      const limit = SWEEP_BATCH + skipped.size;
      const due = await this.db.read((s) => this.holds.due(s, now, limit));
      const todo = due.filter((hold) => !skipped.has(hold.id));
      for (const hold of todo) {
        try {
          if (await this.service.expire(hold, now)) expired++;
        } catch (err) {
          skipped.add(hold.id);
          this.logger.warn(
            { err, holdId: hold.id, memberId: hold.memberId },
            'an expired hold could not be given back',
          );
        }
      }
      // Every hold of `todo` has left the due list or is skipped from now on, so this ends.
      if (due.length < limit || todo.length === 0) break;
    }
    return expired;
  }

  private async sweepQuietly(): Promise<void> {
    try {
      const expired = await this.sweep();
      if (expired > 0) this.logger.info({ expired }, 'expired holds given back');
    } catch (err) {
      this.logger.warn({ err }, 'the hold expiry sweep failed; the next run retries');
    }
  }
}
