import { Injectable } from '@nestjs/common';
import type { HistoryReason } from './entities/quota-history.entity';
import { MAX_BALANCE } from './ledger.service';
import { QuotaMetrics } from './quota.metrics';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';

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

/** A new balance, floored at 0 and capped at 2^31-1 (the same rule as LedgerService's). */
function clampBalance(value: number): number {
  return Math.min(MAX_BALANCE, Math.max(0, value));
}

/** Members per statement (ids in one IN list): well inside every driver's parameter limit. */
const STATEMENT_ROWS = 1000;

interface LockedMember {
  readonly id: string;
  readonly balance: number;
}

/**
 * The set-based side of the ledger, for background operations: a chunk of members changes in one
 * transaction. Its member rows are locked in id order; then, 1,000 members at a time, one
 * statement writes their history rows and one sets their balances, both by primary key.
 *
 * No statement reads a row the chunk has not locked. On MySQL/MariaDB
 * (innodb_autoinc_lock_mode=1, the default) an INSERT ... SELECT holds the history table's
 * AUTO-INC lock for the whole statement; one that waits for a row lock meanwhile (a gap next to
 * another operation's rows, a member another transaction holds) stalls every other writer of the
 * ledger and ends in error 1467 or a lock wait time-out. Selecting the chunk's own locked rows by
 * primary key never waits, and keeps the work in the database (as fast as the range-based
 * statement it replaces, where listing every row as VALUES measured slower).
 *
 * The unique key on (operation_id, member_id) and the read of the members this operation already
 * did make a re-run of a chunk (crash, stalled job, retry) skip them.
 */
@Injectable()
export class LedgerBulkService {
  constructor(private readonly metrics: QuotaMetrics) {}

  /** Runs inside the caller's transaction. */
  async applyChunk(s: SqlSession, chunk: BulkChunk): Promise<BulkChunkResult> {
    const locked = await this.lockChunk(s, chunk);
    if (locked.length === 0) return { processed: 0, written: 0, changed: 0, lastMemberId: null };
    const last = locked[locked.length - 1].id;

    // Written by an earlier attempt of this chunk (a plain read, after the locks: only a
    // transaction holding these members could have written rows for them since).
    const done = await s.rows<{ member_id: unknown }>(
      'SELECT member_id FROM member_quota_history WHERE operation_id = ? AND member_id > ? AND member_id <= ?',
      [chunk.operationId, chunk.afterId, last],
    );
    const skip = new Set(done.map((r) => String(r.member_id)));
    const changes = locked
      .filter((m) => !skip.has(m.id))
      .map((m) => {
        const after = clampBalance(chunk.mode === 'delta' ? m.balance + chunk.value : chunk.value);
        return { id: m.id, delta: after - m.balance, after };
      });

    // The new balance, computed by the database from the locked row with the same floor and cap.
    const target =
      chunk.mode === 'delta'
        ? `CASE WHEN quota_balance + ? < 0 THEN 0 WHEN quota_balance + ? > ${MAX_BALANCE} THEN ${MAX_BALANCE} ELSE quota_balance + ? END`
        : '?';
    const targetParams = chunk.mode === 'delta' ? [chunk.value, chunk.value, chunk.value] : [clampBalance(chunk.value)];
    const now = sqlTimestamp(new Date());
    const sets = [`quota_balance = ${target}`, 'updated_at = ?'];
    const setParams: unknown[] = [...targetParams, now];
    if (chunk.periodStartedAt) {
      sets.push('period_started_at = ?');
      setParams.push(sqlTimestamp(chunk.periodStartedAt));
    }
    for (let start = 0; start < changes.length; start += STATEMENT_ROWS) {
      const ids = changes.slice(start, start + STATEMENT_ROWS).map((c) => c.id);
      const list = ids.map(() => '?').join(', ');
      // Reads only member rows this transaction has just locked, each by its primary key: the
      // statement cannot wait for another transaction while it holds the ledger's AUTO-INC lock.
      await s.exec(
        `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, note, created_at)
         SELECT id, ${target} - quota_balance, ${target}, ?, ?, ?, ?, ? FROM members WHERE id IN (${list})`,
        [...targetParams, ...targetParams, chunk.reason, chunk.actor, chunk.operationId, chunk.note, now, ...ids],
      );
      await s.exec(`UPDATE members SET ${sets.join(', ')} WHERE id IN (${list})`, [...setParams, ...ids]);
    }

    const changed = changes.filter((c) => c.delta !== 0).length;
    if (changes.length > 0) this.metrics.ledgerChanges.inc({ reason: chunk.reason }, changes.length);
    return { processed: locked.length, written: changes.length, changed, lastMemberId: last };
  }

  /**
   * Locks the chunk's member rows in id order before anything else, so a concurrent consume waits
   * for the chunk (or the chunk for it) instead of the two deadlocking, and reads their balances.
   */
  private async lockChunk(s: SqlSession, chunk: BulkChunk): Promise<LockedMember[]> {
    const lock = s.sql.forUpdate;
    let rows: { id: unknown; quota_balance: unknown }[];
    if (chunk.selection.kind === 'membership_type') {
      // MariaDB otherwise reads the type's index from its first entry up to the cursor (a `ref`
      // lookup on membership_type alone), which makes every chunk slower than the one before.
      const index = s.sql.forceIndex('idx_members_membership_type');
      rows = await s.rows(
        `SELECT id, quota_balance FROM members${index} WHERE membership_type = ? AND id > ? ORDER BY id LIMIT ?${lock}`,
        [chunk.selection.membershipType, chunk.afterId, chunk.limit],
      );
    } else {
      const listed = await s.rows<{ member_id: unknown }>(
        'SELECT member_id FROM quota_operation_members WHERE operation_id = ? AND member_id > ? ORDER BY member_id LIMIT ?',
        [chunk.operationId, chunk.afterId, chunk.limit],
      );
      if (listed.length === 0) return [];
      const ids = listed.map((r) => String(r.member_id));
      rows = [];
      for (let start = 0; start < ids.length; start += STATEMENT_ROWS) {
        const part = ids.slice(start, start + STATEMENT_ROWS);
        rows.push(
          ...(await s.rows<{ id: unknown; quota_balance: unknown }>(
            `SELECT id, quota_balance FROM members WHERE id IN (${part.map(() => '?').join(', ')}) ORDER BY id${lock}`,
            part,
          )),
        );
      }
    }
    return rows.map((r) => ({ id: String(r.id), balance: Number(r.quota_balance) }));
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
