import { Injectable } from '@nestjs/common';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { ResetPeriod } from './entities/quota-config.entity';
import { CONFIG_COLUMNS, toConfig, type ConfigRow, type QuotaConfigView } from './quota.views';

/** A config's columns to set; absent fields stay as they are. */
export interface ConfigColumns {
  readonly maxQuota?: number;
  readonly resetPeriod?: ResetPeriod;
  readonly isActive?: boolean;
  readonly description?: string | null;
}

export interface ConfigRecord {
  readonly membershipType: string;
  readonly maxQuota: number;
  readonly resetPeriod: ResetPeriod;
  readonly isActive: boolean;
  readonly description: string | null;
}

/** The member_quota_config table (the quota configs, one per membership type). */
@Injectable()
export class ConfigsRepository {
  /** Every config, or those with this `is_active`, by id. */
  async list(s: SqlSession, isActive?: boolean): Promise<QuotaConfigView[]> {
    const where = isActive === undefined ? '' : ' WHERE is_active = ?';
    const rows = await s.rows<ConfigRow>(
      `SELECT ${CONFIG_COLUMNS} FROM member_quota_config${where} ORDER BY id`,
      isActive === undefined ? [] : [isActive ? 1 : 0],
    );
    return rows.map(toConfig);
  }

  /** The config with this id; `lock` write-locks its row. */
  async findById(s: SqlSession, id: string, lock = false): Promise<QuotaConfigView | null> {
    const rows = await s.rows<ConfigRow>(
      `SELECT ${CONFIG_COLUMNS} FROM member_quota_config WHERE id = ?${lock ? s.sql.forUpdate : ''}`,
      [id],
    );
    return rows.length === 0 ? null : toConfig(rows[0]);
  }

  /** Inserts a config; returns its id. A type that exists fails with the driver's duplicate-key error. */
  async insert(s: SqlSession, config: ConfigRecord): Promise<string> {
    const now = sqlTimestamp(new Date());
    const result = await s.exec(
      `INSERT INTO member_quota_config (membership_type, max_quota, reset_period, is_active, description, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [
        config.membershipType,
        config.maxQuota,
        config.resetPeriod,
        config.isActive ? 1 : 0,
        config.description,
        now,
        now,
      ],
    );
    if (result.insertId === null) throw new Error('config insert returned no id');
    return result.insertId;
  }

  /** Sets the given columns (and updated_at); does nothing when none is given. */
  async update(s: SqlSession, id: string, columns: ConfigColumns): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [];
    const set = (column: string, value: unknown) => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (columns.maxQuota !== undefined) set('max_quota', columns.maxQuota);
    if (columns.resetPeriod !== undefined) set('reset_period', columns.resetPeriod);
    if (columns.isActive !== undefined) set('is_active', columns.isActive ? 1 : 0);
    if (columns.description !== undefined) set('description', columns.description);
    if (sets.length === 0) return;
    set('updated_at', sqlTimestamp(new Date()));
    await s.exec(`UPDATE member_quota_config SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
  }

  /** Whether any member has this membership type. */
  async typeInUse(s: SqlSession, membershipType: string): Promise<boolean> {
    const rows = await s.rows('SELECT 1 AS used FROM members WHERE membership_type = ? LIMIT 1', [membershipType]);
    return rows.length > 0;
  }

  /** Deletes the config; a member of its type fails it with the driver's foreign-key error. */
  async delete(s: SqlSession, id: string): Promise<void> {
    await s.exec('DELETE FROM member_quota_config WHERE id = ?', [id]);
  }
}
