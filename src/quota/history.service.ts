import { Injectable } from '@nestjs/common';
import type { HistoryReason } from './entities/quota-history.entity';
import { NotFoundError, ValidationFailedError } from '../common/app-error';
import { checkLedger, type IntegrityReport } from './integrity';
import { QuotaDatabase } from '../database/database';
import { sqlTimestamp } from '../database/sql-session';
import { HISTORY_COLUMNS, type HistoryRow } from './quota.views';

export interface HistoryFilter {
  readonly memberId?: string;
  readonly reason?: HistoryReason;
  readonly from?: Date;
  readonly to?: Date;
  readonly limit: number;
  readonly cursor?: string;
}

export interface HistoryPage {
  readonly rows: HistoryRow[];
  readonly nextCursor: string | null;
}

export function encodeCursor(id: string): string {
  return Buffer.from(`h:${id}`).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString();
  const match = /^h:([1-9]\d{0,18})$/.exec(decoded);
  if (!match) throw new ValidationFailedError([{ field: 'cursor', message: 'cursor is not a valid next_cursor' }]);
  return match[1];
}

/** Reads of the ledger: newest first, keyset-paginated on the id, and the integrity check. */
@Injectable()
export class HistoryService {
  constructor(private readonly db: QuotaDatabase) {}

  async list(filter: HistoryFilter): Promise<HistoryPage> {
    if (filter.from && filter.to && filter.from > filter.to) {
      throw new ValidationFailedError([{ field: 'from', message: 'from must not be after to' }]);
    }
    const conditions: string[] = [];
    const params: unknown[] = [];
    const where = (condition: string, value: unknown) => {
      conditions.push(condition);
      params.push(value);
    };
    if (filter.memberId !== undefined) where('member_id = ?', filter.memberId);
    if (filter.reason !== undefined) where('reason = ?', filter.reason);
    if (filter.from !== undefined) where('created_at >= ?', sqlTimestamp(filter.from));
    if (filter.to !== undefined) where('created_at <= ?', sqlTimestamp(filter.to));
    if (filter.cursor !== undefined) where('id < ?', decodeCursor(filter.cursor));
    const sql = `SELECT ${HISTORY_COLUMNS} FROM member_quota_history${
      conditions.length ? ` WHERE ${conditions.join(' AND ')}` : ''
    } ORDER BY id DESC LIMIT ?`;
    // One row more than asked says whether another page follows.
    const rows = await this.db.read((s) => s.rows<HistoryRow>(sql, [...params, filter.limit + 1]));
    const page = rows.slice(0, filter.limit);
    const nextCursor = rows.length > filter.limit ? encodeCursor(String(page[page.length - 1].id)) : null;
    return { rows: page, nextCursor };
  }

  async integrity(memberId?: string): Promise<IntegrityReport> {
    const report = await this.db.read((s) => checkLedger((sql, params) => s.rows(sql, params), memberId));
    if (memberId !== undefined && report.checked === 0) throw new NotFoundError('Member');
    return report;
  }
}
