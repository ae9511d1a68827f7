import { Injectable } from '@nestjs/common';
import type { PendingCallerCheck } from '../auth/principal';
import { INVALID_TOKEN } from '../auth/token-errors';
import { NotFoundError } from '../common/app-error';
import type { HistoryReason } from './entities/quota-history.entity';
import { QuotaMetrics } from './quota.metrics';
import { QuotaDatabase } from '../database/database';
import {
  compactSql,
  dbErrorKind,
  readBoolean,
  sqlTimestamp,
  type ExecResult,
  type SqlSession,
  type Statement,
} from '../database/sql-session';
import {
  BalanceOutOfRangeError,
  ConfigInactiveError,
  InsufficientQuotaError,
  MemberInactiveError,
  MembersExistError,
  NegativeBalanceError,
  UnknownMembershipTypeError,
} from './quota.errors';

export const MAX_BALANCE = 2_147_483_647;

export interface LedgerChange {
  readonly memberId: string;
  /** Signed change of the balance. */
  readonly delta: number;
  readonly reason: HistoryReason;
  /** User id of the caller, or "system". */
  readonly actor: string;
  readonly note?: string | null;
  readonly idempotencyKey?: string | null;
  readonly operationId?: string | null;
  /** Consumption and refunds need an active member with an active config; admin changes do not. */
  readonly requireActive?: boolean;
  /** The caller's token, checked by the update itself (see PendingCallerCheck). */
  readonly callerCheck?: PendingCallerCheck;
}

export interface LedgerEntry {
  readonly historyId: string;
  readonly memberId: string;
  readonly delta: number;
  readonly balanceAfter: number;
  readonly reason: HistoryReason;
  readonly configId: string;
}

export interface NewAccount {
  readonly externalId: string;
  readonly membershipType: string;
  /** The opening balance; the type's max_quota when absent. */
  readonly initialQuota?: number;
}

