import { Injectable } from '@nestjs/common';
import { readBoolean, readNullableTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { ResetPeriod } from './entities/quota-config.entity';
import { MEMBER_COLUMNS, toMember, type MemberRow, type MemberView } from './quota.views';

const FETCH_CHUNK = 500;

/** A member's balance with its config's quota settings. */
export interface MemberBalance {
  readonly memberId: string;
  readonly externalId: string;
  readonly membershipType: string;
  readonly balance: number;
  /** Units in the member's open holds (members.quota_held). */
  readonly held: number;
  readonly isActive: boolean;
  readonly periodStartedAt: Date | null;
  readonly maxQuota: number;
  readonly resetPeriod: ResetPeriod;
  readonly configActive: boolean;
}

/**
 * The members table as records (reads, pages, the active switch). Balances and membership types
 * change only through LedgerRepository, with their history rows.
 */
@Injectable()
export class MembersRepository {
  /** How many members there are, of this type when given. */
  async count(s: SqlSession, membershipType?: string): Promise<number> {
    const where = membershipType === undefined ? '' : ' WHERE membership_type = ?';
    const rows = await s.rows<{ total: unknown }>(
      `SELECT COUNT(*) AS total FROM members${where}`,
      membershipType === undefined ? [] : [membershipType],
    );
    return Number(rows[0].total);
  }

  /** A page of members by id (of this type when given). */
  async page(s: SqlSession, membershipType: string | undefined, limit: number, offset: number): Promise<MemberView[]> {
    const where = membershipType === undefined ? '' : ' WHERE membership_type = ?';
    const params = membershipType === undefined ? [] : [membershipType];
    const rows = await s.rows<MemberRow>(`SELECT ${MEMBER_COLUMNS} FROM members${where} ORDER BY id LIMIT ? OFFSET ?`, [
      ...params,
      limit,
      offset,
    ]);
    return rows.map(toMember);
  }

  /** The member with this id; `lock` write-locks its row. */
  async findById(s: SqlSession, id: string, lock = false): Promise<MemberView | null> {
    const rows = await s.rows<MemberRow>(
      `SELECT ${MEMBER_COLUMNS} FROM members WHERE id = ?${lock ? s.sql.forUpdate : ''}`,
      [id],
    );
    return rows.length === 0 ? null : toMember(rows[0]);
  }

  /** The member's balance joined with its config; null when there is no such member. */
  async balanceWithConfig(s: SqlSession, memberId: string): Promise<MemberBalance | null> {
    const rows = await s.rows<{
      id: unknown;
      external_id: string;
      membership_type: string;
      quota_balance: number;
      quota_held: number;
      is_active: unknown;
      period_started_at: unknown;
      max_quota: number;
      reset_period: ResetPeriod;
      config_active: unknown;
    }>(
      `SELECT m.id, m.external_id, m.membership_type, m.quota_balance, m.quota_held, m.is_active, m.period_started_at,
              c.max_quota, c.reset_period, c.is_active AS config_active
         FROM members m JOIN member_quota_config c ON c.membership_type = m.membership_type
        WHERE m.id = ?`,
      [memberId],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    return {
      memberId: String(row.id),
      externalId: row.external_id,
      membershipType: row.membership_type,
      balance: Number(row.quota_balance),
      held: Number(row.quota_held),
      isActive: readBoolean(row.is_active),
      periodStartedAt: readNullableTimestamp(row.period_started_at),
      maxQuota: Number(row.max_quota),
      resetPeriod: row.reset_period,
      configActive: readBoolean(row.config_active),
    };
  }

  /** Members by id, in the order of the ids given (every id must exist). */
  async findByIds(s: SqlSession, ids: readonly string[]): Promise<MemberView[]> {
    const byId = new Map<string, MemberView>();
    for (let start = 0; start < ids.length; start += FETCH_CHUNK) {
      const chunk = ids.slice(start, start + FETCH_CHUNK);
      const rows = await s.rows<MemberRow>(
        `SELECT ${MEMBER_COLUMNS} FROM members WHERE id IN (${chunk.map(() => '?').join(', ')})`,
        chunk,
      );
      for (const member of rows.map(toMember)) byId.set(member.id, member);
    }
    return ids.map((id) => byId.get(id)!);
  }

  async setActive(s: SqlSession, id: string, active: boolean): Promise<void> {
    await s.exec('UPDATE members SET is_active = ?, updated_at = ? WHERE id = ?', [
      active ? 1 : 0,
      sqlTimestamp(new Date()),
      id,
    ]);
  }
}
