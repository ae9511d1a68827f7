import { Inject, Injectable, type OnApplicationBootstrap, type BeforeApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { readTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import { EventsRepository } from '../events/events.repository';
import { anomalyDetected, thresholdReached, type ThresholdCrossing } from './analytics-events';
import { AnalyticsMetrics } from './analytics.metrics';
import { AnomaliesRepository } from './anomalies.repository';
import { AnomalyDetector, type DetectedAnomaly } from './anomaly-detector';
import { emptyFold, foldMemberDays, foldRows, TypeAttribution, type LedgerRow } from './ledger-fold';
import { MemberDailyRepository } from './member-daily.repository';
import { RollupsRepository } from './rollups.repository';
import { TailRepository, type Gap } from './tail.repository';
import { crossedThresholds } from './threshold-crossings';

/** The scheduler's name for the tail processor's interval (QUOTA_ANALYTICS_INTERVAL_MS). */
export const TAIL_INTERVAL = 'analytics-tail';

export interface TailRun {
  /** False when another instance held the lock (or a run was already going here). */
  readonly ran: boolean;
  /** Rows folded in: in id order behind the watermark, and late ones (below). */
  readonly processed: number;
  /** Rows found in ids the watermark had passed before they committed. */
  readonly late: number;
  readonly watermark: string;
  readonly anomalies: readonly DetectedAnomaly[];
  /** The batch was full: more rows are waiting. */
  readonly more: boolean;
}

/** Drift of the stored totals of one type from `members`, as corrected. */
export interface TypeDrift {
  readonly membershipType: string;
  readonly members: number;
  readonly balance: number;
}

/** The ranges of ids between `after` and the rows (in id order) that have no row. */
export function idGaps(after: number, ids: readonly number[]): { from: number; to: number }[] {
  const gaps: { from: number; to: number }[] = [];
  let previous = after;
  for (const id of ids) {
    if (id > previous + 1) gaps.push({ from: previous + 1, to: id - 1 });
    previous = id;
  }
  return gaps;
}

/** What is left of a range once the ids found in it are taken out. */
export function splitGap(gap: { from: number; to: number }, found: readonly number[]): { from: number; to: number }[] {
  const left: { from: number; to: number }[] = [];
  let start = gap.from;
  for (const id of [...found].sort((a, b) => a - b)) {
    if (id > start) left.push({ from: start, to: id - 1 });
    start = Math.max(start, id + 1);
  }
  if (start <= gap.to) left.push({ from: start, to: gap.to });
  return left;
}

/** The id after which the type changes that attribute `rows` (which may lie below the watermark) start. */
function lowestBefore(watermark: string, rows: readonly LedgerRow[]): number {
  return rows.reduce((lowest, r) => Math.min(lowest, r.id - 1), Number(watermark));
}

/**
 * Folds new ledger rows, in id order behind a watermark, into the hourly rollups, the per-member
 * daily rollups (statements), the per-type totals and anomaly detection. The consume path never waits for it: it reads the committed ledger
 * afterwards, in batches.
 *
 * InnoDB hands out auto-increment ids before commit, so a row with a lower id can become visible
 * after a higher one. A run therefore stops at the first row younger than the safety lag (by the
 * database clock): only rows that have been visible for that long are passed by the watermark.
 * A transaction can stay open longer than that lag: the ids the watermark passes without a row
 * are stored as gaps (quota_analytics_gaps), every run folds in the rows that have appeared in
 * them since (each once: a found id leaves its gap in the same transaction) and a gap is given
 * up after QUOTA_ANALYTICS_GAP_MAX_AGE_MS (ids of rolled-back transactions never fill). Late rows
 * feed the stats only, not anomaly detection, which follows each member in order.
 *
 * Every QUOTA_ANALYTICS_RECONCILE_MS, a run that has caught up also checks quota_type_totals
 * against `members` (what is not folded yet taken into account) and corrects any drift it finds,
 * counting it in quota_analytics_drift_total: a row committed after its gap was given up is
 * reflected in the totals then.
 *
 * Everything a run writes, watermark included, commits in one transaction, under a lock on the
 * watermark row (SKIP LOCKED: a second instance skips its turn instead of waiting). That includes
 * the events it detects (anomaly.detected, quota.threshold_reached): each is recorded once, with
 * the fold that found it, and none is left behind by a run that rolls back.
 */
@Injectable()
export class TailProcessor implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private running: Promise<unknown> | null = null;
  private readonly detector: AnomalyDetector;
  /** The first reconciliation comes one interval after start-up. */
  private lastReconciledMs = Date.now();

  constructor(
    private readonly db: QuotaDatabase,
    private readonly config: AppConfig,
    private readonly metrics: AnalyticsMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly scheduler: SchedulerRegistry,
    private readonly anomalies: AnomaliesRepository,
    private readonly tail: TailRepository,
    private readonly rollups: RollupsRepository,
    private readonly daily: MemberDailyRepository,
    private readonly events: EventsRepository,
    private readonly freeze: WriteFreeze,
  ) {
    this.detector = new AnomalyDetector(config.analytics.anomaly);
  }

  onApplicationBootstrap(): void {
    if (this.config.role === 'api' || this.config.analytics.intervalMs === 0) return;
    // Paused during a write freeze; the tail is caught up from the watermark afterwards.
    const tick = this.freeze.whileWritable(async () => {
      if (this.running) return;
      await this.drain().catch((err: unknown) => this.logger.error({ err }, 'analytics tail processing failed'));
    });
    scheduleEvery(this.scheduler, TAIL_INTERVAL, this.config.analytics.intervalMs, tick);
  }

  async beforeApplicationShutdown(): Promise<void> {
    stopScheduled(this.scheduler, TAIL_INTERVAL);
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
    if (this.running) return { ran: false, processed: 0, late: 0, watermark: '0', anomalies: [], more: false };
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

  /**
   * Checks quota_type_totals against `members` now, under the watermark lock, and corrects it.
   * Null when another instance held the lock (or a run was going here).
   */
  async reconcile(): Promise<TypeDrift[] | null> {
    if (this.running) return null;
    const work = this.db.transaction(
      async (s) => {
        const watermark = await this.tail.lockWatermark(s);
        return watermark === null ? null : this.reconcileTotals(s, watermark, await this.tail.nowMs(s));
      },
      { retries: 1 },
    );
    this.running = work;
    try {
      const drift = await work;
      if (drift) this.reportDrift(drift);
      return drift;
    } finally {
      this.running = null;
    }
  }

  private report(run: TailRun & { drift?: TypeDrift[]; expired?: number }): void {
    this.metrics.processedRows.inc(run.processed);
    this.metrics.lateRows.inc(run.late);
    if (run.expired) {
      this.metrics.gapsExpired.inc(run.expired);
      // Mostly ids of rolled-back transactions (or reserved and unused by a multi-row insert): normal.
      this.logger.debug({ ids: run.expired }, 'analytics: ledger ids given up after QUOTA_ANALYTICS_GAP_MAX_AGE_MS');
    }
    if (run.drift) this.reportDrift(run.drift);
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

  private reportDrift(drift: readonly TypeDrift[]): void {
    for (const d of drift) {
      this.metrics.drift.inc({ measure: 'members' }, Math.abs(d.members));
      this.metrics.drift.inc({ measure: 'balance' }, Math.abs(d.balance));
      this.logger.warn(
        { membership_type: d.membershipType, members: d.members, balance: d.balance },
        'analytics: quota_type_totals drifted from members; corrected',
      );
    }
  }

  private async processBatch(s: SqlSession): Promise<TailRun & { drift?: TypeDrift[]; expired?: number }> {
    const watermark = await this.tail.lockWatermark(s);
    if (watermark === null) return { ran: false, processed: 0, late: 0, watermark: '0', anomalies: [], more: false };
    const nowMs = await this.tail.nowMs(s);
    const cutoffMs = nowMs - this.config.analytics.safetyLagMs;
    const batchSize = this.config.analytics.batchSize;

    const raw = await this.tail.rowsAfter(s, watermark, batchSize);
    const rows: LedgerRow[] = [];
    for (const row of raw) {
      // Stop at the first row that is too young: nothing after it may pass the watermark yet.
      if (row.createdAtMs >= cutoffMs) break;
      rows.push(row);
    }
    const more = raw.length === batchSize && rows.length === raw.length;
    const { late, expired } = await this.revisitGaps(s, nowMs);
    const now = sqlTimestamp(new Date(nowMs));
    if (rows.length === 0 && late.length === 0) {
      this.metrics.watermark.set(0);
      const drift = await this.reconcileIfDue(s, watermark, nowMs, more);
      return { ran: true, processed: 0, late: 0, watermark, anomalies: [], more: false, drift, expired };
    }

    const types = new TypeAttribution(await this.tail.typeChangesAfter(s, lowestBefore(watermark, late)));
    const folded = late.concat(rows);
    const fold = foldRows(emptyFold(), folded, types);
    await this.rollups.addHourly(s, fold.rollups.values());
    await this.daily.addDaily(s, foldMemberDays(folded));
    await this.rollups.addTypeTotals(
      s,
      [...fold.totals.entries()].map(([type, t]) => ({ membershipType: type, members: t.members, balance: t.balance })),
      now,
    );

    const anomalies = await this.detect(s, rows, types, nowMs);
    await this.recordThresholdCrossings(s, folded, types, nowMs);
    if (rows.length === 0) {
      const drift = await this.reconcileIfDue(s, watermark, nowMs, more);
      return { ran: true, processed: late.length, late: late.length, watermark, anomalies, more, drift, expired };
    }

    const last = rows[rows.length - 1];
    await this.tail.saveGaps(
      s,
      idGaps(
        Number(watermark),
        rows.map((r) => r.id),
      ).map((g) => ({ ...g, seenAt: now })),
    );
    await this.tail.advanceWatermark(s, last.id, now);
    this.metrics.watermark.set(Math.max(0, (nowMs - last.createdAtMs) / 1000));
    const drift = await this.reconcileIfDue(s, String(last.id), nowMs, more);
    return {
      ran: true,
      processed: rows.length + late.length,
      late: late.length,
      watermark: String(last.id),
      anomalies,
      more,
      drift,
      expired,
    };
  }

  /**
   * Rows that have appeared in the stored gaps (at most a batch, lowest ids first; the rest stay
   * in what is left of their gap for the next run). What is left of each gap is stored again;
   * gaps older than the maximum age are then given up. Returns the rows and how many ids were
   * given up.
   */
  private async revisitGaps(s: SqlSession, nowMs: number): Promise<{ late: LedgerRow[]; expired: number }> {
    const gaps = await this.tail.gaps(s);
    if (gaps.length === 0) return { late: [], expired: 0 };
    const late = await this.tail.rowsInGaps(s, gaps, this.config.analytics.batchSize);
    if (late.length > 0) {
      const found = new Map<Gap, number[]>();
      for (const row of late) {
        const gap = gaps.find((g) => g.from <= row.id && row.id <= g.to)!;
        found.set(gap, [...(found.get(gap) ?? []), row.id]);
      }
      const filled = [...found.keys()];
      await this.tail.deleteGaps(
        s,
        filled.map((g) => g.from),
      );
      await this.tail.saveGaps(
        s,
        filled.flatMap((g) => splitGap(g, found.get(g)!).map((left) => ({ ...left, seenAt: g.seenAt }))),
      );
    }
    const oldest = sqlTimestamp(new Date(nowMs - this.config.analytics.gapMaxAgeMs));
    const expired = await this.tail.expireGapsSeenBefore(s, oldest);
    return { late, expired };
  }

  private async reconcileIfDue(
    s: SqlSession,
    watermark: string,
    nowMs: number,
    more: boolean,
  ): Promise<TypeDrift[] | undefined> {
    const interval = this.config.analytics.reconcileIntervalMs;
    if (interval === 0 || more || Date.now() - this.lastReconciledMs < interval) return undefined;
    return this.reconcileTotals(s, watermark, nowMs);
  }

  /**
   * quota_type_totals against `members`, in one snapshot of the database: the stored totals plus
   * the rows not folded in yet (after the watermark, and in open gaps) must give every type's
   * member count and balance sum. A difference is drift (a row given up in its gap and committed
   * afterwards, or a change made outside the ledger); it is added to the stored totals.
   */
  private async reconcileTotals(s: SqlSession, watermark: string, nowMs: number): Promise<TypeDrift[]> {
    this.lastReconciledMs = Date.now();
    const stored = await this.rollups.typeTotals(s);
    const actual = await this.rollups.memberTotals(s);
    const after = await this.tail.rowsAfter(s, watermark);
    const pending = after.concat(await this.tail.rowsInGaps(s, await this.tail.gaps(s)));
    const types = new TypeAttribution(await this.tail.typeChangesAfter(s, lowestBefore(watermark, pending)));
    const fold = foldRows(emptyFold(), pending, types);

    const expected = new Map<string, { members: number; balance: number }>();
    const at = (type: string) => {
      let e = expected.get(type);
      if (!e) expected.set(type, (e = { members: 0, balance: 0 }));
      return e;
    };
    for (const t of stored) {
      at(t.membership_type).members += Number(t.members);
      at(t.membership_type).balance += Number(t.balance);
    }
    for (const [type, t] of fold.totals) {
      at(type).members += t.members;
      at(type).balance += t.balance;
    }
    const found = new Map(actual.map((a) => [a.membership_type, a]));
    for (const type of found.keys()) at(type);
    const drift: TypeDrift[] = [];
    for (const [type, e] of expected) {
      const a = found.get(type);
      const members = Number(a?.members ?? 0) - e.members;
      const balance = Number(a?.balance ?? 0) - e.balance;
      if (members !== 0 || balance !== 0) drift.push({ membershipType: type, members, balance });
    }
    if (drift.length > 0) {
      await this.rollups.addTypeTotals(s, drift, sqlTimestamp(new Date(nowMs)));
    }
    return drift;
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

    const members = await this.anomalies.memberUsage(s, [...new Set(relevant.map((r) => r.memberId))]);
    const cohorts = await this.anomalies.cohortUsage(s, [...new Set(relevant.map((r) => types.typeOf(r)))]);
    const found: DetectedAnomaly[] = [];
    for (const row of relevant) {
      const type = types.typeOf(row);
      found.push(...this.detector.observe(row, type, members.get(row.memberId)!, cohorts.get(type)!));
    }

    const now = sqlTimestamp(new Date(nowMs));
    await this.anomalies.saveMemberUsage(s, members.values(), now);
    await this.anomalies.saveCohortUsage(s, cohorts.values(), now);
    return this.store(s, found, now);
  }

  /**
   * Stores new anomalies, each with its anomaly.detected event; a key already stored (a batch that
   * is processed again) is skipped.
   */
  private async store(s: SqlSession, found: DetectedAnomaly[], now: string): Promise<DetectedAnomaly[]> {
    if (found.length === 0) return [];
    const existing = await this.anomalies.storedDedupeKeys(
      s,
      found.map((a) => a.dedupeKey),
    );
    const fresh = found.filter((a) => !existing.has(a.dedupeKey));
    const ids: string[] = [];
    for (const a of fresh) ids.push(await this.anomalies.insert(s, a, now));
    // Read back, so the event carries exactly what the anomalies API will show.
    const detectedAt = readTimestamp(now);
    const views = await this.anomalies.viewsByIds(s, ids);
    await this.events.recordAll(
      s,
      views.map((view) => anomalyDetected(view, detectedAt)),
    );
    return fresh;
  }

  /**
   * quota.threshold_reached for every row of the batch that takes its member's usage across 80 or
   * 100 % of max_quota: rows in order and late rows alike (a crossing depends on the row alone). The
   * max_quota is that of the type the member had when the row was written, as the config is now.
   */
  private async recordThresholdCrossings(
    s: SqlSession,
    rows: readonly LedgerRow[],
    types: TypeAttribution,
    nowMs: number,
  ): Promise<void> {
    const candidates = rows.filter((row) => row.delta < 0);
    if (candidates.length === 0) return;
    const typeOf = new Map(candidates.map((row) => [row.id, types.typeOf(row)]));
    // Rows written under another type than the member's current one need that type's max_quota.
    const otherTypes = new Set(
      candidates.filter((row) => typeOf.get(row.id) !== row.currentType).map((row) => typeOf.get(row.id)!),
    );
    const otherMax = await this.tail.maxQuotas(s, [...otherTypes]);
    const crossings: Omit<ThresholdCrossing, 'externalId'>[] = [];
    for (const row of candidates) {
      const membershipType = typeOf.get(row.id)!;
      const maxQuota = membershipType === row.currentType ? row.maxQuota : (otherMax.get(membershipType) ?? null);
      for (const threshold of crossedThresholds(row, maxQuota)) {
        crossings.push({ row, membershipType, maxQuota: maxQuota!, threshold });
      }
    }
    if (crossings.length === 0) return;
    const externalIds = await this.tail.externalIds(s, [...new Set(crossings.map((c) => c.row.memberId))]);
    const at = new Date(nowMs);
    await this.events.recordAll(
      s,
      crossings.map((crossing) =>
        thresholdReached({ ...crossing, externalId: externalIds.get(crossing.row.memberId) ?? '' }, at),
      ),
    );
  }
}
