import type { ResetPeriod } from './entities/quota-config.entity';
import type { HistoryReason } from './entities/quota-history.entity';
import { readBoolean, readNullableTimestamp, readTimestamp } from '../database/sql-session';

/** Rows as the raw SQL of this module selects them (column names as in the tables). */
export interface ConfigRow {
  id: unknown;
  membership_type: string;
  max_quota: number;
  reset_period: ResetPeriod;
  is_active: unknown;
  description: string | null;
  created_at: unknown;
  updated_at: unknown;
}

export interface MemberRow {
  id: unknown;
  external_id: string;
  membership_type: string;
  quota_balance: number;
  is_active: unknown;
  period_started_at: unknown;
  created_at: unknown;
  updated_at: unknown;
}

export interface HistoryRow {
  id: unknown;
  member_id: unknown;
  delta: number;
  balance_after: number;
  reason: HistoryReason;
  actor: string;
  operation_id: string | number | null;
  note: string | null;
  created_at: unknown;
}

export const CONFIG_COLUMNS =
  'id, membership_type, max_quota, reset_period, is_active, description, created_at, updated_at';
export const MEMBER_COLUMNS =
  'id, external_id, membership_type, quota_balance, is_active, period_started_at, created_at, updated_at';
export const HISTORY_COLUMNS = 'id, member_id, delta, balance_after, reason, actor, operation_id, note, created_at';

export interface QuotaConfigView {
  readonly id: string;
  readonly membershipType: string;
  readonly maxQuota: number;
  readonly resetPeriod: ResetPeriod;
  readonly isActive: boolean;
  readonly description: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface MemberView {
  readonly id: string;
  readonly externalId: string;
  readonly membershipType: string;
  readonly quotaBalance: number;
  readonly isActive: boolean;
  readonly periodStartedAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export function toConfig(row: ConfigRow): QuotaConfigView {
  return {
    id: String(row.id),
    membershipType: row.membership_type,
    maxQuota: Number(row.max_quota),
    resetPeriod: row.reset_period,
    isActive: readBoolean(row.is_active),
    description: row.description ?? null,
    createdAt: readTimestamp(row.created_at),
    updatedAt: readTimestamp(row.updated_at),
  };
}

export function toMember(row: MemberRow): MemberView {
  return {
    id: String(row.id),
    externalId: row.external_id,
    membershipType: row.membership_type,
    quotaBalance: Number(row.quota_balance),
    isActive: readBoolean(row.is_active),
    periodStartedAt: readNullableTimestamp(row.period_started_at),
    createdAt: readTimestamp(row.created_at),
    updatedAt: readTimestamp(row.updated_at),
  };
}

export function configJson(config: QuotaConfigView) {
  return {
    id: config.id,
    membership_type: config.membershipType,
    max_quota: config.maxQuota,
    reset_period: config.resetPeriod,
    is_active: config.isActive,
    description: config.description,
    created_at: config.createdAt.toISOString(),
    updated_at: config.updatedAt.toISOString(),
  };
}

export function memberJson(member: MemberView) {
  return {
    id: member.id,
    external_id: member.externalId,
    membership_type: member.membershipType,
    quota_balance: member.quotaBalance,
    is_active: member.isActive,
    period_started_at: member.periodStartedAt?.toISOString() ?? null,
    created_at: member.createdAt.toISOString(),
    updated_at: member.updatedAt.toISOString(),
  };
}

export function historyJson(row: HistoryRow) {
  return {
    id: String(row.id),
    member_id: String(row.member_id),
    delta: Number(row.delta),
    balance_after: Number(row.balance_after),
    reason: row.reason,
    actor: row.actor,
    operation_id: row.operation_id === null ? null : String(row.operation_id),
    note: row.note ?? null,
    created_at: readTimestamp(row.created_at).toISOString(),
  };
}
