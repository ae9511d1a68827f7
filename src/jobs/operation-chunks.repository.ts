import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';

/** A member id range of an operation: members with ids in (fromMemberId, toMemberId]. */
export interface ChunkRange {
  readonly fromMemberId: string;
  /** null: no upper bound (the operation's last range). */
  readonly toMemberId: string | null;
}

/** A chunk a runner holds the lease of. */
export interface ClaimedChunk extends ChunkRange {
  readonly id: string;
  /** This claim's number for the chunk (1 = the first). */
  readonly attempt: number;
}

/** An operation's chunks counted: `planned` 0 means the operation has not been planned yet. */
export interface ChunkCounts {
  readonly planned: number;
  readonly pending: number;
}

/** Rows per planning INSERT: well inside every driver's parameter limit. */
const INSERT_ROWS = 500;

/**
 * The SQL of an operation's chunks (quota_operation_chunks): the plan, the claim with a lease, and
 * the end of a chunk. Every method runs in the session it is given; OperationRunner keeps the rules.
 *
 * A claim locks only chunk rows, with FOR UPDATE SKIP LOCKED: runners pass over a chunk another one
 * is claiming or applying (the applying transaction holds its row lock until it commits), and the
 * lease keeps the others away between the claim and the apply. A chunk is applied only while its
 * row still names this claim (`claimed_by`), so a runner whose lease lapsed and was taken over
 * applies nothing.
 */
@Injectable()
export class OperationChunksRepository {
  async counts(s: SqlSession, operationId: string): Promise<ChunkCounts> {
    const rows = await s.rows<{ planned: unknown; pending: unknown }>(
      `SELECT COUNT(*) AS planned, COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS pending
         FROM quota_operation_chunks WHERE operation_id = ?`,
      [operationId],
    );
    return { planned: Number(rows[0].planned), pending: Number(rows[0].pending) };
  }

  /** Stores the planned ranges, pending, in the given order. */
  async insert(s: SqlSession, operationId: string, ranges: readonly ChunkRange[], now: Date): Promise<void> {
    const at = sqlTimestamp(now);
    for (let start = 0; start < ranges.length; start += INSERT_ROWS) {
      const part = ranges.slice(start, start + INSERT_ROWS);
      await s.exec(
        `INSERT INTO quota_operation_chunks (operation_id, from_member_id, to_member_id, created_at, updated_at)
         VALUES ${part.map(() => '(?, ?, ?, ?, ?)').join(', ')}`,
        part.flatMap((r) => [operationId, r.fromMemberId, r.toMemberId, at, at]),
      );
    }
  }

  /**
   * Claims the operation's first pending chunk (in member order) whose lease is free or lapsed:
   * counts the claim and sets the lease to `token` until `leaseUntil`. Null when there is none to
   * take now. Call in its own short transaction.
   */
  async claim(
    s: SqlSession,
    operationId: string,
    token: string,
    now: Date,
    leaseUntil: Date,
  ): Promise<ClaimedChunk | null> {
    const at = sqlTimestamp(now);
    const rows = await s.rows<{
      id: string | number;
      from_member_id: string | number;
      to_member_id: string | number | null;
      attempts: unknown;
    }>(
      `SELECT id, from_member_id, to_member_id, attempts FROM quota_operation_chunks
        WHERE operation_id = ? AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)
        ORDER BY from_member_id LIMIT 1${s.sql.forUpdateSkipLocked}`,
      [operationId, at],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    await s.exec(
      'UPDATE quota_operation_chunks SET attempts = attempts + 1, claimed_until = ?, claimed_by = ?, updated_at = ? WHERE id = ?',
      [sqlTimestamp(leaseUntil), token, at, row.id],
    );
    return {
      id: String(row.id),
      fromMemberId: String(row.from_member_id),
      toMemberId: row.to_member_id === null ? null : String(row.to_member_id),
      attempt: Number(row.attempts) + 1,
    };
  }

  /**
   * Write-locks a claimed chunk for the transaction that applies it; false when it is done or its
   * lease went to another claim meanwhile.
   */
  async lockClaimed(s: SqlSession, chunkId: string, token: string): Promise<boolean> {
    const rows = await s.rows<{ status: string; claimed_by: string | null }>(
      `SELECT status, claimed_by FROM quota_operation_chunks WHERE id = ?${s.sql.forUpdate}`,
      [chunkId],
    );
    return rows.length === 1 && rows[0].status === 'pending' && rows[0].claimed_by === token;
  }

  /**
   * Ends the chunk's range at `lastMemberId` and plans the rest of it, (lastMemberId, old end], as
   * a new pending chunk: for a range that holds more members than one transaction takes.
   */
  async split(s: SqlSession, operationId: string, chunk: ClaimedChunk, lastMemberId: string, now: Date): Promise<void> {
    await s.exec('UPDATE quota_operation_chunks SET to_member_id = ? WHERE id = ?', [lastMemberId, chunk.id]);
    await this.insert(s, operationId, [{ fromMemberId: lastMemberId, toMemberId: chunk.toMemberId }], now);
  }

  /** Marks a locked chunk done with its counts; `claimed_by` stays, naming who did it. */
  async markDone(
    s: SqlSession,
    chunkId: string,
    counts: { processed: number; changed: number },
    now: Date,
  ): Promise<void> {
    const at = sqlTimestamp(now);
    await s.exec(
      `UPDATE quota_operation_chunks SET status = 'done', processed = ?, changed = ?, claimed_until = NULL,
              finished_at = ?, updated_at = ?
        WHERE id = ?`,
      [counts.processed, counts.changed, at, at, chunkId],
    );
  }

  /** Hands a chunk back (its apply kept failing) so that any runner may take it at once. */
  async release(s: SqlSession, chunkId: string, token: string, now: Date): Promise<void> {
    await s.exec(
      `UPDATE quota_operation_chunks SET claimed_until = NULL, updated_at = ?
        WHERE id = ? AND claimed_by = ? AND status = 'pending'`,
      [sqlTimestamp(now), chunkId, token],
    );
  }
}
