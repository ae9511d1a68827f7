import { Inject, Injectable, type OnApplicationBootstrap, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase, sqlTimestamp, type SqlSession } from '../quota/quota-database';
import { AnalyticsMetrics } from './analytics.metrics';
import {
  databaseNowMs,
  idText,
  LEDGER_ROW_COLUMNS,
  LEDGER_ROW_JOINS,
  marks,
  toLedgerRow,
  upsert,
  type RawLedgerRow,
} from './analytics-sql';
import {
  AnomalyDetector,
  newCohortUsage,
  newMemberUsage,
  type CohortUsage,
  type DetectedAnomaly,
  type MemberUsage,
} from './anomaly-detector';
import { emptyFold, foldRows, typeChange, TypeAttribution, type LedgerRow, type TypeChange } from './ledger-fold';

export const TAIL_STATE = 'history_tail';

export interface TailRun {
  /** False when another instance held the lock (or a run was already going here). */
  readonly ran: boolean;
  readonly processed: number;
  readonly watermark: string;
  readonly anomalies: readonly DetectedAnomaly[];
  /** The batch was full: more rows are waiting. */
  readonly more: boolean;
}

/** membership_change rows after an id: few, found through the seed's (reason) index, whose entries end in the id. */
export async function typeChangesAfter(s: SqlSession, afterId: number | string): Promise<TypeChange[]> {
  const rows = await s.rows<{
    id: unknown;
    member_id: unknown;
    from_membership_type: string | null;
    to_membership_type: string | null;
  }>(
    `SELECT id, member_id, from_membership_type, to_membership_type FROM member_quota_history
      WHERE reason = 'membership_change' AND id > ? ORDER BY id`,
    [afterId],
  );
  return rows.flatMap(
    (r) => typeChange(Number(r.id), String(r.member_id), r.from_membership_type, r.to_membership_type) ?? [],
  );
}

/**
 * Folds new ledger rows, in id order behind a watermark, into the hourly rollups, the per-type
 * totals and anomaly detection. The consume path never waits for it: it reads the committed ledger
 * afterwards, in batches.
 *
 * InnoDB hands out auto-increment ids before commit, so a row with a lower id can become visible
 * after a higher one. A run therefore stops at the first row younger than the safety lag (by the
 * database clock): only rows that have been visible for that long are passed by the watermark.
 * Everything a run writes, watermark included, commits in one transaction, under a lock on the
 * watermark row (SKIP LOCKED: a second instance skips its turn instead of waiting).
 */
