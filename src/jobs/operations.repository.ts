import { Injectable } from '@nestjs/common';
import type { OperationKind } from '../quota/ledger-bulk.service';
import type { ResetPeriod } from '../quota/entities/quota-config.entity';
import { marks } from '../database/dialect';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import {
  OPERATION_COLUMNS,
  toOperation,
  type Operation,
  type OperationRow,
  type OperationStatus,
} from './operation.view';

/** The first answer recorded for an Idempotency-Key. */
export interface DedupedOperation {
  readonly id: string;
  readonly requestHash: string;
  readonly total: number;
  readonly createdAt: unknown;
}

/** How many of a bulk adjustment's targets exist, and how many the change would alter. */
export interface BulkPreview {
  readonly total: number;
  readonly wouldChange: number;
}

/** The counters a committed chunk adds to its operation. */
export interface ChunkProgress {
  readonly processed: number;
  readonly changed: number;
}

/** An active config with a reset period, as the reset scheduler reads it. */
export interface ResetConfigRow {
  id: unknown;
  membership_type: string;
  max_quota: number;
  reset_period: ResetPeriod;
  created_at: unknown;
}

/**
 * The SQL of background operations (quota_operations and their member lists), and the reads of
 * members and configs that choose and check an operation's targets. Every method takes the session
 * of the caller's read or transaction; the services keep the rules, retries and metrics.
 */
@Injectable()
export class OperationsRepository {
  async findById(s: SqlSession, id: string): Promise<Operation | null> {
    const rows = await s.rows<OperationRow>(`SELECT ${OPERATION_COLUMNS} FROM quota_operations WHERE id = ?`, [id]);
    return rows.length === 0 ? null : toOperation(rows[0]);
  }

