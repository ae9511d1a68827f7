import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { NewOperation } from './ledger-bulk.service';

/**
 * The row that makes a background operation durable (quota_operations), written inside the
 * transaction that asks for the operation. The jobs module reads and advances these rows.
 */
@Injectable()
export class OperationRecordsRepository {
  async countMembersOfType(s: SqlSession, membershipType: string): Promise<number> {
    const rows = await s.rows<{ total: unknown }>('SELECT COUNT(*) AS total FROM members WHERE membership_type = ?', [
      membershipType,
    ]);
    return Number(rows[0]?.total ?? 0);
  }

  /** Inserts the operation as `queued` with `total` members to do; returns its id. */
  async insertQueued(s: SqlSession, op: NewOperation, total: number): Promise<string> {
    const now = sqlTimestamp(new Date());
    const result = await s.exec(
      `INSERT INTO quota_operations (kind, status, selection, membership_type, mode, value, reason, note, payload, total,
         last_member_id, requested_by, dedupe_key, request_hash, config_id, period_key, period_started_at, created_at, updated_at)
       VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        op.kind,
        op.selection.kind,
        op.selection.kind === 'membership_type' ? op.selection.membershipType : null,
        op.mode,
        op.value,
        op.reason,
        op.note,
        JSON.stringify(op.payload),
        total,
        op.requestedBy,
        op.dedupeKey ?? null,
        op.requestHash ?? null,
        op.configId ?? null,
        op.periodKey ?? null,
        op.periodStartedAt ? sqlTimestamp(op.periodStartedAt) : null,
        now,
        now,
      ],
    );
    if (result.insertId === null) throw new Error('operation insert returned no id');
    return result.insertId;
  }
}
