import { Injectable } from '@nestjs/common';
import type { HistoryReason } from './entities/quota-history.entity';
import { MAX_BALANCE } from './ledger.service';
import { QuotaMetrics } from './quota.metrics';
import { sqlTimestamp, type Dialect, type SqlSession } from './quota-database';

export type BulkMode = 'delta' | 'set';
export type OperationKind = 'bulk_adjust' | 'config_propagation' | 'periodic_reset';

/** Which members an operation touches: a stored id list (quota_operation_members) or a whole type. */
export type BulkSelection =
  { readonly kind: 'member_ids' } | { readonly kind: 'membership_type'; readonly membershipType: string };

export interface BulkChunk {
  readonly operationId: string;
  readonly selection: BulkSelection;
  /** Members with ids above this one (the operation's cursor) are next. */
  readonly afterId: string;
  readonly limit: number;
  readonly mode: BulkMode;
  readonly value: number;
  readonly reason: HistoryReason;
  readonly actor: string;
  readonly note: string | null;
  /** Periodic resets start the members' new period. */
  readonly periodStartedAt?: Date | null;
}

export interface BulkChunkResult {
  /** Members in the chunk (0: the selection is exhausted). */
  readonly processed: number;
  /** History rows written now (members already done by an earlier attempt are skipped). */
  readonly written: number;
  /** Of those, rows whose delta is not 0. */
  readonly changed: number;
  /** The last member id of the chunk: the next cursor. */
  readonly lastMemberId: string | null;
}

/** A new balance computed by the database, floored at 0 and capped at 2^31-1. */
function clamped(dialect: Dialect, expression: string): string {
  return dialect === 'mysql'
    ? `LEAST(GREATEST(${expression}, 0), ${MAX_BALANCE})`
    : `MIN(MAX(${expression}, 0), ${MAX_BALANCE})`;
}

/**
 * The set-based side of the ledger, for background operations: a chunk of members changes in one
 * transaction with one INSERT ... SELECT writing every history row and one UPDATE copying the new
 * balances from those rows. The unique key on (operation_id, member_id) and the NOT EXISTS make a
 * re-run of a chunk (crash, stalled job, retry) skip the members it already did.
 */
@Injectable()
export class LedgerBulkService {
  constructor(private readonly metrics: QuotaMetrics) {}

  /** Runs inside the caller's transaction. */
  async applyChunk(s: SqlSession, chunk: BulkChunk): Promise<BulkChunkResult> {
    const ids = await this.lockChunk(s, chunk);
    if (ids.length === 0) return { processed: 0, written: 0, changed: 0, lastMemberId: null };
    const first = chunk.afterId;
    const last = ids[ids.length - 1];

    let where: string;
    let whereParams: unknown[];
    if (chunk.selection.kind === 'membership_type') {
      where = 'm.membership_type = ? AND m.id > ? AND m.id <= ?';
      whereParams = [chunk.selection.membershipType, first, last];
    } else {
      where = `m.id IN (SELECT o.member_id FROM quota_operation_members o
                         WHERE o.operation_id = ? AND o.member_id > ? AND o.member_id <= ?)`;
      whereParams = [chunk.operationId, first, last];
    }

    // Rows of this operation above this id were written by this transaction (the members are
    // locked, so no one else writes them); rows below were applied by an earlier attempt.
    const before = await s.rows<{ max_id: string | number | null }>(
      'SELECT COALESCE(MAX(id), 0) AS max_id FROM member_quota_history',
    );
    const baseline = String(before[0]?.max_id ?? 0);

    const target = clamped(s.dialect, chunk.mode === 'delta' ? 'm.quota_balance + ?' : '?');
    const written = await s.exec(
      `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, note)
       SELECT m.id, ${target} - m.quota_balance, ${target}, ?, ?, ?, ?
         FROM members m
        WHERE ${where}
          AND NOT EXISTS (SELECT 1 FROM member_quota_history h
                           WHERE h.operation_id = ? AND h.member_id = m.id AND h.member_id > ? AND h.member_id <= ?)`,
      [
        chunk.value,
        chunk.value,
        chunk.reason,
        chunk.actor,
        chunk.operationId,
        chunk.note,
        ...whereParams,
        // The range keeps the check to this chunk: MariaDB materialises the subquery, and
        // without it that would read every row the operation wrote so far, once per chunk.
        chunk.operationId,
        first,
        last,
      ],
    );

    let changed = 0;
    if (written.affected > 0) {
      const now = sqlTimestamp(new Date());
      const sets = ['quota_balance = h.balance_after', 'updated_at = ?'];
      const setParams: unknown[] = [now];
      if (chunk.periodStartedAt) {
        sets.push('period_started_at = ?');
        setParams.push(sqlTimestamp(chunk.periodStartedAt));
      }
      const ours = 'h.operation_id = ? AND h.id > ? AND h.member_id > ? AND h.member_id <= ?';
      const oursParams = [chunk.operationId, baseline, first, last];
      if (s.dialect === 'mysql') {
        await s.exec(
          `UPDATE members m JOIN member_quota_history h ON h.member_id = m.id
              SET ${sets.map((c) => `m.${c}`).join(', ')}
            WHERE ${ours}`,
          [...setParams, ...oursParams],
        );
      } else {
        await s.exec(
          `UPDATE members SET ${sets.join(', ')} FROM member_quota_history h WHERE h.member_id = members.id AND ${ours}`,
          [...setParams, ...oursParams],
        );
      }
      const counted = await s.rows<{ changed: unknown }>(
        `SELECT COUNT(*) AS changed FROM member_quota_history h WHERE ${ours} AND h.delta <> 0`,
        oursParams,
      );
      changed = Number(counted[0]?.changed ?? 0);
      this.metrics.ledgerChanges.inc({ reason: chunk.reason }, written.affected);
    }
    return { processed: ids.length, written: written.affected, changed, lastMemberId: last };
  }

