export interface LedgerMismatch {
  readonly member_id: string;
  readonly balance: number;
  readonly ledger_sum: number;
}

/** A member whose `quota_held` differs from the units of its open holds. */
export interface HeldMismatch {
  readonly member_id: string;
  readonly held: number;
  readonly open_holds: number;
}

export interface IntegrityReport {
  readonly checked: number;
  readonly mismatches: LedgerMismatch[];
  readonly held_mismatches: HeldMismatch[];
}

export type RowQuery = (sql: string, params: unknown[]) => Promise<Record<string, unknown>[]>;

/** At most this many mismatches are listed (there should be none, ever). */
export const MAX_LISTED_MISMATCHES = 1000;

/**
 * The ledger invariants, checked set-based: every member's balance equals the sum of its history
 * deltas, and its `quota_held` the units of its open holds. Shared by the admin endpoint and
 * `quota:verify`.
 */
export async function checkLedger(query: RowQuery, memberId?: string): Promise<IntegrityReport> {
  const where = memberId === undefined ? '' : ' WHERE m.id = ?';
  const params = memberId === undefined ? [] : [memberId];
  const counted = await query(`SELECT COUNT(*) AS checked FROM members m${where}`, params);
  const rows = await query(
    `SELECT m.id AS member_id, m.quota_balance AS balance, COALESCE(s.ledger_sum, 0) AS ledger_sum
       FROM members m
       LEFT JOIN (SELECT member_id, SUM(delta) AS ledger_sum FROM member_quota_history GROUP BY member_id) s
         ON s.member_id = m.id${where}${where ? ' AND' : ' WHERE'} m.quota_balance <> COALESCE(s.ledger_sum, 0)
      ORDER BY m.id
      LIMIT ${MAX_LISTED_MISMATCHES}`,
    params,
  );
  const held = await query(
    `SELECT m.id AS member_id, m.quota_held AS held, COALESCE(h.open_holds, 0) AS open_holds
       FROM members m
       LEFT JOIN (SELECT member_id, SUM(amount) AS open_holds FROM quota_holds WHERE status = 'held' GROUP BY member_id) h
         ON h.member_id = m.id${where}${where ? ' AND' : ' WHERE'} m.quota_held <> COALESCE(h.open_holds, 0)
      ORDER BY m.id
      LIMIT ${MAX_LISTED_MISMATCHES}`,
    params,
  );
  return {
    held_mismatches: held.map((r) => ({
      member_id: String(r.member_id),
      held: Number(r.held),
      open_holds: Number(r.open_holds),
    })),
    checked: Number(counted[0]?.checked ?? 0),
    mismatches: rows.map((r) => ({
      member_id: String(r.member_id),
      balance: Number(r.balance),
      ledger_sum: Number(r.ledger_sum),
    })),
  };
}
