import type { ResetPeriod } from '../quota/entities/quota-config.entity';
import { nextResetAt } from '../quota/reset-schedule';

const LOOKBACK_DAYS: Record<Exclude<ResetPeriod, 'none'>, number> = { daily: 2, weekly: 8, monthly: 32 };

/**
 * The start of the period that contains `now`: the latest calendar boundary (midnight, Monday,
 * the 1st, in the zone) at or before it. Derived from the fixed calendar, never from the last
 * run, so periods do not drift.
 */
export function currentPeriodStart(period: Exclude<ResetPeriod, 'none'>, now: Date, timeZone: string): Date {
  let start = nextResetAt(period, new Date(now.getTime() - LOOKBACK_DAYS[period] * 86_400_000), timeZone)!;
  for (;;) {
    const next = nextResetAt(period, start, timeZone)!;
    if (next.getTime() > now.getTime()) return start;
    start = next;
  }
}

/** Unique per config (with config_id) and period. */
export function periodKey(period: Exclude<ResetPeriod, 'none'>, start: Date): string {
  return `${period}:${start.toISOString()}`;
}
