import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import { upsert } from './analytics-sql';
import type { MemberDayCell } from './ledger-fold';
import type { Gap } from './tail.repository';

/** One part of a statement's totals: rows of a reason and the sum of their deltas. */
export interface ReasonSumRow {
  reason: string;
  n: unknown;
  units: unknown;
}

/**
 * The seed's (member_id) index: its entries end in the primary key, so a member's ids after the
 * watermark or in a gap are a range of it (MariaDB would otherwise take the time index's range over
 * the whole window).
 */
const MEMBER_ID_INDEX = 'idx_member_quota_history_member_id';

/** Gap ranges per statement, as in TailRepository: an OR of ranges of the member's id index. */
const GAPS_PER_QUERY = 200;

/**
 * The per-member daily rollups (quota_member_daily) the tail processor keeps, and the ledger
 * aggregates a statement reads beside them. Every method takes the session of the caller's
 * transaction.
 *
 * Indexes (checked with EXPLAIN on MariaDB 10.11):
 * - rollups: primary key range on (member_id, day_start), one row per day and reason;
 * - edge days: a covering range of idx_member_quota_history_member_time (member_id, created_at, id,
 *   reason, delta);
 * - rows not folded yet: range on the seed's idx_member_quota_history_member_id, whose entries end
 *   in the primary key, so `member_id = ? AND id > ?` (or BETWEEN, for a gap) is a range in it.
 */
@Injectable()
export class MemberDailyRepository {
  /** Adds the cells' counters to the stored daily rollups (in primary key order: fewer page splits). */
  async addDaily(s: SqlSession, cells: readonly MemberDayCell[]): Promise<void> {
    const ordered = [...cells].sort(
      (a, b) =>
        a.memberId.length - b.memberId.length ||
        (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0) ||
        a.dayMs - b.dayMs ||
        (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0),
    );
    await upsert(
      s,
      'quota_member_daily',
      ['member_id', 'day_start', 'reason', 'row_count', 'units'],
      ['member_id', 'day_start', 'reason'],
      ordered.map((c) => [c.memberId, sqlTimestamp(new Date(c.dayMs)), c.reason, c.count, c.units]),
      ['row_count', 'units'],
      1000,
    );
  }

  /** The member's rollups of the whole days in [fromDay, toDay), per reason. */
  dailyBetween(s: SqlSession, memberId: string, fromDay: Date, toDay: Date): Promise<ReasonSumRow[]> {
    return s.rows<ReasonSumRow>(
      `SELECT reason, SUM(row_count) AS n, SUM(units) AS units FROM quota_member_daily
        WHERE member_id = ? AND day_start >= ? AND day_start < ? GROUP BY reason`,
      [memberId, sqlTimestamp(fromDay), sqlTimestamp(toDay)],
    );
  }

  /** Every ledger row of the member created in [from, to] (every id), per reason. */
  ledgerBetween(s: SqlSession, memberId: string, from: Date, to: Date): Promise<ReasonSumRow[]> {
    return s.rows<ReasonSumRow>(
      `SELECT reason, COUNT(*) AS n, SUM(delta) AS units FROM member_quota_history
        WHERE member_id = ? AND created_at >= ? AND created_at <= ? GROUP BY reason ORDER BY NULL`,
      [memberId, sqlTimestamp(from), sqlTimestamp(to)],
    );
  }

  /**
   * The member's ledger rows the tail processor has not folded yet (ids after the watermark, and
   * in its open gaps) created in [fromDay, toDay), per reason.
   */
  async unfoldedBetween(
    s: SqlSession,
    memberId: string,
    watermark: string,
    gaps: readonly Gap[],
    fromDay: Date,
    toDay: Date,
  ): Promise<ReasonSumRow[]> {
    const time = [sqlTimestamp(fromDay), sqlTimestamp(toDay)];
    const found = await s.rows<ReasonSumRow>(
      `SELECT reason, COUNT(*) AS n, SUM(delta) AS units FROM member_quota_history${s.sql.forceIndex(MEMBER_ID_INDEX)}
        WHERE member_id = ? AND id > ? AND created_at >= ? AND created_at < ? GROUP BY reason ORDER BY NULL`,
      [memberId, watermark, ...time],
    );
    for (let i = 0; i < gaps.length; i += GAPS_PER_QUERY) {
      const chunk = gaps.slice(i, i + GAPS_PER_QUERY);
      found.push(
        ...(await s.rows<ReasonSumRow>(
          `SELECT reason, COUNT(*) AS n, SUM(delta) AS units FROM member_quota_history${s.sql.forceIndex(MEMBER_ID_INDEX)}
            WHERE member_id = ? AND (${chunk.map(() => 'id BETWEEN ? AND ?').join(' OR ')})
              AND created_at >= ? AND created_at < ? GROUP BY reason ORDER BY NULL`,
          [memberId, ...chunk.flatMap((g) => [g.from, g.to]), ...time],
        )),
      );
    }
    return found;
  }
}
