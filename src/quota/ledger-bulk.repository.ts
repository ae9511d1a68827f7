import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { BulkChunk, BulkTarget } from './ledger-bulk.service';
import { MAX_BALANCE } from './ledger.repository';

/** Members per statement (ids in one IN list): well inside every driver's parameter limit. */
const STATEMENT_ROWS = 1000;

export interface LockedMember {
  readonly id: string;
  readonly balance: number;
  /** Units the member's open holds keep (members.quota_held). */
  readonly held: number;
}

/**
 * The ledger's set-based statements for background operations: a chunk's member rows locked in
 * id order, the members an earlier attempt of the operation already did, and a chunk's history
 * rows and balances written by primary key. Every method runs in the session it is given.
 *
 * No statement reads a row the chunk has not locked. On MySQL/MariaDB
 * (innodb_autoinc_lock_mode=1, the default) an INSERT ... SELECT holds the history table's
 * AUTO-INC lock for the whole statement; one that waits for a row lock meanwhile (a gap next to
 * another operation's rows, a member another transaction holds) stalls every other writer of the
 * ledger and ends in error 1467 or a lock wait time-out. Selecting the chunk's own locked rows by
 * primary key never waits, and keeps the work in the database (as fast as the range-based
 * statement it replaces, where listing every row as VALUES measured slower).
 */
@Injectable()
export class LedgerBulkRepository {
  /**
   * Locks the chunk's member rows (up to `limit` after the cursor) in id order and reads their
   * balances: a concurrent consume then waits for the chunk (or the chunk for it) instead of the
   * two deadlocking.
   */
  async lockChunkMembers(s: SqlSession, chunk: BulkChunk): Promise<LockedMember[]> {
    const lock = s.sql.forUpdate;
    const upTo = chunk.upToId ?? null;
    let rows: { id: unknown; quota_balance: unknown; quota_held: unknown }[];
    if (chunk.selection.kind === 'membership_type') {
      // MariaDB otherwise reads the type's index from its first entry up to the cursor (a `ref`
      // lookup on membership_type alone), which makes every chunk slower than the one before.
      const index = s.sql.forceIndex('idx_members_membership_type');
      rows = await s.rows(
        `SELECT id, quota_balance, quota_held FROM members${index} WHERE membership_type = ? AND id > ?${upTo === null ? '' : ' AND id <= ?'} ORDER BY id LIMIT ?${lock}`,
        [chunk.selection.membershipType, chunk.afterId, ...(upTo === null ? [] : [upTo]), chunk.limit],
      );
    } else {
      const listed = await s.rows<{ member_id: unknown }>(
        `SELECT member_id FROM quota_operation_members WHERE operation_id = ? AND member_id > ?${upTo === null ? '' : ' AND member_id <= ?'} ORDER BY member_id LIMIT ?`,
        [chunk.operationId, chunk.afterId, ...(upTo === null ? [] : [upTo]), chunk.limit],
      );
      if (listed.length === 0) return [];
      const ids = listed.map((r) => String(r.member_id));
      rows = [];
      for (let start = 0; start < ids.length; start += STATEMENT_ROWS) {
        const part = ids.slice(start, start + STATEMENT_ROWS);
        rows.push(
          ...(await s.rows<{ id: unknown; quota_balance: unknown; quota_held: unknown }>(
            `SELECT id, quota_balance, quota_held FROM members WHERE id IN (${part.map(() => '?').join(', ')}) ORDER BY id${lock}`,
            part,
          )),
        );
      }
    }
    return rows.map((r) => ({ id: String(r.id), balance: Number(r.quota_balance), held: Number(r.quota_held) }));
  }

