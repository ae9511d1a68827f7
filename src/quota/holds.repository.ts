import { Injectable } from '@nestjs/common';
import { compactSql, readTimestamp, sqlTimestamp, type SqlSession, type Statement } from '../database/sql-session';
import type { HoldStatus } from './entities/quota-hold.entity';

/** A hold as stored (`status` as stored: an open hold past its time is still `held` here). */
export interface HoldRow {
  readonly id: string;
  readonly memberId: string;
  readonly amount: number;
  readonly status: HoldStatus;
  readonly committedAmount: number | null;
  readonly releasedAmount: number | null;
  readonly note: string | null;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly settledAt: Date | null;
}

export interface NewHold {
  readonly memberId: string;
  readonly amount: number;
  readonly note: string | null;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
}

/** How a hold is settled: committed (part or all) or released, by its caller. */
export interface Settlement {
  readonly status: 'committed' | 'released';
  readonly committedAmount: number;
  readonly releasedAmount: number;
}

/** A list's filter; `status` is the status as shown (an open hold past its time shows `expired`). */
export interface HoldsFilter {
  readonly memberId?: string;
  readonly status?: HoldStatus;
  /** Keyset cursor: holds with smaller ids. */
  readonly beforeId?: string;
}

export interface DueHold {
  readonly id: string;
  readonly memberId: string;
  readonly amount: number;
}

const COLUMNS =
  'id, member_id, amount, status, committed_amount, released_amount, note, created_by, created_at, expires_at, settled_at';

/**
 * The quota_holds table. A hold leaves `held` exactly once: every settlement is an UPDATE that
 * matches only a `held` row (commit and release only before `expires_at`, expiry only after it),
 * so of two racing settlements one matches and the other finds nothing; the caller writes the
 * ledger rows only when its update matched, in the same transaction.
 */
@Injectable()
export class HoldsRepository {
  async insert(s: SqlSession, hold: NewHold): Promise<string> {
    const result = await s.exec(
      'INSERT INTO quota_holds (member_id, amount, status, note, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [
        hold.memberId,
        hold.amount,
        'held',
        hold.note,
        hold.createdBy,
        sqlTimestamp(hold.createdAt),
        sqlTimestamp(hold.expiresAt),
      ],
    );
    if (result.insertId === null) throw new Error('hold insert returned no id');
    return result.insertId;
  }

  /**
   * insert() as the statement that follows a hold's balance update in its batch (MySQL): written
   * only when the update matched (`ROW_COUNT() = 1`).
   */
  insertAfterChangeStatement(hold: NewHold): Statement {
    return {
      sql: compactSql(`INSERT INTO quota_holds (member_id, amount, status, note, created_by, created_at, expires_at)
                       SELECT ?, ?, 'held', ?, ?, ?, ? FROM DUAL WHERE ROW_COUNT() = 1`),
      params: [
        hold.memberId,
        hold.amount,
        hold.note,
        hold.createdBy,
        sqlTimestamp(hold.createdAt),
        sqlTimestamp(hold.expiresAt),
      ],
    };
  }

  async find(s: SqlSession, id: string): Promise<HoldRow | null> {
    const rows = await s.rows<Record<string, unknown>>(`SELECT ${COLUMNS} FROM quota_holds WHERE id = ?`, [id]);
    return rows.length === 0 ? null : toHold(rows[0]);
  }

  /** Settles an open hold that has not expired by `now`; false when it is no longer open (or has expired). */
  async settle(s: SqlSession, id: string, settlement: Settlement, now: Date): Promise<boolean> {
    const at = sqlTimestamp(now);
    const result = await s.exec(
      `UPDATE quota_holds SET status = ?, committed_amount = ?, released_amount = ?, settled_at = ?
        WHERE id = ? AND status = 'held' AND expires_at > ?`,
      [settlement.status, settlement.committedAmount, settlement.releasedAmount, at, id, at],
    );
    return result.affected === 1;
  }

  /** Marks an open hold past its time expired (all of it released); false when another settlement came first. */
  async expire(s: SqlSession, id: string, now: Date): Promise<boolean> {
    const at = sqlTimestamp(now);
    const result = await s.exec(
      `UPDATE quota_holds SET status = 'expired', committed_amount = 0, released_amount = amount, settled_at = ?
        WHERE id = ? AND status = 'held' AND expires_at <= ?`,
      [at, id, at],
    );
    return result.affected === 1;
  }

  /** Open holds past their time, the longest overdue first (index idx_quota_holds_status_expires). */
  async due(s: SqlSession, now: Date, limit: number): Promise<DueHold[]> {
    const rows = await s.rows<{ id: unknown; member_id: unknown; amount: unknown }>(
      `SELECT id, member_id, amount FROM quota_holds WHERE status = 'held' AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      [sqlTimestamp(now), limit],
    );
    return rows.map((r) => ({ id: String(r.id), memberId: String(r.member_id), amount: Number(r.amount) }));
  }

  /** Newest first, keyset-paginated on the id. */
  async newestFirst(s: SqlSession, filter: HoldsFilter, now: Date, limit: number): Promise<HoldRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.memberId !== undefined) {
      where.push('member_id = ?');
      params.push(filter.memberId);
    }
    if (filter.beforeId !== undefined) {
      where.push('id < ?');
      params.push(filter.beforeId);
    }
    const at = sqlTimestamp(now);
    switch (filter.status) {
      case 'held':
        where.push("status = 'held' AND expires_at > ?");
        params.push(at);
        break;
      case 'expired':
        where.push("(status = 'expired' OR (status = 'held' AND expires_at <= ?))");
        params.push(at);
        break;
      case 'committed':
      case 'released':
        where.push('status = ?');
        params.push(filter.status);
        break;
      case undefined:
        break;
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const rows = await s.rows<Record<string, unknown>>(
      `SELECT ${COLUMNS} FROM quota_holds ${clause} ORDER BY id DESC LIMIT ?`,
      [...params, limit],
    );
    return rows.map(toHold);
  }

  /** Open holds and the units they keep, over every member (the status index's `held` range). */
  async openTotals(s: SqlSession): Promise<{ count: number; units: number }> {
    const rows = await s.rows<{ holds: unknown; units: unknown }>(
      "SELECT COUNT(*) AS holds, COALESCE(SUM(amount), 0) AS units FROM quota_holds WHERE status = 'held'",
    );
    return { count: Number(rows[0]?.holds ?? 0), units: Number(rows[0]?.units ?? 0) };
  }
}

function toHold(row: Record<string, unknown>): HoldRow {
  return {
    id: String(row.id),
    memberId: String(row.member_id),
    amount: Number(row.amount),
    status: row.status as HoldStatus,
    committedAmount: row.committed_amount === null ? null : Number(row.committed_amount),
    releasedAmount: row.released_amount === null ? null : Number(row.released_amount),
    note: (row.note as string | null) ?? null,
    createdBy: String(row.created_by),
    createdAt: readTimestamp(row.created_at),
    expiresAt: readTimestamp(row.expires_at),
    settledAt: row.settled_at === null || row.settled_at === undefined ? null : readTimestamp(row.settled_at),
  };
}
