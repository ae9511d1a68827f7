import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { HistoryReason } from './entities/quota-history.entity';
import { checkLedger, type IntegrityReport } from './integrity';
import { HISTORY_COLUMNS, type HistoryRow } from './quota.views';

/** Which history rows to read; `beforeId` is the keyset cursor (rows with smaller ids). */
export interface HistoryQuery {
  readonly memberId?: string;
  readonly reason?: HistoryReason;
  readonly from?: Date;
  readonly to?: Date;
  readonly beforeId?: string;
}

/** Reads of the ledger's history rows (member_quota_history), and the ledger's integrity check. */
@Injectable()
export class HistoryRepository {
  /** Up to `limit` rows matching the query, newest first. */
  async newestFirst(s: SqlSession, query: HistoryQuery, limit: number): Promise<HistoryRow[]> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    const where = (condition: string, value: unknown) => {
      conditions.push(condition);
      params.push(value);
    };
    if (query.memberId !== undefined) where('member_id = ?', query.memberId);
    if (query.reason !== undefined) where('reason = ?', query.reason);
    if (query.from !== undefined) where('created_at >= ?', sqlTimestamp(query.from));
    if (query.to !== undefined) where('created_at <= ?', sqlTimestamp(query.to));
    if (query.beforeId !== undefined) where('id < ?', query.beforeId);
    const sql = `SELECT ${HISTORY_COLUMNS} FROM member_quota_history${
      conditions.length ? ` WHERE ${conditions.join(' AND ')}` : ''
    } ORDER BY id DESC LIMIT ?`;
    return s.rows<HistoryRow>(sql, [...params, limit]);
  }

  /** Members (all, or this one) whose balance differs from the sum of their history deltas. */
  ledgerMismatches(s: SqlSession, memberId?: string): Promise<IntegrityReport> {
    return checkLedger((sql, params) => s.rows(sql, params), memberId);
  }
}