  /**
   * Locks the chunk's member rows in id order before anything else, so a concurrent consume waits
   * for the chunk (or the chunk for it) instead of the two deadlocking over history index gaps.
   */
  private async lockChunk(s: SqlSession, chunk: BulkChunk): Promise<string[]> {
    const lock = s.dialect === 'mysql' ? ' FOR UPDATE' : '';
    if (chunk.selection.kind === 'membership_type') {
      // MariaDB otherwise reads the type's index from its first entry up to the cursor (a `ref`
      // lookup on membership_type alone), which makes every chunk slower than the one before.
      const index = s.dialect === 'mysql' ? ' FORCE INDEX (idx_members_membership_type)' : '';
      const rows = await s.rows<{ id: unknown }>(
        `SELECT id FROM members${index} WHERE membership_type = ? AND id > ? ORDER BY id LIMIT ?${lock}`,
        [chunk.selection.membershipType, chunk.afterId, chunk.limit],
      );
      return rows.map((r) => String(r.id));
    }
    const listed = await s.rows<{ member_id: unknown }>(
      'SELECT member_id FROM quota_operation_members WHERE operation_id = ? AND member_id > ? ORDER BY member_id LIMIT ?',
      [chunk.operationId, chunk.afterId, chunk.limit],
    );
    if (listed.length === 0) return [];
    const ids = listed.map((r) => String(r.member_id));
    if (lock) {
      await s.rows(
        `SELECT m.id FROM members m
          WHERE m.id IN (SELECT o.member_id FROM quota_operation_members o
                          WHERE o.operation_id = ? AND o.member_id > ? AND o.member_id <= ?)
          ORDER BY m.id${lock}`,
        [chunk.operationId, chunk.afterId, ids[ids.length - 1]],
      );
    }
    return ids;
  }
}

export interface NewOperation {
  readonly kind: OperationKind;
  readonly selection: BulkSelection;
  readonly mode: BulkMode;
  readonly value: number;
  readonly reason: HistoryReason;
  readonly note: string | null;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly requestedBy: string;
  /** For member_ids the caller stores the list and passes its size; for a type it is counted here. */
  readonly total?: number;
  readonly dedupeKey?: string | null;
  readonly requestHash?: string | null;
  readonly configId?: string | null;
  readonly periodKey?: string | null;
  readonly periodStartedAt?: Date | null;
}

type AnnounceListener = (operationId: string) => void;

/**
 * Records background operations (the row that makes them durable) inside the caller's
 * transaction, and tells the queue about them once committed. It lives beside the ledger so the
 * quota module (config propagation) can start an operation without depending on the jobs module,
 * which subscribes with onAnnounce; an operation nobody announced is still found by the jobs
 * module's periodic sweep.
 */
@Injectable()
export class OperationRecorder {
  private readonly listeners: AnnounceListener[] = [];

  async record(s: SqlSession, op: NewOperation): Promise<string> {
    let total = op.total ?? 0;
    if (op.selection.kind === 'membership_type' && op.total === undefined) {
      const rows = await s.rows<{ total: unknown }>('SELECT COUNT(*) AS total FROM members WHERE membership_type = ?', [
        op.selection.membershipType,
      ]);
      total = Number(rows[0]?.total ?? 0);
    }
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

  /** Call after the recording transaction committed. */
  announce(operationId: string): void {
    for (const listener of this.listeners) listener(operationId);
  }

  onAnnounce(listener: AnnounceListener): void {
    this.listeners.push(listener);
  }
}
