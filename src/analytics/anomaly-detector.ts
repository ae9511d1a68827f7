import type { AnomalyConfig } from '../config/app-config';
import type { LedgerRow } from './ledger-fold';

export const ANOMALY_KINDS = ['usage_spike', 'cohort_outlier', 'burst', 'threshold_80', 'threshold_100'] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

/** Per-member detection state, persisted in quota_member_usage between runs. */
export interface MemberUsage {
  readonly memberId: string;
  bucketStartMs: number;
  bucketUnits: number;
  ewmaMean: number;
  ewmaVar: number;
  windowsSeen: number;
  spikeBucketMs: number;
  cohortBucketMs: number;
  burstStartMs: number;
  burstCount: number;
  thresholdLevel: number;
  periodKey: number;
}

/** Per-type state: the exponentially weighted mean of a closed window of an active member. */
export interface CohortUsage {
  readonly membershipType: string;
  ewmaMean: number;
  samples: number;
}

export interface DetectedAnomaly {
  readonly memberId: string;
  readonly membershipType: string;
  readonly kind: AnomalyKind;
  readonly dedupeKey: string;
  readonly occurredAtMs: number;
  readonly observed: number;
  readonly expected: number | null;
  readonly detail: string;
}

/** Weight of the newest window in a member's baseline: about the last 12 windows count (1 h at 5 min). */
export const MEMBER_ALPHA = 2 / (12 + 1);
/** The cohort moves slower: it summarises many members. */
export const COHORT_ALPHA = 0.02;
/** Idle windows folded into a baseline at most; after that many zeros the baseline is ~0 anyway. */
const MAX_IDLE_WINDOWS = 100;

export function newMemberUsage(memberId: string): MemberUsage {
  return {
    memberId,
    bucketStartMs: 0,
    bucketUnits: 0,
    ewmaMean: 0,
    ewmaVar: 0,
    windowsSeen: 0,
    spikeBucketMs: -1,
    cohortBucketMs: -1,
    burstStartMs: 0,
    burstCount: 0,
    thresholdLevel: 0,
    periodKey: 0,
  };
}

export function newCohortUsage(membershipType: string): CohortUsage {
  return { membershipType, ewmaMean: 0, samples: 0 };
}

/** Exponentially weighted mean and variance (West / Finch incremental form). */
function observeWindow(state: MemberUsage, units: number): void {
  if (state.windowsSeen === 0) {
    state.ewmaMean = units;
    state.ewmaVar = 0;
  } else {
    const diff = units - state.ewmaMean;
    const increment = MEMBER_ALPHA * diff;
    state.ewmaMean += increment;
    state.ewmaVar = (1 - MEMBER_ALPHA) * (state.ewmaVar + diff * increment);
  }
  state.windowsSeen += 1;
}

/**
 * Turns the ledger into anomaly events, row by row in id order. Pure: state goes in and out, so the
 * processor can persist it and the tests can drive it with synthetic rows.
 *
 * - usage_spike: the member's consumption in the current window is above its own baseline, the
 *   exponentially weighted mean of its past windows (idle windows count as 0) plus zScore times the
 *   weighted deviation, floored at half the mean and 1 unit so a perfectly steady member is not
 *   flagged for a small wobble. Needs minBaselineWindows of history.
 * - cohort_outlier: the window is cohortFactor times the type's mean per active member-window.
 * - burst: burstCount consumes within burstSeconds (counted from the first consume of the run).
 * - threshold_80 / threshold_100: max_quota - balance_after crossed 80% / 100% of max_quota; once
 *   per member per period (a periodic_reset row starts a new period).
 * Spikes and cohort outliers need at least minUnits in the window, and fire once per window.
 */
export class AnomalyDetector {
  private readonly windowMs: number;

  constructor(private readonly config: AnomalyConfig) {
    this.windowMs = config.windowSeconds * 1000;
  }

