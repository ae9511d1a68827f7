import { Injectable } from '@nestjs/common';
import {
  compactSql,
  readBoolean,
  sqlTimestamp,
  type ExecResult,
  type SqlSession,
  type Statement,
} from '../database/sql-session';
import { marks } from '../database/dialect';
import type { LedgerChange } from './ledger.service';

export const MAX_BALANCE = 2_147_483_647;

/** The balance a matched conditional update left, and the member's config id. */
export interface UpdatedBalance {
  readonly balance: number;
  readonly configId: string;
}

/**
 * The conditions a balance change must meet, in the order a refusal names them (the caller first:
 * a token that no longer holds learns nothing about the member).
 */
export type ChangeCondition =
  'callerHolds' | 'memberActive' | 'configActive' | 'notBelowZero' | 'notAboveMax' | 'heldNotAboveMax';

/** What a refusal is explained from: the member as it is now and the first condition it fails. */
export interface MemberState {
  readonly balance: number;
  readonly membershipType: string;
  /** The first of the change's conditions that does not hold now; null when all hold. */
  readonly failed: ChangeCondition | null;
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

/**
 * Each condition is written once, here: the update's WHERE is the conjunction of a change's
 * conditions, and the read that explains a refusal selects each of them as a column, so the
 * database says which one failed and nothing re-derives the rule in TypeScript. The texts are
 * fixed; values travel as `?` parameters (`params` gives them in order).
 */
const CONDITION_SQL: Readonly<Record<ChangeCondition, string>> = {
  callerHolds: CALLER_HOLDS,
  memberActive: 'members.is_active = 1',
  configActive: 'c.is_active = 1',
  notBelowZero: 'members.quota_balance + ? >= 0',
  notAboveMax: `members.quota_balance + ? <= ${MAX_BALANCE}`,
  // members.quota_held has the same range as the balance (its CHECK constraint).
  heldNotAboveMax: `members.quota_held + ? <= ${MAX_BALANCE}`,
};

interface AppliedCondition {
  readonly name: ChangeCondition;
  readonly params: readonly unknown[];
}

/** The conditions of one change, in refusal order, with their parameters. */
function conditionsOf(change: LedgerChange): AppliedCondition[] {
  const conditions: AppliedCondition[] = [];
  const check = change.callerCheck;
  if (check && !check.confirmed) {
    conditions.push({ name: 'callerHolds', params: [check.userId, check.tokenVersion] });
  }
  if (change.requireActive) {
    conditions.push({ name: 'memberActive', params: [] }, { name: 'configActive', params: [] });
  }
  conditions.push({ name: 'notBelowZero', params: [change.delta] }, { name: 'notAboveMax', params: [change.delta] });
  if (change.heldDelta && change.heldDelta > 0)
    conditions.push({ name: 'heldNotAboveMax', params: [change.heldDelta] });
  return conditions;
}

function whereOf(conditions: readonly AppliedCondition[]): string {
  return conditions.map((condition) => CONDITION_SQL[condition.name]).join(' AND ');
}

function paramsOf(conditions: readonly AppliedCondition[]): unknown[] {
  return conditions.flatMap((condition) => condition.params);
}

/**
 * The MySQL update, one text per set of conditions, built once and without the layout whitespace:
 * the driver scans the text for placeholders on every call.
 */
const mysqlUpdates = new Map<string, string>();
function mysqlUpdateSql(conditions: readonly AppliedCondition[], movesHeld: boolean): string {
  const key = `${conditions.map((condition) => condition.name).join(',')}${movesHeld ? '+held' : ''}`;
  let sql = mysqlUpdates.get(key);
  if (sql === undefined) {
    sql = compactSql(`UPDATE members JOIN member_quota_config c ON c.membership_type = members.membership_type
                         SET members.quota_balance = members.quota_balance + ?${movesHeld ? HELD_SET : ''}
                       WHERE members.id = ? AND ${whereOf(conditions)}
                         AND LAST_INSERT_ID((members.quota_balance + ?) * 4294967296 + c.id) > 0`);
    mysqlUpdates.set(key, sql);
  }
  return sql;
}

const HISTORY_AFTER_UPDATE_SQL =
  compactSql(`INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, idempotency_key, note)
              SELECT m.id, ?, m.quota_balance, ?, ?, ?, ?, ? FROM members m WHERE m.id = ? AND ROW_COUNT() = 1`);

/** The `hold` row of a new hold, after the hold row's insert in the same batch: LAST_INSERT_ID() is that row's id. */
const HOLD_HISTORY_AFTER_INSERT_SQL =
  compactSql(`INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, idempotency_key, note, hold_id)
              SELECT m.id, ?, m.quota_balance, ?, ?, ?, ?, ?, LAST_INSERT_ID() FROM members m WHERE m.id = ? AND ROW_COUNT() = 1`);

/** A hold's change also moves the units its member's open holds keep (`members.quota_held`). */
const HELD_SET = ', quota_held = quota_held + ?';

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
    const conditions = conditionsOf(change);
    const held = heldParams(change);
    // RETURNING may not read the FROM table, hence the config id's own subquery.
    const rows = await s.rows<{ balance: number; config_id: unknown }>(
      `UPDATE members SET quota_balance = members.quota_balance + ?${held.length > 0 ? HELD_SET : ''}
         FROM member_quota_config c
        WHERE c.membership_type = members.membership_type AND members.id = ? AND ${whereOf(conditions)}
        RETURNING quota_balance AS balance,
          (SELECT k.id FROM member_quota_config k WHERE k.membership_type = members.membership_type) AS config_id`,
      [delta, ...held, memberId, ...paramsOf(conditions)],
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

  /**
   * changeStatements() for a new hold: the conditional update, then `holdInsert` (the hold row,
   * written only when the update matched), then the `hold` history row naming the hold row just
   * inserted, written only when it was.
   */
  holdStatements(change: LedgerChange, holdInsert: Statement): [Statement, Statement, Statement] {
    const [update, history] = this.changeStatements(change);
    return [update, holdInsert, { sql: HOLD_HISTORY_AFTER_INSERT_SQL, params: history.params }];
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
    const result = change.holdId
      ? await s.exec(
          `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, idempotency_key, note, hold_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [...params, change.holdId],
        )
      : types
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

  /**
   * The member's state as a change's refusal is explained from: each of the change's conditions
   * evaluated by the database, as the update evaluates them. Null when the member does not exist.
   */
  async memberState(s: SqlSession, change: LedgerChange): Promise<MemberState | null> {
    const conditions = conditionsOf(change);
    const checks = conditions.map(
      (condition, i) => `CASE WHEN ${CONDITION_SQL[condition.name]} THEN 1 ELSE 0 END AS c${i}`,
    );
    const rows = await s.rows<Record<string, unknown>>(
      `SELECT members.quota_balance AS balance, members.membership_type AS membership_type, ${checks.join(', ')}
         FROM members JOIN member_quota_config c ON c.membership_type = members.membership_type
        WHERE members.id = ?`,
      [...paramsOf(conditions), change.memberId],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    const failed = conditions.find((_, i) => !readBoolean(row[`c${i}`]));
    return {
      balance: Number(row.balance),
      membershipType: String(row.membership_type),
      failed: failed?.name ?? null,
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
    const conditions = conditionsOf(change);
    const held = heldParams(change);
    return {
      sql: mysqlUpdateSql(conditions, held.length > 0),
      params: [delta, ...held, memberId, ...paramsOf(conditions), delta],
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

/** The parameter of HELD_SET when the change moves held units; none otherwise. */
function heldParams(change: LedgerChange): number[] {
  return change.heldDelta ? [change.heldDelta] : [];
}

/** The balance and config id that the update packed into LAST_INSERT_ID; null when it matched no row. */
function unpackUpdate(result: ExecResult): UpdatedBalance | null {
  if (result.affected === 0 || result.insertId === null) return null;
  const packed = BigInt(result.insertId);
  return { balance: Number(packed >> 32n), configId: String(packed & 0xffffffffn) };
}

/** `(?, ?, ...), (...)` for a multi-row VALUES list; `constant` is SQL text appended to each row. */
function rowMarks(rows: number, columns: number, constant?: string): string {
  const row = `(${marks(columns)}${constant === undefined ? '' : `, ${constant}`})`;
  return new Array<string>(rows).fill(row).join(', ');
}
