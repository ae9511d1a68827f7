import { Injectable } from '@nestjs/common';
import { marks } from '../database/dialect';
import { readTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import { idText, LEDGER_ROW_COLUMNS, LEDGER_ROW_JOINS, toLedgerRow, upsert, type RawLedgerRow } from './analytics-sql';
import { typeChange, type LedgerRow, type TypeChange } from './ledger-fold';

/** The name of the tail processor's row in quota_analytics_state. */
export const TAIL_STATE = 'history_tail';

/** A range of ledger ids the watermark passed while none of them was visible. */
export interface Gap {
  readonly from: number;
  readonly to: number;
  /** When the watermark passed it, as stored (kept when the range is split). */
  readonly seenAt: string;
}

/** Keys per IN list. */
const KEYS_PER_QUERY = 500;

/** Gap ranges per statement: an OR of primary-key ranges, which both databases read as range scans. */
const GAPS_PER_QUERY = 200;

/**
 * The SQL of the ledger's tail as analytics reads it: the watermark (quota_analytics_state), the
 * id gaps it passed (quota_analytics_gaps), and the committed ledger rows after it or in its gaps.
 * Every method takes the session of the caller's read or transaction.
 */
@Injectable()
export class TailRepository {
  /** The database's clock in epoch ms, so every instance cuts the tail at the same instant. */
  async nowMs(s: SqlSession): Promise<number> {
    const rows = await s.rows<{ now_ms: unknown }>(s.sql.nowMsSql);
    return Number(rows[0].now_ms);
  }

  /** The watermark, as last committed (no lock). */
  async watermark(s: SqlSession): Promise<string> {
    const rows = await s.rows<{ last_history_id: unknown }>(
      'SELECT last_history_id FROM quota_analytics_state WHERE name = ?',
      [TAIL_STATE],
    );
    return idText(rows[0]?.last_history_id);
  }

  /** The watermark, with its row locked; null when another instance holds it (SKIP LOCKED). */
  async lockWatermark(s: SqlSession): Promise<string | null> {
    const locked = await s.rows<{ last_history_id: unknown }>(
      `SELECT last_history_id FROM quota_analytics_state WHERE name = ?${s.sql.forUpdateSkipLocked}`,
      [TAIL_STATE],
    );
    return locked.length === 0 ? null : idText(locked[0].last_history_id);
  }

  async advanceWatermark(s: SqlSession, lastHistoryId: number, now: string): Promise<void> {
    await s.exec('UPDATE quota_analytics_state SET last_history_id = ?, updated_at = ? WHERE name = ?', [
      lastHistoryId,
      now,
      TAIL_STATE,
    ]);
  }

  /** Ledger rows after an id, in id order (all of them without a limit). */
  async rowsAfter(s: SqlSession, afterId: string, limit?: number): Promise<LedgerRow[]> {
    const raw =
      limit === undefined
        ? await s.rows<RawLedgerRow>(`SELECT ${LEDGER_ROW_COLUMNS} ${LEDGER_ROW_JOINS} WHERE h.id > ? ORDER BY h.id`, [
            afterId,
          ])
        : await s.rows<RawLedgerRow>(
            `SELECT ${LEDGER_ROW_COLUMNS} ${LEDGER_ROW_JOINS} WHERE h.id > ? ORDER BY h.id LIMIT ?`,
            [afterId, limit],
          );
    return raw.map(toLedgerRow);
  }

  /** The members' ledger rows after an id, in id order. */
  async memberRowsAfter(s: SqlSession, afterId: string, memberIds: readonly string[]): Promise<LedgerRow[]> {
    const raw = await s.rows<RawLedgerRow>(
      `SELECT ${LEDGER_ROW_COLUMNS} ${LEDGER_ROW_JOINS} WHERE h.id > ? AND h.member_id IN (${marks(memberIds.length)}) ORDER BY h.id`,
      [afterId, ...memberIds],
    );
    return raw.map(toLedgerRow);
  }

  /** membership_change rows after an id: few, found through the seed's (reason) index, whose entries end in the id. */
  async typeChangesAfter(s: SqlSession, afterId: number | string): Promise<TypeChange[]> {
    const rows = await s.rows<{
      id: unknown;
      member_id: unknown;
      from_membership_type: string | null;
      to_membership_type: string | null;
    }>(
      `SELECT id, member_id, from_membership_type, to_membership_type FROM member_quota_history
        WHERE reason = 'membership_change' AND id > ? ORDER BY id`,
      [afterId],
    );
    return rows.flatMap(
      (r) => typeChange(Number(r.id), String(r.member_id), r.from_membership_type, r.to_membership_type) ?? [],
    );
  }

  /** The members' external ids (as the API shows members), by member id. */
  async externalIds(s: SqlSession, memberIds: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (let i = 0; i < memberIds.length; i += KEYS_PER_QUERY) {
      const chunk = memberIds.slice(i, i + KEYS_PER_QUERY);
      const rows = await s.rows<{ id: unknown; external_id: string }>(
        `SELECT id, external_id FROM members WHERE id IN (${marks(chunk.length)})`,
        chunk,
      );
      for (const r of rows) found.set(String(r.id), r.external_id);
    }
    return found;
  }

  /** The types' max_quota now, by type (a type without a config is absent). */
  async maxQuotas(s: SqlSession, types: readonly string[]): Promise<Map<string, number>> {
    if (types.length === 0) return new Map();
    const rows = await s.rows<{ membership_type: string; max_quota: unknown }>(
      `SELECT membership_type, max_quota FROM member_quota_config WHERE membership_type IN (${marks(types.length)})`,
      types,
    );
    return new Map(rows.map((r) => [r.membership_type, Number(r.max_quota)]));
  }

  /** The stored gaps, lowest first. */
  async gaps(s: SqlSession): Promise<Gap[]> {
    const rows = await s.rows<{ from_id: unknown; to_id: unknown; seen_at: unknown }>(
      'SELECT from_id, to_id, seen_at FROM quota_analytics_gaps ORDER BY from_id',
    );
    return rows.map((g) => ({
      from: Number(g.from_id),
      to: Number(g.to_id),
      seenAt: sqlTimestamp(readTimestamp(g.seen_at)),
    }));
  }

  /** Visible ledger rows whose ids lie in the gaps, at most `limit` (the lowest ids of each statement first). */
  async rowsInGaps(s: SqlSession, gaps: readonly Gap[], limit = Number.MAX_SAFE_INTEGER): Promise<LedgerRow[]> {
    const found: LedgerRow[] = [];
    for (let i = 0; i < gaps.length && found.length < limit; i += GAPS_PER_QUERY) {
      const chunk = gaps.slice(i, i + GAPS_PER_QUERY);
      const raw = await s.rows<RawLedgerRow>(
        `SELECT ${LEDGER_ROW_COLUMNS} ${LEDGER_ROW_JOINS}
          WHERE ${chunk.map(() => 'h.id BETWEEN ? AND ?').join(' OR ')} ORDER BY h.id LIMIT ?`,
        [...chunk.flatMap((g) => [g.from, g.to]), Math.min(limit - found.length, 1_000_000)],
      );
      for (const r of raw) found.push(toLedgerRow(r));
    }
    return found;
  }

  /** Stores gaps (a gap with the same start is replaced). */
  async saveGaps(s: SqlSession, gaps: readonly Gap[]): Promise<void> {
    await upsert(
      s,
      'quota_analytics_gaps',
      ['from_id', 'to_id', 'seen_at'],
      ['from_id'],
      gaps.map((g) => [g.from, g.to, g.seenAt]),
    );
  }

  async deleteGaps(s: SqlSession, fromIds: readonly number[]): Promise<void> {
    await s.exec(`DELETE FROM quota_analytics_gaps WHERE from_id IN (${marks(fromIds.length)})`, fromIds);
  }

  /** Gives up the gaps the watermark passed before `oldest`; returns how many ids they held. */
  async expireGapsSeenBefore(s: SqlSession, oldest: string): Promise<number> {
    const old = await s.rows<{ ids: unknown }>(
      'SELECT SUM(to_id - from_id + 1) AS ids FROM quota_analytics_gaps WHERE seen_at < ?',
      [oldest],
    );
    const expired = Number(old[0]?.ids ?? 0);
    if (expired > 0) await s.exec('DELETE FROM quota_analytics_gaps WHERE seen_at < ?', [oldest]);
    return expired;
  }
}
