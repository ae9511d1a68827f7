import { Injectable } from '@nestjs/common';
import { marks } from '../database/dialect';
import { readTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import { upsert } from './analytics-sql';
import {
  newCohortUsage,
  newMemberUsage,
  type AnomalyKind,
  type CohortUsage,
  type DetectedAnomaly,
  type MemberUsage,
} from './anomaly-detector';
import type { AnomalyView } from './dto';

/** Which anomalies a page lists; `beforeId` is the keyset cursor (exclusive). */
export interface AnomalyFilter {
  readonly since?: Date;
  readonly kind?: AnomalyKind;
  readonly memberId?: string;
  readonly beforeId?: string;
}

interface AnomalyRow {
  id: unknown;
  member_id: unknown;
  membership_type: string;
  kind: AnomalyKind;
  occurred_at: unknown;
  detected_at: unknown;
  observed: unknown;
  expected: unknown;
  detail: string | null;
}

const ANOMALY_COLUMNS = 'id, member_id, membership_type, kind, occurred_at, detected_at, observed, expected, detail';

/** A stored anomaly in the API's shape (GET /admin/quota/anomalies, and anomaly.detected events). */
function toAnomalyView(r: AnomalyRow): AnomalyView {
  return {
    id: String(r.id),
    member_id: String(r.member_id),
    membership_type: r.membership_type,
    kind: r.kind,
    occurred_at: readTimestamp(r.occurred_at).toISOString(),
    detected_at: readTimestamp(r.detected_at).toISOString(),
    observed: Number(r.observed),
    expected: r.expected === null || r.expected === undefined ? null : Number(r.expected),
    detail: r.detail,
  };
}

/** Keys per IN list when reading usage state and stored keys. */
const KEYS_PER_QUERY = 500;

/**
 * The SQL of anomaly detection: the stored events (quota_anomalies) and the detector's state per
 * member (quota_member_usage) and per type (quota_cohort_usage). Every method takes the session of
 * the caller's read or transaction.
 */
@Injectable()
export class AnomaliesRepository {
  /** Newest first, at most `limit` rows (keyset on the id: idx_quota_anomalies_detected_at / PRIMARY). */
  async page(s: SqlSession, filter: AnomalyFilter, limit: number): Promise<AnomalyView[]> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    if (filter.since !== undefined) {
      conditions.push('detected_at >= ?');
      params.push(sqlTimestamp(filter.since));
    }
    if (filter.kind !== undefined) {
      conditions.push('kind = ?');
      params.push(filter.kind);
    }
    if (filter.memberId !== undefined) {
      conditions.push('member_id = ?');
      params.push(filter.memberId);
    }
    if (filter.beforeId !== undefined) {
      conditions.push('id < ?');
      params.push(filter.beforeId);
    }
    const where = conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '';
    const rows = await s.rows<AnomalyRow>(
      `SELECT ${ANOMALY_COLUMNS} FROM quota_anomalies${where} ORDER BY id DESC LIMIT ?`,
      [...params, limit],
    );
    return rows.map(toAnomalyView);
  }

  /** The anomalies with these ids as the API shows them, in id order. */
  async viewsByIds(s: SqlSession, ids: readonly string[]): Promise<AnomalyView[]> {
    const views: AnomalyView[] = [];
    for (let i = 0; i < ids.length; i += KEYS_PER_QUERY) {
      const chunk = ids.slice(i, i + KEYS_PER_QUERY);
      const rows = await s.rows<AnomalyRow>(
        `SELECT ${ANOMALY_COLUMNS} FROM quota_anomalies WHERE id IN (${marks(chunk.length)}) ORDER BY id`,
        chunk,
      );
      views.push(...rows.map(toAnomalyView));
    }
    return views;
  }

  /** Ids of up to `limit` anomalies detected before the cutoff, oldest first (a range on detected_at). */
  async idsDetectedBefore(s: SqlSession, cutoff: Date, limit: number): Promise<string[]> {
    const rows = await s.rows<{ id: unknown }>(
      'SELECT id FROM quota_anomalies WHERE detected_at < ? ORDER BY detected_at LIMIT ?',
      [sqlTimestamp(cutoff), limit],
    );
    return rows.map((r) => String(r.id));
  }

  /** Deletes by primary key; returns how many were still there. */
  async deleteByIds(s: SqlSession, ids: readonly string[]): Promise<number> {
    const result = await s.exec(`DELETE FROM quota_anomalies WHERE id IN (${marks(ids.length)})`, ids);
    return result.affected;
  }

  /** Which of the dedupe keys are stored already. */
  async storedDedupeKeys(s: SqlSession, keys: readonly string[]): Promise<Set<string>> {
    const existing = new Set<string>();
    for (let i = 0; i < keys.length; i += KEYS_PER_QUERY) {
      const chunk = keys.slice(i, i + KEYS_PER_QUERY);
      const rows = await s.rows<{ dedupe_key: string }>(
        `SELECT dedupe_key FROM quota_anomalies WHERE dedupe_key IN (${marks(chunk.length)})`,
        chunk,
      );
      for (const r of rows) existing.add(r.dedupe_key);
    }
    return existing;
  }

  /** Returns the new anomaly's id. */
  async insert(s: SqlSession, anomaly: DetectedAnomaly, detectedAt: string): Promise<string> {
    const inserted = await s.exec(
      `INSERT INTO quota_anomalies (member_id, membership_type, kind, dedupe_key, occurred_at, detected_at, observed, expected, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        anomaly.memberId,
        anomaly.membershipType,
        anomaly.kind,
        anomaly.dedupeKey,
        sqlTimestamp(new Date(anomaly.occurredAtMs)),
        detectedAt,
        anomaly.observed,
        anomaly.expected,
        anomaly.detail.slice(0, 500),
      ],
    );
    if (inserted.insertId === null) throw new Error('anomaly insert returned no id');
    return inserted.insertId;
  }

  /** The detector's state of each member (a fresh one for a member without any). */
  async memberUsage(s: SqlSession, ids: readonly string[]): Promise<Map<string, MemberUsage>> {
    const states = new Map<string, MemberUsage>(ids.map((id) => [id, newMemberUsage(id)]));
    for (let i = 0; i < ids.length; i += KEYS_PER_QUERY) {
      const chunk = ids.slice(i, i + KEYS_PER_QUERY);
      const rows = await s.rows<Record<string, unknown>>(
        `SELECT member_id, bucket_start_ms, bucket_units, ewma_mean, ewma_var, windows_seen, spike_bucket_ms,
                cohort_bucket_ms, burst_start_ms, burst_count, threshold_level, period_key
           FROM quota_member_usage WHERE member_id IN (${marks(chunk.length)})`,
        chunk,
      );
      for (const r of rows) {
        const id = String(r.member_id);
        states.set(id, {
          memberId: id,
          bucketStartMs: Number(r.bucket_start_ms),
          bucketUnits: Number(r.bucket_units),
          ewmaMean: Number(r.ewma_mean),
          ewmaVar: Number(r.ewma_var),
          windowsSeen: Number(r.windows_seen),
          spikeBucketMs: Number(r.spike_bucket_ms),
          cohortBucketMs: Number(r.cohort_bucket_ms),
          burstStartMs: Number(r.burst_start_ms),
          burstCount: Number(r.burst_count),
          thresholdLevel: Number(r.threshold_level),
          periodKey: Number(r.period_key),
        });
      }
    }
    return states;
  }

  /** The detector's state of each type (a fresh one for a type without any). */
  async cohortUsage(s: SqlSession, types: readonly string[]): Promise<Map<string, CohortUsage>> {
    const cohorts = new Map<string, CohortUsage>(types.map((t) => [t, newCohortUsage(t)]));
    const rows = await s.rows<{ membership_type: string; ewma_mean: unknown; samples: unknown }>(
      `SELECT membership_type, ewma_mean, samples FROM quota_cohort_usage WHERE membership_type IN (${marks(types.length)})`,
      types,
    );
    for (const r of rows) {
      cohorts.set(r.membership_type, {
        membershipType: r.membership_type,
        ewmaMean: Number(r.ewma_mean),
        samples: Number(r.samples),
      });
    }
    return cohorts;
  }

  async saveMemberUsage(s: SqlSession, members: Iterable<MemberUsage>, updatedAt: string): Promise<void> {
    await upsert(
      s,
      'quota_member_usage',
      [
        'member_id',
        'bucket_start_ms',
        'bucket_units',
        'ewma_mean',
        'ewma_var',
        'windows_seen',
        'spike_bucket_ms',
        'cohort_bucket_ms',
        'burst_start_ms',
        'burst_count',
        'threshold_level',
        'period_key',
        'updated_at',
      ],
      ['member_id'],
      [...members].map((m) => [
        m.memberId,
        m.bucketStartMs,
        m.bucketUnits,
        m.ewmaMean,
        m.ewmaVar,
        m.windowsSeen,
        m.spikeBucketMs,
        m.cohortBucketMs,
        m.burstStartMs,
        m.burstCount,
        m.thresholdLevel,
        m.periodKey,
        updatedAt,
      ]),
    );
  }

  async saveCohortUsage(s: SqlSession, cohorts: Iterable<CohortUsage>, updatedAt: string): Promise<void> {
    await upsert(
      s,
      'quota_cohort_usage',
      ['membership_type', 'ewma_mean', 'samples', 'updated_at'],
      ['membership_type'],
      [...cohorts].map((c) => [c.membershipType, c.ewmaMean, c.samples, updatedAt]),
    );
  }
}
