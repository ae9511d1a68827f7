import { Injectable } from '@nestjs/common';
import { readBoolean, readNullableTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';

/** The switch as stored (the one row of quota_maintenance). */
export interface MaintenanceState {
  readonly readOnly: boolean;
  readonly reason: string | null;
  /** When the current state began; null until the first change. */
  readonly since: Date | null;
  readonly changedBy: string | null;
}

export const WRITABLE: MaintenanceState = { readOnly: false, reason: null, since: null, changedBy: null };

/** The one-row quota_maintenance table (id 1, written by the migration). */
@Injectable()
export class MaintenanceRepository {
  /** The stored state; writable when the row is missing (nobody has ever been able to freeze). */
  async read(s: SqlSession, forUpdate = false): Promise<MaintenanceState> {
    const rows = await s.rows<Record<string, unknown>>(
      `SELECT read_only, reason, since, changed_by FROM quota_maintenance WHERE id = 1${forUpdate ? s.sql.forUpdate : ''}`,
    );
    if (rows.length === 0) return WRITABLE;
    const row = rows[0];
    return {
      readOnly: readBoolean(row.read_only),
      reason: (row.reason as string | null) ?? null,
      since: readNullableTimestamp(row.since),
      changedBy: (row.changed_by as string | null) ?? null,
    };
  }

  /** Writes the row, creating it if a restore or a hand edit left the table empty. */
  async write(s: SqlSession, state: MaintenanceState, now: Date): Promise<void> {
    await s.exec(
      `INSERT INTO quota_maintenance (id, read_only, reason, since, changed_by, updated_at) VALUES (1, ?, ?, ?, ?, ?)
       ${s.sql.upsertTail(['id'], ['read_only', 'reason', 'since', 'changed_by', 'updated_at'], [])}`,
      [
        state.readOnly ? 1 : 0,
        state.reason,
        state.since === null ? null : sqlTimestamp(state.since),
        state.changedBy,
        sqlTimestamp(now),
      ],
    );
  }
}