  /** Whether the selection has a member in (afterId, upToId] (a plain read; upToId null: no upper bound). */
  async hasMembersIn(s: SqlSession, chunk: BulkTarget, afterId: string, upToId: string | null): Promise<boolean> {
    const bound = upToId === null ? [] : [upToId];
    const rows =
      chunk.selection.kind === 'membership_type'
        ? await s.rows(
            `SELECT id FROM members${s.sql.forceIndex('idx_members_membership_type')} WHERE membership_type = ? AND id > ?${upToId === null ? '' : ' AND id <= ?'} ORDER BY id LIMIT 1`,
            [chunk.selection.membershipType, afterId, ...bound],
          )
        : await s.rows(
            `SELECT member_id FROM quota_operation_members WHERE operation_id = ? AND member_id > ?${upToId === null ? '' : ' AND member_id <= ?'} ORDER BY member_id LIMIT 1`,
            [chunk.operationId, afterId, ...bound],
          );
    return rows.length > 0;
  }

  /**
   * The id that ends a range of `span` members after `afterId` (the span-th member of the
   * selection after it, in id order); null when fewer are left. The index walks `span` entries and
   * hands back one id, so planning never holds an operation's member ids.
   */
  async rangeEnd(s: SqlSession, chunk: BulkTarget, afterId: string, span: number): Promise<string | null> {
    const rows =
      chunk.selection.kind === 'membership_type'
        ? await s.rows<{ id: unknown }>(
            `SELECT id FROM members${s.sql.forceIndex('idx_members_membership_type')} WHERE membership_type = ? AND id > ? ORDER BY id LIMIT 1 OFFSET ?`,
            [chunk.selection.membershipType, afterId, span - 1],
          )
        : await s.rows<{ id: unknown }>(
            'SELECT member_id AS id FROM quota_operation_members WHERE operation_id = ? AND member_id > ? ORDER BY member_id LIMIT 1 OFFSET ?',
            [chunk.operationId, afterId, span - 1],
          );
    return rows.length === 0 ? null : String(rows[0].id);
  }

  /**
   * The members in (afterId, lastId] that already have a history row of this operation (a plain
   * read: call it after the chunk's locks, so only a transaction holding these members could have
   * written rows for them since).
   */
  async membersDone(s: SqlSession, operationId: string, afterId: string, lastId: string): Promise<Set<string>> {
    const done = await s.rows<{ member_id: unknown }>(
      'SELECT member_id FROM member_quota_history WHERE operation_id = ? AND member_id > ? AND member_id <= ?',
      [operationId, afterId, lastId],
    );
    return new Set(done.map((r) => String(r.member_id)));
  }

  /**
   * Writes the chunk's change for these locked members, 1,000 at a time: one statement their
   * history rows, one their balances, both by primary key. The new balance is computed by the
   * database from the locked row: `quota_balance + value` floored at 0 and capped at 2^31-1 for
   * `delta`, `value` itself for `set` (which the caller passes within range), and for a set that
   * keeps held units out (a reset) `value - quota_held` floored at 0.
   */
  async writeChunk(s: SqlSession, chunk: BulkChunk, memberIds: readonly string[]): Promise<void> {
    const target =
      chunk.mode === 'delta'
        ? `CASE WHEN quota_balance + ? < 0 THEN 0 WHEN quota_balance + ? > ${MAX_BALANCE} THEN ${MAX_BALANCE} ELSE quota_balance + ? END`
        : chunk.keepsHeld
          ? 'CASE WHEN ? - quota_held < 0 THEN 0 ELSE ? - quota_held END'
          : '?';
    const targetParams =
      chunk.mode === 'delta'
        ? [chunk.value, chunk.value, chunk.value]
        : chunk.keepsHeld
          ? [chunk.value, chunk.value]
          : [chunk.value];
    const now = sqlTimestamp(new Date());
    const sets = [`quota_balance = ${target}`, 'updated_at = ?'];
    const setParams: unknown[] = [...targetParams, now];
    if (chunk.periodStartedAt) {
      sets.push('period_started_at = ?');
      setParams.push(sqlTimestamp(chunk.periodStartedAt));
    }
    for (let start = 0; start < memberIds.length; start += STATEMENT_ROWS) {
      const ids = memberIds.slice(start, start + STATEMENT_ROWS);
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
  }
}
