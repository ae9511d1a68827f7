import { readBoolean, readNullableTimestamp, readTimestamp } from '../database/sql-session';
import type { BulkMode, OperationKind } from '../quota/ledger-bulk.service';

export type OperationStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const OPERATION_STATUSES: readonly OperationStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];
export const OPERATION_KINDS: readonly OperationKind[] = ['bulk_adjust', 'config_propagation', 'periodic_reset'];
export const ACTIVE_STATUSES: readonly OperationStatus[] = ['queued', 'running'];

export const OPERATION_COLUMNS = `id, kind, status, selection, membership_type, mode, value, reason, note, total, processed,
  changed, failed, last_member_id, requested_by, config_id, period_key, period_started_at, cancel_requested, attempts, error,
  created_at, updated_at, started_at, finished_at`;

export interface OperationRow {
  id: unknown;
  kind: OperationKind;
  status: OperationStatus;
  selection: 'member_ids' | 'membership_type';
  membership_type: string | null;
  mode: BulkMode;
  value: unknown;
  reason: string;
  note: string | null;
  total: unknown;
  processed: unknown;
  changed: unknown;
  failed: unknown;
  last_member_id: unknown;
  requested_by: string;
  config_id: string | number | null;
  period_key: string | null;
  period_started_at: unknown;
  cancel_requested: unknown;
  attempts: unknown;
  error: string | null;
  created_at: unknown;
  updated_at: unknown;
  started_at: unknown;
  finished_at: unknown;
}

export interface Operation {
  readonly id: string;
  readonly kind: OperationKind;
  readonly status: OperationStatus;
  readonly selection: 'member_ids' | 'membership_type';
  readonly membershipType: string | null;
  readonly mode: BulkMode;
  readonly value: number;
  readonly reason: string;
  readonly note: string | null;
  readonly total: number;
  readonly processed: number;
  readonly changed: number;
  readonly failed: number;
  readonly lastMemberId: string;
  readonly requestedBy: string;
  readonly configId: string | null;
  readonly periodKey: string | null;
  readonly periodStartedAt: Date | null;
  readonly cancelRequested: boolean;
  readonly attempts: number;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export function toOperation(row: OperationRow): Operation {
  return {
    id: String(row.id),
    kind: row.kind,
    status: row.status,
    selection: row.selection,
    membershipType: row.membership_type,
    mode: row.mode,
    value: Number(row.value),
    reason: row.reason,
    note: row.note,
    total: Number(row.total),
    processed: Number(row.processed),
    changed: Number(row.changed),
    failed: Number(row.failed),
    lastMemberId: String(row.last_member_id),
    requestedBy: row.requested_by,
    configId: row.config_id === null || row.config_id === undefined ? null : String(row.config_id),
    periodKey: row.period_key,
    periodStartedAt: readNullableTimestamp(row.period_started_at),
    cancelRequested: readBoolean(row.cancel_requested),
    attempts: Number(row.attempts),
    error: row.error,
    createdAt: readTimestamp(row.created_at),
    updatedAt: readTimestamp(row.updated_at),
    startedAt: readNullableTimestamp(row.started_at),
    finishedAt: readNullableTimestamp(row.finished_at),
  };
}

/** The API shape: snake_case, ids as strings, ISO-8601 UTC timestamps. */
export function operationJson(op: Operation) {
  return {
    id: op.id,
    kind: op.kind,
    status: op.status,
    selection: op.selection === 'membership_type' ? { membership_type: op.membershipType } : { member_ids: op.total },
    change: op.mode === 'delta' ? { delta: op.value } : { new_quota: op.value },
    reason: op.reason,
    note: op.note,
    total: op.total,
    processed: op.processed,
    changed: op.changed,
    failed: op.failed,
    requested_by: op.requestedBy,
    config_id: op.configId,
    period_key: op.periodKey,
    cancel_requested: op.cancelRequested,
    error: op.error,
    created_at: op.createdAt.toISOString(),
    updated_at: op.updatedAt.toISOString(),
    started_at: op.startedAt?.toISOString() ?? null,
    finished_at: op.finishedAt?.toISOString() ?? null,
  };
}
