import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';

/**
 * How far before an instant a hold still open at it can have been made: a hold lives at most its
 * TTL (86,400 s) plus however late the expiry sweep settles it. Holds made earlier than this are
 * counted only while still `held` (a sweep stopped for a week); see HELD_OLD_WHERE.
 */
export const HOLD_LOOKBACK_MS = 8 * 86_400_000;
/** A hold made before an instant minus HOLD_LOOKBACK_MS expired (by its TTL) at least this long before it. */
const HOLD_EXPIRED_BY_MS = HOLD_LOOKBACK_MS - 86_400_000;

/**
 * The balance after the member's last ledger row at or before an instant, or strictly before it;
 * ties on created_at go to the highest id. Parameters: member, member, instant.
 *
 * Written as "the row at the latest created_at" rather than `ORDER BY created_at DESC, id DESC
 * LIMIT 1`: for that form MariaDB 10.11 picks ref access on member_id alone and walks the member's
 * rows back from the newest (50,000 rows for an instant in the middle of a 100,000-row history),
 * while MAX() on an index prefix is a single dive ("Select tables optimized away") and the row is
 * then a ref on (member_id, created_at), read backwards in id order.
 */
const BALANCE_AT_OR_BEFORE = `SELECT balance_after FROM member_quota_history
   WHERE member_id = ? AND created_at = (SELECT MAX(created_at) FROM member_quota_history WHERE member_id = ? AND created_at <= ?)
   ORDER BY id DESC LIMIT 1`;
const BALANCE_BEFORE = `SELECT balance_after FROM member_quota_history
   WHERE member_id = ? AND created_at = (SELECT MAX(created_at) FROM member_quota_history WHERE member_id = ? AND created_at < ?)
   ORDER BY id DESC LIMIT 1`;

/**
 * Units in the member's holds open at an instant t: made at or before t and not settled by then.
 * Holds made in the HOLD_LOOKBACK_MS before t are a range of idx_quota_holds_member (HELD_RECENT);
 * older ones can only be open if still `held` past their expiry (HELD_OLD_WHERE), read through
 * idx_quota_holds_status_expires, whose range is empty while the sweep runs (MariaDB would
 * otherwise pick the member index and read all of the member's old holds).
 * Parameters (heldAtParams): member, t − lookback, t, t, then t − expired-by, member, t − lookback.
 */
const HELD_RECENT = `(SELECT COALESCE(SUM(amount), 0) FROM quota_holds
    WHERE member_id = ? AND created_at > ? AND created_at <= ? AND (settled_at IS NULL OR settled_at > ?))`;
const HELD_OLD_WHERE = "WHERE status = 'held' AND expires_at <= ? AND member_id = ? AND created_at <= ?";
const HELD_OLD_INDEX = 'idx_quota_holds_status_expires';

function heldAtParams(memberId: string, at: Date): unknown[] {
  const lookback = sqlTimestamp(new Date(at.getTime() - HOLD_LOOKBACK_MS));
  const expiredBy = sqlTimestamp(new Date(at.getTime() - HOLD_EXPIRED_BY_MS));
  const t = sqlTimestamp(at);
  return [memberId, lookback, t, t, expiredBy, memberId, lookback];
}

export interface BalanceAt {
  /** Null when the member has no ledger row at or before the instant. */
  readonly balance: number | null;
  readonly held: number;
}

/** A member's balances around a window of its ledger, and its holds open at the window's end. */
export interface WindowBalances {
  /** Balance after the last row before `from`; 0 when there is none. */
  readonly opening: number;
  /** Balance after the last row at or before `to`; 0 when there is none. */
  readonly closing: number;
  /** Units kept by the holds open at `to`. */
  readonly held: number;
}

/** The ledger read in time order: a member's balance at an instant, and around a window. */
@Injectable()
export class BalancesInTimeRepository {
  async balanceAt(s: SqlSession, memberId: string, at: Date): Promise<BalanceAt> {
    const rows = await s.rows<{ balance: unknown; held: unknown }>(
      `SELECT (${BALANCE_AT_OR_BEFORE}) AS balance, ${HELD_RECENT}
         + (SELECT COALESCE(SUM(amount), 0) FROM quota_holds${s.sql.forceIndex(HELD_OLD_INDEX)} ${HELD_OLD_WHERE}) AS held`,
      [memberId, memberId, sqlTimestamp(at), ...heldAtParams(memberId, at)],
    );
    const row = rows[0];
    return { balance: row.balance === null ? null : Number(row.balance), held: Number(row.held) };
  }

  /**
   * One statement, so one snapshot: the balance just before `from`, the balance at `to` and the
   * holds open at `to` (a statement's totals are the analytics module's: its daily rollups).
   */
  async windowBalances(s: SqlSession, memberId: string, from: Date, to: Date): Promise<WindowBalances> {
    const rows = await s.rows<{ opening: unknown; closing: unknown; held: unknown }>(
      `SELECT (${BALANCE_BEFORE}) AS opening, (${BALANCE_AT_OR_BEFORE}) AS closing, ${HELD_RECENT}
         + (SELECT COALESCE(SUM(amount), 0) FROM quota_holds${s.sql.forceIndex(HELD_OLD_INDEX)} ${HELD_OLD_WHERE}) AS held`,
      [memberId, memberId, sqlTimestamp(from), memberId, memberId, sqlTimestamp(to), ...heldAtParams(memberId, to)],
    );
    const row = rows[0];
    return { opening: Number(row.opening ?? 0), closing: Number(row.closing ?? 0), held: Number(row.held) };
  }
}