interface MemberState {
  balance: number;
  memberActive: boolean;
  configActive: boolean;
  membershipType: string;
  /** Whether the change's pending caller check holds (true when there is none). */
  callerValid: boolean;
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

/** How many times a conditional update that matched nothing, with no reason found, is retried. */
const MAX_RECHECKS = 3;
const INSERT_CHUNK = 500;

/**
 * The only code that changes `members.quota_balance`. Every change is a conditional UPDATE
 * evaluated by the database (`quota_balance + delta` within 0..2^31-1: never read, compute and
 * write back in JavaScript) plus exactly one history row, inside the caller's transaction.
 */
@Injectable()
export class LedgerService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly metrics: QuotaMetrics,
  ) {}

  async apply(s: SqlSession, change: LedgerChange): Promise<LedgerEntry> {
    for (let check = 0; ; check++) {
      const updated = await this.conditionalUpdate(s, change);
      if (updated) {
        const historyId = await this.insertHistory(s, change, updated.balance);
        return this.applied(change, updated, historyId);
      }
      const state = await this.memberState(s, change);
      this.refuse(state, change);
      // The row changed between the two statements in a way that now allows the change: try again.
      if (check + 1 >= MAX_RECHECKS) throw new Error(`ledger update for member ${change.memberId} kept missing`);
    }
  }

  /**
   * apply() as a transaction of its own in one round trip (QuotaDatabase.batch, MySQL): the
   * conditional update, then the history row, inserted only when the update matched
   * (`ROW_COUNT()` is the preceding statement's), then the caller's `followUp` statement (the
   * idempotency claim), which must likewise write only when the history row was written
   * (`WHERE ROW_COUNT() = 1`). The counts that come back are checked against each other; a
   * refusal is explained by a read afterwards, outside the transaction.
   */
  async applyAlone(
    change: LedgerChange,
    followUp?: Statement,
    options: { retryLockTimeouts?: boolean } = {},
  ): Promise<LedgerEntry> {
    const statements = [this.updateStatement(change), this.historyAfterUpdateStatement(change)];
    if (followUp) statements.push(followUp);
    for (let check = 0; ; check++) {
      const [update, history, follow] = await this.db.batch(statements, options);
      const updated = unpackUpdate(update);
      if (updated) {
        if (history.affected !== 1 || (followUp && follow.affected !== 1) || history.insertId === null) {
          throw new Error(`ledger batch for member ${change.memberId} wrote an unexpected number of rows`);
        }
        return this.applied(change, updated, history.insertId);
      }
      if (history.affected !== 0 || (followUp && follow.affected !== 0)) {
        throw new Error(`ledger batch for member ${change.memberId} wrote rows without a balance change`);
      }
      const state = await this.db.read((s) => this.memberState(s, change));
      this.refuse(state, change);
      if (check + 1 >= MAX_RECHECKS) throw new Error(`ledger update for member ${change.memberId} kept missing`);
    }
  }

  private applied(
    change: LedgerChange,
    updated: { balance: number; configId: string },
    historyId: string,
  ): LedgerEntry {
    // The update matched, so did its caller condition, in this very transaction.
    if (change.callerCheck) change.callerCheck.confirmed = true;
    this.metrics.ledgerChanges.inc({ reason: change.reason });
    return {
      historyId,
      memberId: change.memberId,
      delta: change.delta,
      balanceAfter: updated.balance,
      reason: change.reason,
      configId: updated.configId,
    };
  }

  /** Sets the balance to an exact value: the row is locked, then the difference is applied as a delta. */
  async setBalance(s: SqlSession, change: Omit<LedgerChange, 'delta'> & { newBalance: number }): Promise<LedgerEntry> {
    const rows = await s.rows<{ quota_balance: number }>(
      `SELECT quota_balance FROM members WHERE id = ?${s.sql.forUpdate}`,
      [change.memberId],
    );
    if (rows.length === 0) throw new NotFoundError('Member');
    const { newBalance, ...rest } = change;
    return this.apply(s, { ...rest, delta: newBalance - Number(rows[0].quota_balance) });
  }

  /**
   * Creates members with their opening balances and one `initial_grant` row each, set-based.
   * Refuses unknown or inactive types and external ids that already exist.
   */
  async openAccounts(
    s: SqlSession,
    accounts: readonly NewAccount[],
    actor: string,
    options: { batch?: boolean } = {},
  ): Promise<string[]> {
    const types = [...new Set(accounts.map((a) => a.membershipType))];
    const configs = await s.rows<{ membership_type: string; max_quota: number; is_active: unknown }>(
      `SELECT membership_type, max_quota, is_active FROM member_quota_config WHERE membership_type IN (${marks(types.length)})`,
      types,
    );
    const byType = new Map(configs.map((c) => [c.membership_type, c]));
    accounts.forEach((account, index) => {
      const config = byType.get(account.membershipType);
      const field = options.batch ? `members.${index}.membership_type` : 'membership_type';
      if (!config) throw new UnknownMembershipTypeError(field, account.membershipType);
      if (!readBoolean(config.is_active)) throw new ConfigInactiveError(account.membershipType);
    });

    const externalIds = accounts.map((a) => a.externalId);
    await this.refuseExisting(s, externalIds);

    const now = sqlTimestamp(new Date());
    const opening = accounts.map(
      (account) => account.initialQuota ?? Number(byType.get(account.membershipType)!.max_quota),
    );
    for (let start = 0; start < accounts.length; start += INSERT_CHUNK) {
      const chunk = accounts.slice(start, start + INSERT_CHUNK);
      const values: unknown[] = [];
      chunk.forEach((account, i) => {
        values.push(account.externalId, account.membershipType, opening[start + i], now, now, now);
      });
      try {
        await s.exec(
          `INSERT INTO members (external_id, membership_type, quota_balance, period_started_at, created_at, updated_at) VALUES ${rowMarks(chunk.length, 6)}`,
          values,
        );
      } catch (err) {
        // Another request created one of them since the check above; a locking read sees it.
        if (dbErrorKind(err) === 'duplicate') await this.refuseExisting(s, externalIds, true);
        throw err;
      }
    }

    // The new ids, by a plain read (a transaction sees its own rows without locking anything).
    const ids: string[] = [];
    for (let start = 0; start < externalIds.length; start += INSERT_CHUNK) {
      const chunk = externalIds.slice(start, start + INSERT_CHUNK);
      const rows = await s.rows<{ id: unknown; external_id: string }>(
        `SELECT id, external_id FROM members WHERE external_id IN (${marks(chunk.length)})`,
        chunk,
      );
      const idByExternal = new Map(rows.map((r) => [r.external_id, String(r.id)]));
      for (const externalId of chunk) ids.push(idByExternal.get(externalId)!);
    }
    // Each opening balance becomes the member's first ledger row. The rows are listed as VALUES,
    // never INSERT ... SELECT: on MySQL an INSERT ... SELECT holds the history table's AUTO-INC
    // lock for the whole statement, and a statement that then waits for another transaction's row
    // lock stalls every writer of the ledger (innodb_autoinc_lock_mode=1, the default).
    for (let start = 0; start < ids.length; start += INSERT_CHUNK) {
      const chunk = ids.slice(start, start + INSERT_CHUNK);
      const values: unknown[] = [];
      chunk.forEach((id, i) => values.push(id, opening[start + i], opening[start + i], actor));
      await s.exec(
        `INSERT INTO member_quota_history (member_id, delta, balance_after, actor, reason) VALUES ${rowMarks(chunk.length, 4, "'initial_grant'")}`,
        values,
      );
    }
    this.metrics.ledgerChanges.inc({ reason: 'initial_grant' }, accounts.length);
    return ids;
  }

  /**
   * Moves a member to another membership type. Its balance shifts by the difference between the
   * two types' max_quota (an upgrade grants the extra quota now, a downgrade takes it away),
   * floored at 0, and one `membership_change` row records it (delta 0 when nothing moved).
   * Returns null when the member already has that type.
   */
  async changeMembershipType(
    s: SqlSession,
    memberId: string,
    newType: string,
    actor: string,
  ): Promise<LedgerEntry | null> {
    // Only the member's row is locked: a lock on the config row would queue every consume of
    // the type (their update reads it) behind this change.
    const current = await s.rows<{ membership_type: string; quota_balance: number }>(
      `SELECT membership_type, quota_balance FROM members WHERE id = ?${s.sql.forUpdate}`,
      [memberId],
    );
    if (current.length === 0) throw new NotFoundError('Member');
    const from = current[0];
    if (from.membership_type === newType) return null;
    const configs = await s.rows<{ id: unknown; membership_type: string; max_quota: number; is_active: unknown }>(
      'SELECT id, membership_type, max_quota, is_active FROM member_quota_config WHERE membership_type IN (?, ?)',
      [from.membership_type, newType],
    );
    const source = configs.find((c) => c.membership_type === from.membership_type);
    const target = configs.filter((c) => c.membership_type === newType);
    if (target.length === 0) throw new UnknownMembershipTypeError('membership_type', newType);
    if (!readBoolean(target[0].is_active)) throw new ConfigInactiveError(newType);

    const balance = Number(from.quota_balance);
    const shifted = balance + Number(target[0].max_quota) - Number(source?.max_quota ?? 0);
    const delta = Math.min(MAX_BALANCE, Math.max(0, shifted)) - balance;
    const result = await s.exec(
      `UPDATE members SET membership_type = ?, quota_balance = quota_balance + ?, updated_at = ?
        WHERE id = ? AND quota_balance + ? BETWEEN 0 AND ${MAX_BALANCE}`,
      [newType, delta, sqlTimestamp(new Date()), memberId, delta],
    );
    // The row is locked (FOR UPDATE; SQLite has one writer), so the condition cannot fail here.
    if (result.affected !== 1) throw new Error(`membership change of member ${memberId} matched no row`);
    const change: LedgerChange = {
      memberId,
      delta,
      reason: 'membership_change',
      actor,
      note: `${from.membership_type} -> ${newType}`,
    };
    const historyId = await this.insertHistory(s, change, balance + delta, {
      from: from.membership_type,
      to: newType,
    });
    this.metrics.ledgerChanges.inc({ reason: 'membership_change' });
    return {
      historyId,
      memberId,
      delta,
      balanceAfter: balance + delta,
      reason: 'membership_change',
      configId: String(target[0].id),
    };
  }

  /**
   * The conditional update. On MySQL the new balance and the member's config id come back in the
   * OK packet through LAST_INSERT_ID(expr), which spares a SELECT (round trips are what a consume
   * costs); SQLite has RETURNING.
   */
  private async conditionalUpdate(
    s: SqlSession,
    change: LedgerChange,
  ): Promise<{ balance: number; configId: string } | null> {
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

  /** `types`: a membership change stores the types before and after it as data (the note is for people). */
  private async insertHistory(
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

  private async memberState(s: SqlSession, change: LedgerChange): Promise<MemberState | null> {
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

  /** Says why a conditional update matched nothing; returns when no reason holds (any more). */
  private refuse(state: MemberState | null, change: LedgerChange): void {
    if (change.callerCheck && !change.callerCheck.confirmed) {
      // Before anything about the member: a token that no longer holds learns nothing about it.
      if (state && !state.callerValid) throw INVALID_TOKEN();
      if (state) change.callerCheck.confirmed = true;
    }
    if (!state) throw new NotFoundError('Member');
    if (change.requireActive && !state.memberActive) throw new MemberInactiveError(state.membershipType);
    if (change.requireActive && !state.configActive) throw new ConfigInactiveError(state.membershipType);
    const result = state.balance + change.delta;
    if (result < 0) {
      if (change.reason === 'consumption')
        throw new InsufficientQuotaError(state.balance, -change.delta, state.membershipType);
      throw new NegativeBalanceError(state.balance);
    }
    if (result > MAX_BALANCE) throw new BalanceOutOfRangeError(state.balance);
  }

  private async refuseExisting(s: SqlSession, externalIds: readonly string[], locking = false): Promise<void> {
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
    if (existing.length > 0) throw new MembersExistError(existing.sort());
  }
}

/** The balance and config id that the update packed into LAST_INSERT_ID; null when it matched no row. */
function unpackUpdate(result: ExecResult): { balance: number; configId: string } | null {
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
