import { Injectable } from '@nestjs/common';
import {
  compactSql,
  readBoolean,
  sqlTimestamp,
  type ExecResult,
  type SqlSession,
  type Statement,
} from '../database/sql-session';
import type { LedgerChange } from './ledger.service';

export const MAX_BALANCE = 2_147_483_647;

/** The balance a matched conditional update left, and the member's config id. */
export interface UpdatedBalance {
  readonly balance: number;
  readonly configId: string;
}

/** What a refusal is explained from: the member's row, its config's, and the pending caller check. */
export interface MemberState {
  readonly balance: number;
  readonly memberActive: boolean;
  readonly configActive: boolean;
  readonly membershipType: string;
  /** Whether the change's pending caller check holds (true when there is none). */
  readonly callerValid: boolean;
}

export interface TypeConfig {
  readonly id: string;
  readonly membershipType: string;
  readonly maxQuota: number;
  readonly isActive: boolean;
}

/** A member row to insert with its opening balance. */
export interface OpeningMember {
  readonly externalId: string;
  readonly membershipType: string;
  readonly balance: number;
}

/** The condition a pending caller check adds to an update (on either driver). */
const CALLER_HOLDS = 'EXISTS (SELECT 1 FROM users u WHERE u.id = ? AND u.is_active = 1 AND u.token_version = ?)';

function callerCondition(change: LedgerChange): { sql: string; params: unknown[] } {
  const check = change.callerCheck;
  if (!check || check.confirmed) return { sql: '', params: [] };
  return { sql: ` AND ${CALLER_HOLDS}`, params: [check.userId, check.tokenVersion] };
}

/**
 * The MySQL update in its four forms (requireActive: +1, pending caller check: +2), built once
 * and without the layout whitespace: the driver scans the text for placeholders on every call.
 */
const UPDATE_SQL = [0, 1, 2, 3].map((form) =>
  compactSql(`UPDATE members m JOIN member_quota_config c ON c.membership_type = m.membership_type
                 SET m.quota_balance = m.quota_balance + ?
               WHERE m.id = ? AND m.quota_balance + ? BETWEEN 0 AND ${MAX_BALANCE}
                 ${form & 1 ? 'AND m.is_active = 1 AND c.is_active = 1' : ''}
                 ${form & 2 ? `AND ${CALLER_HOLDS}` : ''}
                 AND LAST_INSERT_ID((m.quota_balance + ?) * 4294967296 + c.id) > 0`),
);

const HISTORY_AFTER_UPDATE_SQL =
  compactSql(`INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, idempotency_key, note)
              SELECT m.id, ?, m.quota_balance, ?, ?, ?, ?, ? FROM members m WHERE m.id = ? AND ROW_COUNT() = 1`);

/** Rows per multi-row statement (an IN list or a VALUES list): well inside every driver's limits. */
const INSERT_CHUNK = 500;

/**
 * Members' balances and their history rows (the ledger): the conditional update that is the
 * only writer of `members.quota_balance`, the history row that goes with each change, the
 * consume batch's statements, the reads that explain a refusal, and the set-based opening of
 * accounts. Every method runs in the session it is given; the rules are LedgerService's.
 */
@Injectable()
export class LedgerRepository {
  /**
   * The conditional update: `quota_balance + delta` within 0..2^31-1 (and, for `requireActive`,
   * an active member with an active config; for a pending caller check, a caller whose token
   * still holds), evaluated by the database. Null when it matched no row. On MySQL the new
   * balance and the member's config id come back in the OK packet through LAST_INSERT_ID(expr),
   * which spares a SELECT (round trips are what a consume costs); SQLite has RETURNING.
   */
  async applyDelta(s: SqlSession, change: LedgerChange): Promise<UpdatedBalance | null> {
    const { memberId, delta } = change;
    if (!s.sql.updateReturning) {
      const update = this.updateStatement(change);
      return unpackUpdate(await s.exec(update.sql, update.params));
    }
    const caller = callerCondition(change);
    const rows = await s.rows<{ balance: number; config_id: unknown }>(
      `UPDATE members SET quota_balance = quota_balance + ?
        WHERE id = ? AND quota_balance + ? BETWEEN 0 AND ${MAX_BALANCE}${
          change.requireActive
            ? ` AND is_active = 1 AND EXISTS (SELECT 1 FROM member_quota_config c
                  WHERE c.membership_type = members.membership_type AND c.is_active = 1)`
            : ''
        }${caller.sql}
        RETURNING quota_balance AS balance,
          (SELECT c.id FROM member_quota_config c WHERE c.membership_type = members.membership_type) AS config_id`,
      [delta, memberId, delta, ...caller.params],
    );
    if (rows.length === 0) return null;
    return { balance: Number(rows[0].balance), configId: String(rows[0].config_id) };
  }