@Injectable()
export class TailProcessor implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | null = null;
  private readonly detector: AnomalyDetector;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly config: AppConfig,
    private readonly metrics: AnalyticsMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {
    this.detector = new AnomalyDetector(config.analytics.anomaly);
  }

  onApplicationBootstrap(): void {
    if (this.config.role === 'api' || this.config.analytics.intervalMs === 0) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.drain().catch((err: unknown) => this.logger.error({ err }, 'analytics tail processing failed'));
    }, this.config.analytics.intervalMs);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** Runs batches until the tail (older than the safety lag) is processed, at most maxBatches. */
  async drain(maxBatches = 50): Promise<TailRun[]> {
    const runs: TailRun[] = [];
    for (let i = 0; i < maxBatches; i++) {
      const run = await this.runOnce();
      runs.push(run);
      if (!run.ran || !run.more) break;
    }
    return runs;
  }

  async runOnce(): Promise<TailRun> {
    if (this.running) return { ran: false, processed: 0, watermark: '0', anomalies: [], more: false };
    const work = this.db.transaction((s) => this.processBatch(s), { retries: 1 });
    this.running = work;
    try {
      const run = await work;
      if (run.ran) this.report(run);
      return run;
    } finally {
      this.running = null;
    }
  }

  private report(run: TailRun): void {
    this.metrics.processedRows.inc(run.processed);
    for (const anomaly of run.anomalies) {
      this.metrics.anomalies.inc({ kind: anomaly.kind });
      this.logger.warn(
        {
          anomaly: anomaly.kind,
          member_id: anomaly.memberId,
          membership_type: anomaly.membershipType,
          observed: anomaly.observed,
          expected: anomaly.expected,
          occurred_at: new Date(anomaly.occurredAtMs).toISOString(),
        },
        `quota anomaly: ${anomaly.detail}`,
      );
    }
  }

  private async processBatch(s: SqlSession): Promise<TailRun> {
    const locked = await s.rows<{ last_history_id: unknown }>(
      `SELECT last_history_id FROM quota_analytics_state WHERE name = ?${
        s.dialect === 'mysql' ? ' FOR UPDATE SKIP LOCKED' : ''
      }`,
      [TAIL_STATE],
    );
    if (locked.length === 0) return { ran: false, processed: 0, watermark: '0', anomalies: [], more: false };
    const watermark = idText(locked[0].last_history_id);
    const nowMs = await databaseNowMs(s);
    const cutoffMs = nowMs - this.config.analytics.safetyLagMs;
    const batchSize = this.config.analytics.batchSize;

    const raw = await s.rows<RawLedgerRow>(
      `SELECT ${LEDGER_ROW_COLUMNS} ${LEDGER_ROW_JOINS} WHERE h.id > ? ORDER BY h.id LIMIT ?`,
      [watermark, batchSize],
    );
    const rows: LedgerRow[] = [];
    for (const r of raw) {
      const row = toLedgerRow(r);
      // Stop at the first row that is too young: nothing after it may pass the watermark yet.
      if (row.createdAtMs >= cutoffMs) break;
      rows.push(row);
    }
    if (rows.length === 0) {
      this.metrics.watermark.set(0);
      return { ran: true, processed: 0, watermark, anomalies: [], more: false };
    }

    const types = new TypeAttribution(await typeChangesAfter(s, watermark));
    const fold = foldRows(emptyFold(), rows, types);
    await upsert(
      s,
      'quota_stats_hourly',
      ['hour_start', 'membership_type', 'reason', 'row_count', 'units', 'net_delta'],
      ['hour_start', 'membership_type', 'reason'],
      [...fold.rollups.values()].map((c) => [
        sqlTimestamp(new Date(c.hourMs)),
        c.membershipType,
        c.reason,
        c.count,
        c.units,
        c.net,
      ]),
      ['row_count', 'units', 'net_delta'],
    );
    const now = sqlTimestamp(new Date(nowMs));
    await upsert(
      s,
      'quota_type_totals',
      ['membership_type', 'members', 'balance', 'updated_at'],
      ['membership_type'],
      [...fold.totals.entries()].map(([type, t]) => [type, t.members, t.balance, now]),
      ['members', 'balance'],
    );

    const anomalies = await this.detect(s, rows, types, nowMs);

    const last = rows[rows.length - 1];
    await s.exec('UPDATE quota_analytics_state SET last_history_id = ?, updated_at = ? WHERE name = ?', [
      last.id,
      now,
      TAIL_STATE,
    ]);
    this.metrics.watermark.set(Math.max(0, (nowMs - last.createdAtMs) / 1000));
    return {
      ran: true,
      processed: rows.length,
      watermark: String(last.id),
      anomalies,
      more: raw.length === batchSize && rows.length === raw.length,
    };
  }

  /** Rows older than the max age (a backlog) feed the stats only: alerts about them would be stale. */
  private async detect(
    s: SqlSession,
    rows: readonly LedgerRow[],
    types: TypeAttribution,
    nowMs: number,
  ): Promise<DetectedAnomaly[]> {
    const oldest = nowMs - this.config.analytics.anomaly.maxAgeSeconds * 1000;
    const relevant = rows.filter(
      (r) => r.createdAtMs >= oldest && (r.reason === 'consumption' || r.reason === 'periodic_reset'),
    );
    if (relevant.length === 0) return [];

    const members = await this.loadMembers(s, [...new Set(relevant.map((r) => r.memberId))]);
    const cohorts = await this.loadCohorts(s, [...new Set(relevant.map((r) => types.typeOf(r)))]);
    const found: DetectedAnomaly[] = [];
    for (const row of relevant) {
      const type = types.typeOf(row);
      found.push(...this.detector.observe(row, type, members.get(row.memberId)!, cohorts.get(type)!));
    }

    const now = sqlTimestamp(new Date(nowMs));
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
      [...members.values()].map((m) => [
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
        now,
      ]),
    );
    await upsert(
      s,
      'quota_cohort_usage',
      ['membership_type', 'ewma_mean', 'samples', 'updated_at'],
      ['membership_type'],
      [...cohorts.values()].map((c) => [c.membershipType, c.ewmaMean, c.samples, now]),
    );
    return this.store(s, found, now);
  }

  /** Stores new events; a key already stored (a batch that is processed again) is skipped. */
  private async store(s: SqlSession, found: DetectedAnomaly[], now: string): Promise<DetectedAnomaly[]> {
    if (found.length === 0) return [];
    const existing = new Set<string>();
    for (let i = 0; i < found.length; i += 500) {
      const keys = found.slice(i, i + 500).map((a) => a.dedupeKey);
      const rows = await s.rows<{ dedupe_key: string }>(
        `SELECT dedupe_key FROM quota_anomalies WHERE dedupe_key IN (${marks(keys.length)})`,
        keys,
      );
      for (const r of rows) existing.add(r.dedupe_key);
    }
    const fresh = found.filter((a) => !existing.has(a.dedupeKey));
    for (const a of fresh) {
      await s.exec(
        `INSERT INTO quota_anomalies (member_id, membership_type, kind, dedupe_key, occurred_at, detected_at, observed, expected, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          a.memberId,
          a.membershipType,
          a.kind,
          a.dedupeKey,
          sqlTimestamp(new Date(a.occurredAtMs)),
          now,
          a.observed,
          a.expected,
          a.detail.slice(0, 500),
        ],
      );
    }
    return fresh;
  }

  private async loadMembers(s: SqlSession, ids: string[]): Promise<Map<string, MemberUsage>> {
    const states = new Map<string, MemberUsage>(ids.map((id) => [id, newMemberUsage(id)]));
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
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

  private async loadCohorts(s: SqlSession, types: string[]): Promise<Map<string, CohortUsage>> {
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
}
