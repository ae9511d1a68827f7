import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import type { Principal } from '../auth/principal';
import { AppError, NotFoundError, ValidationFailedError, type FieldError } from '../common/app-error';
import { IDEMPOTENCY_TTL_MS, keyHash } from '../quota/idempotency.service';
import { OperationRecorder, type BulkMode, type OperationKind } from '../quota/ledger-bulk.service';
import { MAX_BALANCE } from '../quota/ledger.service';
import { QuotaDatabase } from '../database/database';
import { dbErrorKind, readTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import {
  IdempotencyKeyInUseError,
  IdempotencyKeyMismatchError,
  UnknownMembershipTypeError,
} from '../quota/quota.errors';
import type { BulkReason } from './dto/operations.dto';
import {
  OPERATION_COLUMNS,
  toOperation,
  type Operation,
  type OperationRow,
  type OperationStatus,
} from './operation.view';

export interface BulkAdjustInput {
  readonly memberIds?: readonly (number | string)[];
  readonly membershipType?: string;
  readonly newQuota?: number;
  readonly delta?: number;
  readonly reason?: BulkReason;
  readonly note?: string;
  readonly dryRun?: boolean;
}

export interface BulkAccepted {
  readonly operationId: string;
  readonly total: number;
  readonly replayed: boolean;
}

export interface DryRunAnswer {
  readonly total: number;
  readonly wouldChange: number;
}

const ID_CHUNK = 1000;
const LISTED_UNKNOWN_IDS = 20;

class OperationFinishedError extends AppError {
  constructor(status: OperationStatus) {
    super('operation_finished', `The operation is already ${status}; there is nothing to cancel.`);
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function marks(n: number): string {
  return new Array<string>(n).fill('?').join(', ');
}

/** Distinct ids as digit strings, in ascending numeric order. */
function distinctIds(ids: readonly (number | string)[]): string[] {
  const unique = new Set(ids.map((id) => (typeof id === 'number' ? String(id) : id)));
  return [...unique].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
}

/** The HTTP side of background operations: accept a bulk adjustment, list, show and cancel. */
@Injectable()
export class OperationsService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly recorder: OperationRecorder,
    private readonly audit: AuditService,
  ) {}

  /**
   * Records a bulk adjustment (and its member list) in one transaction and announces it to the
   * queue once committed. With an Idempotency-Key the same key and body return the first
   * operation; unknown member ids refuse the whole request (members are never deleted, so an
   * unknown id is a caller's mistake, and a partial run would hide it).
   */
  async bulkAdjust(caller: Principal, input: BulkAdjustInput, idempotencyKey?: string): Promise<BulkAccepted> {
    const change = this.checkShape(input);
    const ids = input.memberIds ? distinctIds(input.memberIds) : null;
    const dedupeKey = idempotencyKey === undefined ? null : keyHash(caller.userId, idempotencyKey);
    const requestHash = createHash('sha256')
      .update(
        JSON.stringify([
          'bulk_adjust',
          ids,
          input.membershipType ?? null,
          input.newQuota ?? null,
          input.delta ?? null,
          input.reason ?? 'bulk_adjustment',
          input.note ?? null,
        ]),
      )
      .digest('hex');

    for (let attempt = 1; ; attempt++) {
      try {
        const accepted = await this.db.transaction(
          async (s) => {
            if (dedupeKey) {
              const replay = await this.replay(s, dedupeKey, requestHash);
              if (replay) return replay;
            }
            if (input.membershipType !== undefined) await this.requireType(s, input.membershipType);
            const operationId = await this.recorder.record(s, {
              kind: 'bulk_adjust',
              selection: ids
                ? { kind: 'member_ids' }
                : { kind: 'membership_type', membershipType: input.membershipType! },
              mode: change.mode,
              value: change.value,
              reason: input.reason ?? 'bulk_adjustment',
              note: input.note ?? null,
              payload: {
                member_ids: ids ? ids.length : undefined,
                membership_type: input.membershipType,
                new_quota: input.newQuota,
                delta: input.delta,
                reason: input.reason ?? 'bulk_adjustment',
              },
              requestedBy: caller.userId,
              total: ids ? ids.length : undefined,
              dedupeKey,
              requestHash,
            });
            if (ids) await this.storeMembers(s, operationId, ids);
            const total = await this.totalOf(s, operationId);
            await this.audit.record(s.manager, {
              actor: caller,
              action: 'quota.bulk_adjust',
              entityType: 'quota_operation',
              entityId: operationId,
              before: null,
              after: {
                operation_id: operationId,
                total,
                selection: ids ? 'member_ids' : input.membershipType,
                ...change,
              },
            });
            return { operationId, total, replayed: false };
          },
          { entityManager: true },
        );
        if (!accepted.replayed) this.recorder.announce(accepted.operationId);
        return accepted;
      } catch (err) {
        // Two requests with the same new key at once: the loser replays the winner's operation.
        if (dedupeKey && dbErrorKind(err) === 'duplicate' && attempt < 3) continue;
        if (dbErrorKind(err) === 'duplicate') throw new IdempotencyKeyInUseError();
        throw err;
      }
    }
  }

  /** What a bulk adjustment would do, changing and queueing nothing. */
  async dryRun(input: BulkAdjustInput): Promise<DryRunAnswer> {
    const change = this.checkShape(input);
    const target = this.db.sql.least(this.db.sql.greatest('?', '0'), '?');
    const expression = change.mode === 'delta' ? target.replace('?', 'quota_balance + ?') : target;
    const count = `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN ${expression} <> quota_balance THEN 1 ELSE 0 END), 0) AS would_change FROM members`;
    return this.db.read(async (s) => {
      if (input.membershipType !== undefined) {
        await this.requireType(s, input.membershipType);
        const rows = await s.rows<{ total: unknown; would_change: unknown }>(`${count} WHERE membership_type = ?`, [
          change.value,
          MAX_BALANCE,
          input.membershipType,
        ]);
        return { total: Number(rows[0].total), wouldChange: Number(rows[0].would_change) };
      }
      const ids = distinctIds(input.memberIds!);
      let total = 0;
      let wouldChange = 0;
      const unknown: string[] = [];
      for (const chunk of chunks(ids, ID_CHUNK)) {
        const rows = await s.rows<{ total: unknown; would_change: unknown }>(
          `${count} WHERE id IN (${marks(chunk.length)})`,
          [change.value, MAX_BALANCE, ...chunk],
        );
        total += Number(rows[0].total);
        wouldChange += Number(rows[0].would_change);
        if (Number(rows[0].total) < chunk.length && unknown.length < LISTED_UNKNOWN_IDS) {
          unknown.push(...(await this.unknownIds(s, chunk)));
        }
      }
      if (unknown.length > 0) throw this.unknownMembers(unknown);
      return { total, wouldChange };
    });
  }

  async get(id: string): Promise<Operation> {
    const rows = await this.db.read((s) =>
      s.rows<OperationRow>(`SELECT ${OPERATION_COLUMNS} FROM quota_operations WHERE id = ?`, [id]),
    );
    if (rows.length === 0) throw new NotFoundError('Operation');
    return toOperation(rows[0]);
  }

  async list(filter: {
    status?: OperationStatus;
    kind?: OperationKind;
    page: number;
    perPage: number;
  }): Promise<{ operations: Operation[]; total: number }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) {
      where.push('status = ?');
      params.push(filter.status);
    }
    if (filter.kind) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    const clause = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
    return this.db.read(async (s) => {
      const counted = await s.rows<{ total: unknown }>(
        `SELECT COUNT(*) AS total FROM quota_operations${clause}`,
        params,
      );
      const rows = await s.rows<OperationRow>(
        `SELECT ${OPERATION_COLUMNS} FROM quota_operations${clause} ORDER BY id DESC LIMIT ? OFFSET ?`,
        [...params, filter.perPage, (filter.page - 1) * filter.perPage],
      );
      return { operations: rows.map(toOperation), total: Number(counted[0].total) };
    });
  }

  /**
   * A queued operation is cancelled at once; a running one is asked to stop and its worker stops
   * between chunks (what is done stays done: each chunk committed whole).
   */
  async cancel(caller: Principal, id: string): Promise<Operation> {
    await this.db.transaction(
      async (s) => {
        const rows = await s.rows<{ status: OperationStatus }>(
          `SELECT status FROM quota_operations WHERE id = ?${s.sql.forUpdate}`,
          [id],
        );
        if (rows.length === 0) throw new NotFoundError('Operation');
        const status = rows[0].status;
        const now = sqlTimestamp(new Date());
        if (status === 'queued') {
          await s.exec(
            "UPDATE quota_operations SET status = 'cancelled', cancel_requested = 1, finished_at = ?, updated_at = ? WHERE id = ?",
            [now, now, id],
          );
        } else if (status === 'running') {
          await s.exec('UPDATE quota_operations SET cancel_requested = 1, updated_at = ? WHERE id = ?', [now, id]);
        } else {
          throw new OperationFinishedError(status);
        }
        await this.audit.record(s.manager, {
          actor: caller,
          action: 'quota.operation_cancel',
          entityType: 'quota_operation',
          entityId: id,
          before: { status },
          after: { status: status === 'queued' ? 'cancelled' : 'running', cancel_requested: true },
        });
      },
      { entityManager: true },
    );
    return this.get(id);
  }

  private checkShape(input: BulkAdjustInput): { mode: BulkMode; value: number } {
    const errors: FieldError[] = [];
    const hasIds = input.memberIds !== undefined;
    const hasType = input.membershipType !== undefined;
    if (hasIds === hasType) {
      errors.push({ field: 'member_ids', message: 'exactly one of member_ids and membership_type is required' });
    }
    const hasNew = input.newQuota !== undefined;
    const hasDelta = input.delta !== undefined;
    if (hasNew === hasDelta) {
      errors.push({ field: 'new_quota', message: 'exactly one of new_quota and delta is required' });
    }
    if (errors.length > 0) throw new ValidationFailedError(errors);
    if (input.newQuota !== undefined) return { mode: 'set', value: input.newQuota };
    return { mode: 'delta', value: input.delta ?? 0 };
  }

  private async requireType(s: SqlSession, membershipType: string): Promise<void> {
    const rows = await s.rows('SELECT 1 AS found FROM member_quota_config WHERE membership_type = ?', [membershipType]);
    if (rows.length === 0) throw new UnknownMembershipTypeError('membership_type', membershipType);
  }

  /**
   * Stores the distinct existing ids; any unknown id refuses the request (the transaction rolls
   * back). The ids are checked by a plain read and stored as VALUES: an INSERT ... SELECT from
   * members would share-lock up to 100,000 member rows until commit, holding up their consumes.
   */
  private async storeMembers(s: SqlSession, operationId: string, ids: readonly string[]): Promise<void> {
    const unknown: string[] = [];
    for (const chunk of chunks(ids, ID_CHUNK)) {
      const found = await s.rows<{ id: unknown }>(`SELECT id FROM members WHERE id IN (${marks(chunk.length)})`, chunk);
      if (found.length < chunk.length) {
        const known = new Set(found.map((r) => String(r.id)));
        unknown.push(...chunk.filter((id) => !known.has(id)));
        continue;
      }
      if (unknown.length > 0) continue;
      await s.exec(
        `INSERT INTO quota_operation_members (operation_id, member_id) VALUES ${chunk.map(() => '(?, ?)').join(', ')}`,
        chunk.flatMap((id) => [operationId, id]),
      );
    }
    if (unknown.length > 0) throw this.unknownMembers(unknown);
  }

  private async unknownIds(s: SqlSession, chunk: readonly string[]): Promise<string[]> {
    const found = await s.rows<{ id: unknown }>(`SELECT id FROM members WHERE id IN (${marks(chunk.length)})`, chunk);
    const known = new Set(found.map((r) => String(r.id)));
    return chunk.filter((id) => !known.has(id));
  }

  private unknownMembers(unknown: readonly string[]): ValidationFailedError {
    const listed = unknown.slice(0, LISTED_UNKNOWN_IDS);
    return new ValidationFailedError([
      {
        field: 'member_ids',
        message: `unknown member ids: ${listed.join(', ')}${unknown.length > listed.length ? ', ...' : ''}`,
      },
    ]);
  }

  private async totalOf(s: SqlSession, operationId: string): Promise<number> {
    const rows = await s.rows<{ total: unknown }>('SELECT total FROM quota_operations WHERE id = ?', [operationId]);
    return Number(rows[0].total);
  }

  /** The first answer for a key still within its 24 h; an expired key is released for reuse. */
  private async replay(s: SqlSession, dedupeKey: string, requestHash: string): Promise<BulkAccepted | null> {
    const rows = await s.rows<{ id: unknown; request_hash: string; total: unknown; created_at: unknown }>(
      `SELECT id, request_hash, total, created_at FROM quota_operations WHERE dedupe_key = ?${s.sql.forUpdate}`,
      [dedupeKey],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    if (readTimestamp(row.created_at).getTime() + IDEMPOTENCY_TTL_MS <= Date.now()) {
      await s.exec('UPDATE quota_operations SET dedupe_key = NULL WHERE id = ?', [row.id]);
      return null;
    }
    if (row.request_hash !== requestHash) throw new IdempotencyKeyMismatchError();
    return { operationId: String(row.id), total: Number(row.total), replayed: true };
  }
}
