import { readTimestamp, type SqlSession } from '../database/sql-session';
import type { LedgerRow } from './ledger-fold';

/** A BIGINT id as read back (mysql2 may give a number or a string, SQLite a number). */
export function idText(value: unknown): string {
  return typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string' ? String(value) : '0';
}

export const marks = (n: number): string => new Array<string>(n).fill('?').join(', ');

export interface RawLedgerRow {
  id: unknown;
  member_id: unknown;
  delta: unknown;
  balance_after: unknown;
  reason: string;
  note: string | null;
  created_at: unknown;
  membership_type: string;
  max_quota: unknown;
  hold_id: unknown;
}

/** Columns for RawLedgerRow; `h` is member_quota_history, `m` members, `c` member_quota_config. */
export const LEDGER_ROW_COLUMNS =
  'h.id, h.member_id, h.delta, h.balance_after, h.reason, h.note, h.created_at, m.membership_type, c.max_quota, h.hold_id';
export const LEDGER_ROW_JOINS =
  'FROM member_quota_history h JOIN members m ON m.id = h.member_id LEFT JOIN member_quota_config c ON c.membership_type = m.membership_type';

export function toLedgerRow(r: RawLedgerRow): LedgerRow {
  return {
    id: Number(r.id),
    memberId: String(r.member_id),
    delta: Number(r.delta),
    balanceAfter: Number(r.balance_after),
    reason: r.reason,
    note: r.note,
    createdAtMs: readTimestamp(r.created_at).getTime(),
    currentType: r.membership_type,
    maxQuota: r.max_quota === null || r.max_quota === undefined ? null : Number(r.max_quota),
    holdId: r.hold_id === null || r.hold_id === undefined ? null : idText(r.hold_id),
  };
}

/**
 * Multi-row upsert on either driver. `add` columns are added to the stored value, the rest
 * replace it.
 */
export async function upsert(
  s: SqlSession,
  table: string,
  columns: readonly string[],
  keys: readonly string[],
  rows: readonly (readonly unknown[])[],
  add: readonly string[] = [],
  chunkSize = 500,
): Promise<void> {
  const updated = columns.filter((c) => !keys.includes(c));
  const tail = s.sql.upsertTail(keys, updated, add);
  for (let i = 0; i < rows.length; i += chunkSize) {
    const chunk = rows.slice(i, i + chunkSize);
    const values = chunk.map(() => `(${marks(columns.length)})`).join(', ');
    await s.exec(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values} ${tail}`, chunk.flat());
  }
}