  /** A page of operations, newest first, with the count of all that match. */
  async page(
    s: SqlSession,
    filter: { status?: OperationStatus; kind?: OperationKind; page: number; perPage: number },
  ): Promise<{ operations: Operation[]; total: number }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) {
      where.push('status = ?');
      params.push(filter.status);
    }
    if (filter.kind) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    const clause = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
    const counted = await s.rows<{ total: unknown }>(`SELECT COUNT(*) AS total FROM quota_operations${clause}`, params);
    const rows = await s.rows<OperationRow>(
      `SELECT ${OPERATION_COLUMNS} FROM quota_operations${clause} ORDER BY id DESC LIMIT ? OFFSET ?`,
      [...params, filter.perPage, (filter.page - 1) * filter.perPage],
    );
    return { operations: rows.map(toOperation), total: Number(counted[0].total) };
  }

  /** Queued and running operations counted by kind and status (kinds and statuses without any are absent). */
  countActiveByKindAndStatus(s: SqlSession): Promise<{ kind: string; status: string; n: unknown }[]> {
    return s.rows<{ kind: string; status: string; n: unknown }>(
      "SELECT kind, status, COUNT(*) AS n FROM quota_operations WHERE status IN ('queued', 'running') GROUP BY kind, status",
    );
  }

  /** Up to `limit` ids of queued or running operations after `afterId`, ascending. */
  async activeIdsAfter(s: SqlSession, afterId: string, limit: number): Promise<string[]> {
    const rows = await s.rows<{ id: unknown }>(
      "SELECT id FROM quota_operations WHERE status IN ('queued', 'running') AND id > ? ORDER BY id LIMIT ?",
      [afterId, limit],
    );
    return rows.map((row) => String(row.id));
  }

  /** The operation's status, write-locked for the rest of the transaction; null when there is none. */
  async lockStatus(s: SqlSession, id: string): Promise<OperationStatus | null> {
    const rows = await s.rows<{ status: OperationStatus }>(
      `SELECT status FROM quota_operations WHERE id = ?${s.sql.forUpdate}`,
      [id],
    );
    return rows.length === 0 ? null : rows[0].status;
  }

  /** A queued operation becomes cancelled at once. */
  async cancelQueued(s: SqlSession, id: string, now: Date): Promise<void> {
    const at = sqlTimestamp(now);
    await s.exec(
      "UPDATE quota_operations SET status = 'cancelled', cancel_requested = 1, finished_at = ?, updated_at = ? WHERE id = ?",
      [at, at, id],
    );
  }

  /** A running operation is asked to stop; its worker stops between chunks. */
  async requestCancel(s: SqlSession, id: string, now: Date): Promise<void> {
    await s.exec('UPDATE quota_operations SET cancel_requested = 1, updated_at = ? WHERE id = ?', [
      sqlTimestamp(now),
      id,
    ]);
  }

  /** Marks a queued or running operation running and counts the attempt; false when it is finished. */
  async markRunning(s: SqlSession, id: string, now: Date): Promise<boolean> {
    const at = sqlTimestamp(now);
    const result = await s.exec(
      `UPDATE quota_operations SET status = 'running', started_at = COALESCE(started_at, ?), attempts = attempts + 1, updated_at = ?
        WHERE id = ? AND status IN ('queued', 'running')`,
      [at, at, id],
    );
    return result.affected === 1;
  }

  /**
   * Adds a chunk's counters to a running operation, in the transaction that applies the chunk;
   * false when the operation is no longer running (cancelled or failed meanwhile), and then the
   * caller rolls the chunk back. The row lock this takes is held to the commit, so a finish that
   * comes after waits for the chunk and counts it, and one that came first refuses it.
   */
  async addChunkProgress(s: SqlSession, id: string, progress: ChunkProgress, now: Date): Promise<boolean> {
    const added = await s.exec(
      `UPDATE quota_operations SET processed = processed + ?, changed = changed + ?, updated_at = ?
        WHERE id = ? AND status = 'running'`,
      [progress.processed, progress.changed, sqlTimestamp(now), id],
    );
    return added.affected === 1;
  }

  /**
   * Ends a queued or running operation: a failed one counts what it left undone as failed, a
   * cancelled one keeps the cancel request. False when it had already finished.
   */
  async finish(s: SqlSession, id: string, status: OperationStatus, error: string | null, now: Date): Promise<boolean> {
    const at = sqlTimestamp(now);
    const result = await s.exec(
      `UPDATE quota_operations SET status = ?, error = ?, failed = CASE WHEN ? = 'failed' AND total > processed THEN total - processed ELSE failed END,
              cancel_requested = CASE WHEN ? = 'cancelled' THEN 1 ELSE cancel_requested END, finished_at = ?, updated_at = ?
        WHERE id = ? AND status IN ('queued', 'running')`,
      [status, error, status, status, at, at, id],
    );
    return result.affected === 1;
  }

  async totalOf(s: SqlSession, id: string): Promise<number> {
    const rows = await s.rows<{ total: unknown }>('SELECT total FROM quota_operations WHERE id = ?', [id]);
    return Number(rows[0].total);
  }

  /** The operation recorded under an Idempotency-Key, write-locked; null when there is none. */
  async lockByDedupeKey(s: SqlSession, dedupeKey: string): Promise<DedupedOperation | null> {
    const rows = await s.rows<{ id: unknown; request_hash: string; total: unknown; created_at: unknown }>(
      `SELECT id, request_hash, total, created_at FROM quota_operations WHERE dedupe_key = ?${s.sql.forUpdate}`,
      [dedupeKey],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    return { id: String(row.id), requestHash: row.request_hash, total: Number(row.total), createdAt: row.created_at };
  }

  /** Frees an expired Idempotency-Key for reuse. */
  async releaseDedupeKey(s: SqlSession, id: string): Promise<void> {
    await s.exec('UPDATE quota_operations SET dedupe_key = NULL WHERE id = ?', [id]);
  }

  /** Stores one chunk of an operation's member list (ids known to exist), as VALUES rows. */
  async addMembers(s: SqlSession, operationId: string, memberIds: readonly string[]): Promise<void> {
    await s.exec(
      `INSERT INTO quota_operation_members (operation_id, member_id) VALUES ${memberIds.map(() => '(?, ?)').join(', ')}`,
      memberIds.flatMap((id) => [operationId, id]),
    );
  }

  /** Which of the ids belong to a member, as strings (a plain read: no member row is locked). */
  async existingMemberIds(s: SqlSession, ids: readonly string[]): Promise<Set<string>> {
    const found = await s.rows<{ id: unknown }>(`SELECT id FROM members WHERE id IN (${marks(ids.length)})`, ids);
    return new Set(found.map((r) => String(r.id)));
  }

  async membershipTypeExists(s: SqlSession, membershipType: string): Promise<boolean> {
    const rows = await s.rows('SELECT 1 AS found FROM member_quota_config WHERE membership_type = ?', [membershipType]);
    return rows.length > 0;
  }

  /**
   * How many members the selection holds and how many a change would alter: `set` to `value`, or
   * `delta` by it, clamped to [0, maxBalance].
   */
  async previewChange(
    s: SqlSession,
    selection: { membershipType: string } | { memberIds: readonly string[] },
    change: { mode: 'set' | 'delta'; value: number },
    maxBalance: number,
  ): Promise<BulkPreview> {
    const target = s.sql.least(s.sql.greatest('?', '0'), '?');
    const expression = change.mode === 'delta' ? target.replace('?', 'quota_balance + ?') : target;
    const count = `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN ${expression} <> quota_balance THEN 1 ELSE 0 END), 0) AS would_change FROM members`;
    const rows =
      'membershipType' in selection
        ? await s.rows<{ total: unknown; would_change: unknown }>(`${count} WHERE membership_type = ?`, [
            change.value,
            maxBalance,
            selection.membershipType,
          ])
        : await s.rows<{ total: unknown; would_change: unknown }>(
            `${count} WHERE id IN (${marks(selection.memberIds.length)})`,
            [change.value, maxBalance, ...selection.memberIds],
          );
    return { total: Number(rows[0].total), wouldChange: Number(rows[0].would_change) };
  }

  /** Active configs with a reset period, by id. */
  async resettableConfigs(s: SqlSession): Promise<ResetConfigRow[]> {
    return s.rows<ResetConfigRow>(
      "SELECT id, membership_type, max_quota, reset_period, created_at FROM member_quota_config WHERE reset_period <> 'none' AND is_active = 1 ORDER BY id",
    );
  }
}
