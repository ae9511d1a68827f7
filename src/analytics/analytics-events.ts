import type { NewEvent } from '../events/event-types';
import type { AnomalyView } from './dto';
import type { LedgerRow } from './ledger-fold';
import type { UsageThreshold } from './threshold-crossings';

/** `anomaly.detected`: the anomaly as GET /admin/quota/anomalies shows it. */
export function anomalyDetected(anomaly: AnomalyView, at: Date): NewEvent {
  return { type: 'anomaly.detected', data: { ...anomaly }, source: `anomaly:${anomaly.id}`, at };
}

/** A ledger row that took its member's usage across a threshold of its type's max_quota. */
export interface ThresholdCrossing {
  readonly row: LedgerRow;
  readonly externalId: string;
  readonly membershipType: string;
  readonly maxQuota: number;
  readonly threshold: UsageThreshold;
}

/** `quota.threshold_reached`: the member as the API names it, the level, and the row that crossed it. */
export function thresholdReached(crossing: ThresholdCrossing, at: Date): NewEvent {
  const { row } = crossing;
  return {
    type: 'quota.threshold_reached',
    data: {
      member_id: row.memberId,
      external_id: crossing.externalId,
      membership_type: crossing.membershipType,
      threshold: crossing.threshold,
      max_quota: crossing.maxQuota,
      balance: row.balanceAfter,
      history_id: String(row.id),
      reason: row.reason,
      occurred_at: new Date(row.createdAtMs).toISOString(),
    },
    source: `history:${row.id}`,
    at,
  };
}
