import { Injectable } from '@nestjs/common';
import { marks } from '../database/dialect';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import { upsert } from './analytics-sql';
import type { RollupCell } from './ledger-fold';

/** Members and balance summed per type. */
export interface TypeTotalsRow {
  membership_type: string;
  members: unknown;
  balance: unknown;
}

/** Ledger rows counted per type and reason: how many, their units (|delta|) and net delta. */
export interface ReasonAggregateRow {
  membership_type: string;
  reason: string;
  n: unknown;
  units: unknown;
  net: unknown;
}

/** As ReasonAggregateRow for the rows inside a window, plus count and net delta of all rows. */
export interface TailAggregateRow extends ReasonAggregateRow {
  n_all: unknown;
  net_all: unknown;
}

export interface ConfigSummaryRow {
  membership_type: string;
  max_quota: unknown;
  is_active: unknown;
}

/** ` AND <column> = ?` when a type is given. */
function typeClause(column: 'membership_type' | 'm.membership_type', type: string | undefined): string {
  return type === undefined ? '' : ` AND ${column} = ?`;
}

function typeParams(type: string | undefined): string[] {
  return type === undefined ? [] : [type];
}

/**
 * The SQL of the stats aggregates: the hourly rollups (quota_stats_hourly) and per-type totals
 * (quota_type_totals) the tail processor keeps, and the live aggregates of the ledger, members and
 * configs that the stats and the reconciliation read beside them. Every method takes the session
 * of the caller's read or transaction.
 */
@Injectable()
export class RollupsRepository {
  /** Adds the cells' counters to the stored hourly rollups. */
  async addHourly(s: SqlSession, cells: Iterable<RollupCell>): Promise<void> {
    await upsert(
      s,
      'quota_stats_hourly',
      ['hour_start', 'membership_type', 'reason', 'row_count', 'units', 'net_delta'],
      ['hour_start', 'membership_type', 'reason'],
      [...cells].map((c) => [sqlTimestamp(new Date(c.hourMs)), c.membershipType, c.reason, c.count, c.units, c.net]),
      ['row_count', 'units', 'net_delta'],
    );
  }

  /** Adds members and balance to the stored totals of each type. */
  async addTypeTotals(
    s: SqlSession,
    totals: readonly { membershipType: string; members: number; balance: number }[],
    now: string,
  ): Promise<void> {
    await upsert(
      s,
      'quota_type_totals',
      ['membership_type', 'members', 'balance', 'updated_at'],
      ['membership_type'],
      totals.map((t) => [t.membershipType, t.members, t.balance, now]),
      ['members', 'balance'],
    );
  }

  /** The stored totals (of one type, or all). */
  typeTotals(s: SqlSession, type?: string): Promise<TypeTotalsRow[]> {
    return s.rows<TypeTotalsRow>(
      `SELECT membership_type, members, balance FROM quota_type_totals WHERE 1 = 1${typeClause('membership_type', type)}`,
      typeParams(type),
    );
  }

  /** What `members` holds per type now (a scan of the table: the reconciliation only). */
  memberTotals(s: SqlSession): Promise<TypeTotalsRow[]> {
    return s.rows<TypeTotalsRow>(
      'SELECT membership_type, COUNT(*) AS members, SUM(quota_balance) AS balance FROM members GROUP BY membership_type',
    );
  }

  /** The rollups of the whole hours in [from, to), per type and reason. */
  hourlyBetween(s: SqlSession, from: Date, to: Date, type?: string): Promise<ReasonAggregateRow[]> {
    return s.rows<ReasonAggregateRow>(
      `SELECT membership_type, reason, SUM(row_count) AS n, SUM(units) AS units, SUM(net_delta) AS net
         FROM quota_stats_hourly
        WHERE hour_start >= ? AND hour_start < ?${typeClause('membership_type', type)}
        GROUP BY membership_type, reason`,
      [sqlTimestamp(from), sqlTimestamp(to), ...typeParams(type)],
    );
  }

  /**
   * The ledger rows after the watermark, by the member's current type and reason, except those of
   * the excluded members: all of them (n_all, net_all) and those created in [from, to).
   */
  async tailAggregate(
    s: SqlSession,
    watermark: string,
    window: { from: Date; to: Date },
    excludedMemberIds: readonly string[],
    type?: string,
  ): Promise<TailAggregateRow[]> {
    const notChanged = excludedMemberIds.length ? ` AND h.member_id NOT IN (${marks(excludedMemberIds.length)})` : '';
    const fromSql = sqlTimestamp(window.from);
    const toSql = sqlTimestamp(window.to);
    const inWhole = 'h.created_at >= ? AND h.created_at < ?';
    return s.rows<TailAggregateRow>(
      `SELECT m.membership_type, h.reason, COUNT(*) AS n_all, SUM(h.delta) AS net_all,
              SUM(CASE WHEN ${inWhole} THEN 1 ELSE 0 END) AS n,
              SUM(CASE WHEN ${inWhole} THEN ABS(h.delta) ELSE 0 END) AS units,
              SUM(CASE WHEN ${inWhole} THEN h.delta ELSE 0 END) AS net
         FROM member_quota_history h JOIN members m ON m.id = h.member_id
        WHERE h.id > ?${notChanged}${typeClause('m.membership_type', type)}
        GROUP BY m.membership_type, h.reason`,
      [fromSql, toSql, fromSql, toSql, fromSql, toSql, watermark, ...excludedMemberIds, ...typeParams(type)],
    );
  }

  /** Every ledger row created in [from, to) (every id), by the member's current type and reason. */
  ledgerBetween(s: SqlSession, from: Date, to: Date, type?: string): Promise<ReasonAggregateRow[]> {
    return s.rows<ReasonAggregateRow>(
      `SELECT m.membership_type, h.reason, COUNT(*) AS n, SUM(ABS(h.delta)) AS units, SUM(h.delta) AS net
         FROM member_quota_history h JOIN members m ON m.id = h.member_id
        WHERE h.created_at >= ? AND h.created_at < ?${typeClause('m.membership_type', type)}
        GROUP BY m.membership_type, h.reason`,
      [sqlTimestamp(from), sqlTimestamp(to), ...typeParams(type)],
    );
  }

  /** The configs' capacity and state (of one type, or all). */
  configs(s: SqlSession, type?: string): Promise<ConfigSummaryRow[]> {
    return s.rows<ConfigSummaryRow>(
      `SELECT membership_type, max_quota, is_active FROM member_quota_config WHERE 1 = 1${typeClause('membership_type', type)}`,
      typeParams(type),
    );
  }
}