  observe(row: LedgerRow, membershipType: string, state: MemberUsage, cohort: CohortUsage): DetectedAnomaly[] {
    if (row.reason === 'periodic_reset') {
      state.thresholdLevel = 0;
      state.periodKey = row.id;
      return [];
    }
    if (row.reason !== 'consumption' || row.delta >= 0) return [];
    const units = -row.delta;
    const t = row.createdAtMs;
    const found: DetectedAnomaly[] = [];
    const emit = (kind: AnomalyKind, scope: number, observed: number, expected: number | null, detail: string) =>
      found.push({
        memberId: row.memberId,
        membershipType,
        kind,
        dedupeKey: `${row.memberId}:${kind}:${scope}`,
        occurredAtMs: t,
        observed,
        expected,
        detail,
      });

    this.advanceWindow(state, cohort, t);
    state.bucketUnits += units;
    const c = this.config;
    const x = state.bucketUnits;

    if (x >= c.minUnits && state.windowsSeen >= c.minBaselineWindows && state.spikeBucketMs !== state.bucketStartMs) {
      const deviation = Math.max(Math.sqrt(state.ewmaVar), state.ewmaMean / 2, 1);
      const limit = state.ewmaMean + c.zScore * deviation;
      if (x > limit) {
        state.spikeBucketMs = state.bucketStartMs;
        emit(
          'usage_spike',
          state.bucketStartMs,
          x,
          round(state.ewmaMean),
          `consumed ${x} in a ${c.windowSeconds}s window; own baseline ${round(state.ewmaMean)} ± ${round(deviation)} (limit ${round(limit)})`,
        );
      }
    }

    if (
      x >= c.minUnits &&
      cohort.samples >= c.cohortMinSamples &&
      state.cohortBucketMs !== state.bucketStartMs &&
      x >= c.cohortFactor * cohort.ewmaMean
    ) {
      state.cohortBucketMs = state.bucketStartMs;
      emit(
        'cohort_outlier',
        state.bucketStartMs,
        x,
        round(cohort.ewmaMean),
        `consumed ${x} in a ${c.windowSeconds}s window; ${membershipType} members average ${round(cohort.ewmaMean)}`,
      );
    }

    if (t - state.burstStartMs > c.burstSeconds * 1000 || state.burstCount === 0) {
      state.burstStartMs = t;
      state.burstCount = 0;
    }
    state.burstCount += 1;
    if (state.burstCount === c.burstCount) {
      emit(
        'burst',
        state.burstStartMs,
        state.burstCount,
        null,
        `${state.burstCount} consumes within ${Math.max(1, Math.round((t - state.burstStartMs) / 1000))}s (limit ${c.burstCount} in ${c.burstSeconds}s)`,
      );
    }

    const max = row.maxQuota ?? 0;
    if (max > 0) {
      const used = (max - row.balanceAfter) / max;
      for (const level of [80, 100] as const) {
        if (used * 100 >= level && state.thresholdLevel < level) {
          state.thresholdLevel = level;
          emit(
            level === 80 ? 'threshold_80' : 'threshold_100',
            state.periodKey,
            max - row.balanceAfter,
            max,
            `${round(used * 100)}% of max_quota ${max} used (balance ${row.balanceAfter})`,
          );
        }
      }
    }
    return found;
  }

  /** Closes the member's window(s) up to the one containing t, feeding its baseline and the cohort. */
  private advanceWindow(state: MemberUsage, cohort: CohortUsage, t: number): void {
    const start = Math.floor(t / this.windowMs) * this.windowMs;
    if (state.windowsSeen === 0 && state.bucketUnits === 0 && state.bucketStartMs === 0) {
      state.bucketStartMs = start;
      return;
    }
    if (start <= state.bucketStartMs) return;
    const closed = state.bucketUnits;
    observeWindow(state, closed);
    if (closed > 0) {
      cohort.ewmaMean = cohort.samples === 0 ? closed : cohort.ewmaMean + COHORT_ALPHA * (closed - cohort.ewmaMean);
      cohort.samples += 1;
    }
    const idle = Math.min(MAX_IDLE_WINDOWS, (start - state.bucketStartMs) / this.windowMs - 1);
    for (let i = 0; i < idle; i++) observeWindow(state, 0);
    state.bucketStartMs = start;
    state.bucketUnits = 0;
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