  /**
   * applyDelta() and its history row as the statements of a one-round-trip batch (MySQL): the
   * conditional update, then the history row, inserted only when the update matched
   * (`ROW_COUNT()` is the preceding statement's). Read their results with batchedChange().
   */
  changeStatements(change: LedgerChange): [Statement, Statement] {
    return [this.updateStatement(change), this.historyAfterUpdateStatement(change)];
  }

  /** The balance left by changeStatements()' update, from its result; null when it matched no row. */
  batchedChange(update: ExecResult): UpdatedBalance | null {
    return unpackUpdate(update);
  }

  /**
   * The history row of a change. `types`: a membership change stores the types before and after
   * it as data (the note is for people). Returns the row's id.
   */
  async insertHistory(
    s: SqlSession,
    change: LedgerChange,
    balanceAfter: number,
    types?: { from: string; to: string },
  ): Promise<string> {
    const params = [
      change.memberId,
      change.delta,
      balanceAfter,
      change.reason,
      change.actor,
      change.operationId ?? null,
      change.idempotencyKey ?? null,
      change.note ?? null,
    ];
    const result = types
      ? await s.exec(
          `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, idempotency_key, note, from_membership_type, to_membership_type)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [...params, types.from, types.to],
        )
      : await s.exec(
          `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, idempotency_key, note)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          params,
        );
    if (result.insertId === null) throw new Error('history insert returned no id');
    return result.insertId;
  }

  /** The member's state as a change's refusal is explained from; null when the member does not exist. */
  async memberState(s: SqlSession, change: LedgerChange): Promise<MemberState | null> {
    const caller = callerCondition(change);
    const rows = await s.rows<{
      balance: number;
      member_active: unknown;
      config_active: unknown;
      membership_type: string;
      caller_valid: unknown;
    }>(
      `SELECT m.quota_balance AS balance, m.is_active AS member_active, c.is_active AS config_active, m.membership_type,
              ${caller.sql ? `CASE WHEN ${CALLER_HOLDS} THEN 1 ELSE 0 END` : '1'} AS caller_valid
         FROM members m JOIN member_quota_config c ON c.membership_type = m.membership_type
        WHERE m.id = ?`,
      [...caller.params, change.memberId],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    return {
      balance: Number(row.balance),
      memberActive: readBoolean(row.member_active),
      configActive: readBoolean(row.config_active),
      membershipType: row.membership_type,
      callerValid: readBoolean(row.caller_valid),
    };
  }

  /** Locks the member's row and reads its balance and type; null when there is no such member. */
  async lockMember(s: SqlSession, memberId: string): Promise<{ membershipType: string; balance: number } | null> {
    const rows = await s.rows<{ membership_type: string; quota_balance: number }>(
      `SELECT membership_type, quota_balance FROM members WHERE id = ?${s.sql.forUpdate}`,
      [memberId],
    );
    if (rows.length === 0) return null;
    return { membershipType: rows[0].membership_type, balance: Number(rows[0].quota_balance) };
  }

  /** The configs of these membership types (those that exist). A plain read: no config row is locked. */
  async typeConfigs(s: SqlSession, types: readonly string[]): Promise<TypeConfig[]> {
    const rows = await s.rows<{ id: unknown; membership_type: string; max_quota: number; is_active: unknown }>(
      `SELECT id, membership_type, max_quota, is_active FROM member_quota_config WHERE membership_type IN (${marks(types.length)})`,
      [...types],
    );
    return rows.map((r) => ({
      id: String(r.id),
      membershipType: r.membership_type,
      maxQuota: Number(r.max_quota),
      isActive: readBoolean(r.is_active),
    }));
  }

  /**
   * Moves a member to another type and its balance by `delta`, if the new balance stays within
   * 0..2^31-1; returns whether the row matched.
   */
  async moveMembershipType(s: SqlSession, memberId: string, newType: string, delta: number): Promise<boolean> {
    const result = await s.exec(
      `UPDATE members SET membership_type = ?, quota_balance = quota_balance + ?, updated_at = ?
        WHERE id = ? AND quota_balance + ? BETWEEN 0 AND ${MAX_BALANCE}`,
      [newType, delta, sqlTimestamp(new Date()), memberId, delta],
    );
    return result.affected === 1;
  }

  /** Which of these external ids exist already, sorted; `locking` share-locks what it reads. */
  async existingExternalIds(s: SqlSession, externalIds: readonly string[], locking = false): Promise<string[]> {
    const existing: string[] = [];
    const lock = locking ? s.sql.forShare : '';
    for (let start = 0; start < externalIds.length; start += INSERT_CHUNK) {
      const chunk = externalIds.slice(start, start + INSERT_CHUNK);
      const rows = await s.rows<{ external_id: string }>(
        `SELECT external_id FROM members WHERE external_id IN (${marks(chunk.length)})${lock}`,
        chunk,
      );
      existing.push(...rows.map((r) => r.external_id));
    }
    return existing.sort();
  }

  /**
   * Inserts the members with their opening balances, set-based, and returns their ids in the
   * order given. A duplicate external id fails with the driver's duplicate-key error.
   */
  async insertMembers(s: SqlSession, members: readonly OpeningMember[]): Promise<string[]> {
    const now = sqlTimestamp(new Date());
    for (let start = 0; start < members.length; start += INSERT_CHUNK) {
      const chunk = members.slice(start, start + INSERT_CHUNK);
      const values: unknown[] = [];
      for (const member of chunk) {
        values.push(member.externalId, member.membershipType, member.balance, now, now, now);
      }
      await s.exec(
        `INSERT INTO members (external_id, membership_type, quota_balance, period_started_at, created_at, updated_at) VALUES ${rowMarks(chunk.length, 6)}`,
        values,
      );
    }
    // The new ids, by a plain read (a transaction sees its own rows without locking anything).
    const ids: string[] = [];
    for (let start = 0; start < members.length; start += INSERT_CHUNK) {
      const chunk = members.slice(start, start + INSERT_CHUNK).map((m) => m.externalId);
      const rows = await s.rows<{ id: unknown; external_id: string }>(
        `SELECT id, external_id FROM members WHERE external_id IN (${marks(chunk.length)})`,
        chunk,
      );
      const idByExternal = new Map(rows.map((r) => [r.external_id, String(r.id)]));
      for (const externalId of chunk) ids.push(idByExternal.get(externalId)!);
    }
    return ids;
  }

  /**
   * One `initial_grant` history row per new member (`balances[i]` for `memberIds[i]`). The rows
   * are listed as VALUES, never INSERT ... SELECT: on MySQL an INSERT ... SELECT holds the history
   * table's AUTO-INC lock for the whole statement, and a statement that then waits for another
   * transaction's row lock stalls every writer of the ledger (innodb_autoinc_lock_mode=1).
   */
  async insertOpeningHistory(
    s: SqlSession,
    memberIds: readonly string[],
    balances: readonly number[],
    actor: string,
  ): Promise<void> {
    for (let start = 0; start < memberIds.length; start += INSERT_CHUNK) {
      const chunk = memberIds.slice(start, start + INSERT_CHUNK);
      const values: unknown[] = [];
      chunk.forEach((id, i) => values.push(id, balances[start + i], balances[start + i], actor));
      await s.exec(
        `INSERT INTO member_quota_history (member_id, delta, balance_after, actor, reason) VALUES ${rowMarks(chunk.length, 4, "'initial_grant'")}`,
        values,
      );
    }
  }

  /** MySQL's conditional update; the OK packet carries the new balance and config id (unpackUpdate). */
  private updateStatement(change: LedgerChange): Statement {
    const { memberId, delta } = change;
    const caller = callerCondition(change);
    return {
      sql: UPDATE_SQL[(change.requireActive ? 1 : 0) + (caller.sql ? 2 : 0)],
      params: [delta, memberId, delta, ...caller.params, delta],
    };
  }

  /** The history row of the update just before it in the same batch, written only if that update matched. */
  private historyAfterUpdateStatement(change: LedgerChange): Statement {
    return {
      sql: HISTORY_AFTER_UPDATE_SQL,
      params: [
        change.delta,
        change.reason,
        change.actor,
        change.operationId ?? null,
        change.idempotencyKey ?? null,
        change.note ?? null,
        change.memberId,
      ],
    };
  }
}

/** The balance and config id that the update packed into LAST_INSERT_ID; null when it matched no row. */
function unpackUpdate(result: ExecResult): UpdatedBalance | null {
  if (result.affected === 0 || result.insertId === null) return null;
  const packed = BigInt(result.insertId);
  return { balance: Number(packed >> 32n), configId: String(packed & 0xffffffffn) };
}

function marks(count: number): string {
  return new Array<string>(count).fill('?').join(', ');
}

/** `(?, ?, ...), (...)` for a multi-row VALUES list; `constant` is SQL text appended to each row. */
function rowMarks(rows: number, columns: number, constant?: string): string {
  const row = `(${marks(columns)}${constant === undefined ? '' : `, ${constant}`})`;
  return new Array<string>(rows).fill(row).join(', ');
}
